"""Inventory over GraphQL: stock changes, reservations, the ledger and who may see them."""

import logging
from datetime import UTC, datetime, timedelta

from ordergraph.models import InventoryLevel, Reservation, StockMovement
from tests import factories as f
from tests.api.test_orders_statements import StatementCounter
from tests.orders_helpers import settle_outbox

ERR = """
    __typename
    ... on Error { code message field }
    ... on InvalidInputError { problems { code field } }
    ... on InsufficientStockError { shortages { sku requested available } }
"""
TRANSITION = "... on InvalidTransitionError { currentState allowedActions }"
CHANGE = f"""{ERR}
    ... on StockChangePayload {{
      movements {{ kind quantity onHandAfter allocatedAfter reservedAfter reason reference actor warehouseCode sku }}
      levels {{ onHand allocated reserved safetyStock reorderPoint available belowReorderPoint warehouse {{ code }} variant {{ sku }} }}
    }}"""
RECEIVE = f"mutation($input: ReceiveStockInput!, $key: String) {{ receiveStock(input: $input, idempotencyKey: $key) {{ {CHANGE} }} }}"
ADJUST = f"mutation($input: AdjustStockInput!) {{ adjustStock(input: $input) {{ {CHANGE} }} }}"
TRANSFER = f"mutation($input: TransferStockInput!) {{ transferStock(input: $input) {{ {CHANGE} }} }}"
POLICY = f"mutation($input: StockPolicyInput!) {{ setStockPolicy(input: $input) {{ {CHANGE} }} }}"
RESERVATION = "token status expiresAt cartReference channel { code } lines { warehouseCode sku quantity }"
RESERVE = f"""mutation($input: ReserveStockInput!) {{ reserveStock(input: $input) {{ {ERR} {TRANSITION}
    ... on ReservationPayload {{ reservation {{ {RESERVATION} }} }} }} }}"""
RELEASE = f"""mutation($token: String!) {{ releaseReservation(token: $token) {{ {ERR} {TRANSITION}
    ... on ReservationPayload {{ reservation {{ token status }} }} }} }}"""


async def world():
    """W1 (priority 1) and W2 ship for WEB; W3 ships for MKT only. SKU-1: 10 in W1, 4 in W2."""
    w1, w2, w3 = await f.warehouse("W1", priority=1), await f.warehouse("W2", priority=2), await f.warehouse("W3")
    web = await f.channel("WEB", [w1, w2])
    mkt = await f.channel("MKT", [w3])
    v = await f.variant("SKU-1")
    await f.stock(w1, v, 10, reorder_point=3)
    await f.stock(w2, v, 4)
    await f.stock(w3, v, 7)
    return web, mkt, v


async def snapshot():
    levels = await InventoryLevel.all().order_by("id").values_list("on_hand", "allocated", "reserved", "safety_stock", "reorder_point")
    return levels, await StockMovement.all().count(), await Reservation.all().count()


def level(code, on_hand, allocated=0, reserved=0, safety=0, reorder=0, sku="SKU-1"):
    available = on_hand - allocated - reserved - safety
    return {"onHand": on_hand, "allocated": allocated, "reserved": reserved, "safetyStock": safety,
            "reorderPoint": reorder, "available": available, "belowReorderPoint": 0 < reorder and available <= reorder,
            "warehouse": {"code": code}, "variant": {"sku": sku}}


# ---------------------------------------------------------------- stock changes


async def test_receive_stock(gql, db):
    await world()
    key = await f.staff_key(["inventory:write"])
    vars_ = {"input": {"warehouse": "W2", "sku": "SKU-1", "quantity": 6, "reason": "PO", "reference": "PO-1"}, "key": "r-1"}
    result = (await gql(RECEIVE, vars_, auth=key))["receiveStock"]
    actor = result["movements"][0]["actor"]
    assert actor.startswith("staff:")
    assert result["movements"] == [{"kind": "RECEIPT", "quantity": 6, "onHandAfter": 10, "allocatedAfter": 0,
                                    "reservedAfter": 0, "reason": "PO", "reference": "PO-1", "actor": actor,
                                    "warehouseCode": "W2", "sku": "SKU-1"}]
    assert result["levels"] == [level("W2", 10)]
    again = (await gql(RECEIVE, vars_, auth=key))["receiveStock"]  # the idempotency key replays
    assert again["movements"] == result["movements"]
    assert await StockMovement.all().count() == 1


async def test_receive_stock_invalid(gql, db):
    await world()
    key = await f.staff_key()
    before = await snapshot()
    result = (await gql(RECEIVE, {"input": {"warehouse": "NOPE", "sku": "GHOST", "quantity": 0}}, auth=key))["receiveStock"]
    assert result["__typename"] == "InvalidInputError"
    assert sorted((p["code"], p["field"][0]) for p in result["problems"]) == [
        ("NOT_FOUND", "warehouse"), ("QUANTITY_OUT_OF_RANGE", "quantity"), ("UNKNOWN_SKU", "sku")]
    assert await snapshot() == before


async def test_adjust_stock_and_its_errors(gql, db):
    await world()
    key = await f.staff_key()
    await InventoryLevel.filter(warehouse__code="W2").update(reserved=3)
    result = (await gql(ADJUST, {"input": {"warehouse": "W1", "sku": "SKU-1", "delta": -7, "reason": "cycle count"}}, auth=key))["adjustStock"]
    assert [(m["kind"], m["quantity"], m["onHandAfter"], m["reason"]) for m in result["movements"]] == [
        ("ADJUSTMENT", -7, 3, "cycle count")]
    assert result["levels"] == [level("W1", 3, reorder=3)]
    before = await snapshot()
    short = (await gql(ADJUST, {"input": {"warehouse": "W2", "sku": "SKU-1", "delta": -2, "reason": "x"}}, auth=key))["adjustStock"]
    assert (short["__typename"], short["code"], short["field"]) == ("OperationError", "NEGATIVE_STOCK", ["delta"])
    bad = (await gql(ADJUST, {"input": {"warehouse": "W2", "sku": "SKU-1", "delta": 0, "reason": ""}}, auth=key))["adjustStock"]
    assert sorted(p["code"] for p in bad["problems"]) == ["QUANTITY_OUT_OF_RANGE", "REQUIRED"]
    assert await snapshot() == before


async def test_transfer_stock_and_its_errors(gql, db):
    await world()
    key = await f.staff_key()
    result = (await gql(TRANSFER, {"input": {"fromWarehouse": "W1", "toWarehouse": "W3", "sku": "SKU-1", "quantity": 4}}, auth=key))["transferStock"]
    assert [(m["kind"], m["warehouseCode"], m["quantity"], m["onHandAfter"]) for m in result["movements"]] == [
        ("TRANSFER_OUT", "W1", -4, 6), ("TRANSFER_IN", "W3", 4, 11)]
    assert result["movements"][0]["reference"] == result["movements"][1]["reference"]
    assert result["levels"] == [level("W1", 6, reorder=3), level("W3", 11)]
    before = await snapshot()
    same = (await gql(TRANSFER, {"input": {"fromWarehouse": "W1", "toWarehouse": "W1", "sku": "SKU-1", "quantity": 1}}, auth=key))["transferStock"]
    assert (same["__typename"], same["code"]) == ("OperationError", "SAME_WAREHOUSE")
    short = (await gql(TRANSFER, {"input": {"fromWarehouse": "W2", "toWarehouse": "W1", "sku": "SKU-1", "quantity": 5}}, auth=key))["transferStock"]
    assert (short["__typename"], short["code"]) == ("InsufficientStockError", "INSUFFICIENT_STOCK")
    assert short["shortages"] == [{"sku": "SKU-1", "requested": 5, "available": 4}]
    assert await snapshot() == before


async def test_set_stock_policy_and_its_errors(gql, db):
    await world()
    key = await f.staff_key()
    result = (await gql(POLICY, {"input": {"warehouse": "W2", "sku": "SKU-1", "safetyStock": 1, "reorderPoint": 3}}, auth=key))["setStockPolicy"]
    assert [(m["kind"], m["quantity"], m["onHandAfter"], m["reason"]) for m in result["movements"]] == [
        ("POLICY", 0, 4, "safety_stock 0→1; reorder_point 0→3")]
    assert result["levels"] == [level("W2", 4, safety=1, reorder=3)]
    assert result["levels"][0]["belowReorderPoint"] is True
    before = await snapshot()
    bad = (await gql(POLICY, {"input": {"warehouse": "W2", "sku": "SKU-1", "safetyStock": -1, "reorderPoint": 0}}, auth=key))["setStockPolicy"]
    assert [(p["code"], p["field"]) for p in bad["problems"]] == [("INVALID_VALUE", ["safetyStock"])]
    assert await snapshot() == before


async def test_stock_changes_need_inventory_write(gql, db):
    web, _, _ = await world()
    viewers = [await f.staff_key(["inventory:read", "orders:write"]), await f.partner_key("P1", [web]),
               f.customer_token("ada@example.com"), None]
    calls = [
        (RECEIVE, {"warehouse": "W1", "sku": "SKU-1", "quantity": 1}, "receiveStock"),
        (ADJUST, {"warehouse": "W1", "sku": "SKU-1", "delta": 1, "reason": "x"}, "adjustStock"),
        (TRANSFER, {"fromWarehouse": "W1", "toWarehouse": "W2", "sku": "SKU-1", "quantity": 1}, "transferStock"),
        (POLICY, {"warehouse": "W1", "sku": "SKU-1", "safetyStock": 0, "reorderPoint": 0}, "setStockPolicy"),
    ]
    before = await snapshot()
    for auth in viewers:
        for query, input_, name in calls:
            result = (await gql(query, {"input": input_}, auth=auth))[name]
            assert (result["__typename"], result["code"]) == ("NotAuthorizedError", "FORBIDDEN"), (name, auth)
    assert await snapshot() == before


# ---------------------------------------------------------------- reservations


async def test_partner_reserves_and_releases_on_its_channel(gql, db):
    web, _, _ = await world()
    key = await f.partner_key("P1", [web])
    result = (await gql(RESERVE, {"input": {"channel": "WEB", "cartReference": "cart-1", "ttlSeconds": 120,
                                            "lines": [{"sku": "SKU-1", "quantity": 12}]}}, auth=key))["reserveStock"]
    r = result["reservation"]
    assert (r["status"], r["cartReference"], r["channel"]) == ("ACTIVE", "cart-1", {"code": "WEB"})
    assert r["lines"] == [{"warehouseCode": "W1", "sku": "SKU-1", "quantity": 10},
                          {"warehouseCode": "W2", "sku": "SKU-1", "quantity": 2}]
    expires = datetime.fromisoformat(r["expiresAt"])
    assert datetime.now(UTC) < expires <= datetime.now(UTC) + timedelta(seconds=120)
    row = await Reservation.get(token=r["token"])
    assert row.owner == "partner:P1"
    released = (await gql(RELEASE, {"token": r["token"]}, auth=key))["releaseReservation"]
    assert released["reservation"] == {"token": r["token"], "status": "RELEASED"}
    assert await InventoryLevel.filter(reserved__gt=0).count() == 0
    again = (await gql(RELEASE, {"token": r["token"]}, auth=key))["releaseReservation"]
    assert (again["__typename"], again["code"], again["currentState"], again["allowedActions"]) == (
        "InvalidTransitionError", "INVALID_TRANSITION", "RELEASED", [])


async def test_reserve_stock_errors_change_nothing(gql, db):
    web, _, _ = await world()
    staff = await f.staff_key(["orders:write"])
    partner = await f.partner_key("P1", [web])
    before = await snapshot()
    short = (await gql(RESERVE, {"input": {"channel": "WEB", "lines": [{"sku": "SKU-1", "quantity": 15}]}}, auth=staff))["reserveStock"]
    assert (short["__typename"], short["code"]) == ("InsufficientStockError", "INSUFFICIENT_STOCK")
    assert short["shortages"] == [{"sku": "SKU-1", "requested": 15, "available": 14}]
    bad = (await gql(RESERVE, {"input": {"channel": "NOPE", "lines": [{"sku": "GHOST", "quantity": 1}]}}, auth=staff))["reserveStock"]
    assert sorted((p["code"], tuple(p["field"])) for p in bad["problems"]) == [
        ("UNKNOWN_CHANNEL", ("channel",)), ("UNKNOWN_SKU", ("lines", "0", "sku"))]
    foreign = (await gql(RESERVE, {"input": {"channel": "MKT", "lines": [{"sku": "SKU-1", "quantity": 1}]}}, auth=partner))["reserveStock"]
    unknown = (await gql(RESERVE, {"input": {"channel": "NOPE", "lines": [{"sku": "SKU-1", "quantity": 1}]}}, auth=partner))["reserveStock"]
    assert foreign["__typename"] == unknown["__typename"] == "InvalidInputError"
    assert [(p["code"], p["field"]) for p in foreign["problems"]] == [("UNKNOWN_CHANNEL", ["channel"])]
    for auth in (f.customer_token("ada@example.com"), None, await f.staff_key(["inventory:write"])):
        refused = (await gql(RESERVE, {"input": {"channel": "WEB", "lines": [{"sku": "SKU-1", "quantity": 1}]}}, auth=auth))["reserveStock"]
        assert (refused["__typename"], refused["code"]) == ("NotAuthorizedError", "FORBIDDEN")
    assert await snapshot() == before


async def test_release_reservation_errors_change_nothing(gql, db):
    web, mkt, _ = await world()
    staff = await f.staff_key()
    other_partner = await f.partner_key("P2", [mkt])
    r = (await gql(RESERVE, {"input": {"channel": "WEB", "lines": [{"sku": "SKU-1", "quantity": 2}]}}, auth=staff))["reserveStock"]
    token = r["reservation"]["token"]
    before = await snapshot()
    for auth, tok in ((staff, "RES-NOPE"), (other_partner, token)):
        result = (await gql(RELEASE, {"token": tok}, auth=auth))["releaseReservation"]
        assert (result["__typename"], result["code"]) == ("OperationError", "RESERVATION_NOT_FOUND")
    for auth in (f.customer_token("ada@example.com"), None):
        result = (await gql(RELEASE, {"token": token}, auth=auth))["releaseReservation"]
        assert (result["__typename"], result["code"]) == ("NotAuthorizedError", "FORBIDDEN")
    assert await snapshot() == before
    assert (await Reservation.get(token=token)).status.value == "ACTIVE"


# ---------------------------------------------------------------- reads

LEVELS = """query($sku: String, $warehouse: String, $low: Boolean, $first: Int, $after: String) {
  inventoryLevels(sku: $sku, warehouse: $warehouse, belowReorderPoint: $low, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } nodes { id onHand warehouse { code } variant { sku } } } }"""
MOVEMENTS = """query($kind: MovementKind, $warehouse: String, $sku: String) { stockMovements(kind: $kind, warehouse: $warehouse, sku: $sku) {
  totalCount nodes { kind quantity warehouseCode sku } } }"""
RESERVATIONS = f"""query($status: ReservationStatus) {{ reservations(status: $status) {{ totalCount nodes {{ {RESERVATION} }} }} }}"""


async def test_staff_reads_levels_with_filters(gql, db):
    await world()
    await f.stock(await f.warehouse("W4"), await f.variant("SKU-2"), 1, reorder_point=2)
    key = await f.staff_key(["inventory:read"])

    async def codes(**v):
        return [(n["warehouse"]["code"], n["variant"]["sku"]) for n in (await gql(LEVELS, v, auth=key))["inventoryLevels"]["nodes"]]

    assert await codes() == [("W1", "SKU-1"), ("W2", "SKU-1"), ("W3", "SKU-1"), ("W4", "SKU-2")]
    assert await codes(sku="SKU-1", warehouse="W2") == [("W2", "SKU-1")]
    assert await codes(low=True) == [("W4", "SKU-2")]
    assert await codes(low=False) == [("W1", "SKU-1"), ("W2", "SKU-1"), ("W3", "SKU-1")]
    page = (await gql(LEVELS, {"first": 3}, auth=key))["inventoryLevels"]
    assert (page["totalCount"], page["pageInfo"]["hasNextPage"]) == (4, True)
    rest = (await gql(LEVELS, {"after": page["pageInfo"]["endCursor"]}, auth=key))["inventoryLevels"]
    assert [n["warehouse"]["code"] for n in rest["nodes"]] == ["W4"]
    node = await gql("query($id: ID!) { node(id: $id) { ... on InventoryLevel { onHand } } }", {"id": page["nodes"][0]["id"]}, auth=key)
    assert node == {"node": {"onHand": 10}}


async def test_ledger_and_reservations_newest_first(gql, db):
    await world()
    key = await f.staff_key()
    await gql(RECEIVE, {"input": {"warehouse": "W1", "sku": "SKU-1", "quantity": 1}}, auth=key)
    r = (await gql(RESERVE, {"input": {"channel": "WEB", "lines": [{"sku": "SKU-1", "quantity": 1}]}}, auth=key))["reserveStock"]
    await gql(RESERVE, {"input": {"channel": "WEB", "lines": [{"sku": "SKU-1", "quantity": 2}]}}, auth=key)
    await gql(RELEASE, {"token": r["reservation"]["token"]}, auth=key)
    ledger = (await gql(MOVEMENTS, {}, auth=key))["stockMovements"]
    assert [(n["kind"], n["quantity"]) for n in ledger["nodes"]] == [
        ("RESERVATION_RELEASE", -1), ("RESERVATION", 2), ("RESERVATION", 1), ("RECEIPT", 1)]
    only = (await gql(MOVEMENTS, {"kind": "RECEIPT", "warehouse": "W1", "sku": "SKU-1"}, auth=key))["stockMovements"]
    assert only == {"totalCount": 1, "nodes": [{"kind": "RECEIPT", "quantity": 1, "warehouseCode": "W1", "sku": "SKU-1"}]}
    active = (await gql(RESERVATIONS, {"status": "ACTIVE"}, auth=key))["reservations"]
    assert [n["lines"] for n in active["nodes"]] == [[{"warehouseCode": "W1", "sku": "SKU-1", "quantity": 2}]]
    one = await gql("query($t: String!) { reservation(token: $t) { status } }", {"t": r["reservation"]["token"]}, auth=key)
    assert one == {"reservation": {"status": "RELEASED"}}


async def test_expired_reservations_free_stock(gql, db):
    await world()
    key = await f.staff_key()
    r = (await gql(RESERVE, {"input": {"channel": "WEB", "lines": [{"sku": "SKU-1", "quantity": 3}]}}, auth=key))["reserveStock"]
    await Reservation.filter(token=r["reservation"]["token"]).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    from ordergraph.workflows.reservations import expire_due_reservations  # noqa: PLC0415

    assert await expire_due_reservations() == 1
    data = await gql(RESERVATIONS, {"status": "EXPIRED"}, auth=key)
    assert data["reservations"]["totalCount"] == 1
    assert await InventoryLevel.filter(reserved__gt=0).count() == 0


async def test_partner_reads_only_its_channels_inventory(gql, db):
    web, mkt, _ = await world()
    staff = await f.staff_key()
    await gql(RESERVE, {"input": {"channel": "MKT", "lines": [{"sku": "SKU-1", "quantity": 1}]}}, auth=staff)
    mine = (await gql(RESERVE, {"input": {"channel": "WEB", "lines": [{"sku": "SKU-1", "quantity": 1}]}}, auth=staff))["reserveStock"]
    key = await f.partner_key("P1", [web])
    levels = (await gql(LEVELS, {}, auth=key))["inventoryLevels"]
    assert [n["warehouse"]["code"] for n in levels["nodes"]] == ["W1", "W2"]
    ledger = (await gql(MOVEMENTS, {}, auth=key))["stockMovements"]
    assert [n["warehouseCode"] for n in ledger["nodes"]] == ["W1"]
    reservations = (await gql(RESERVATIONS, {}, auth=key))["reservations"]
    assert [n["token"] for n in reservations["nodes"]] == [mine["reservation"]["token"]]
    w3 = (await gql(LEVELS, {"warehouse": "W3"}, auth=staff))["inventoryLevels"]["nodes"][0]["id"]
    assert await gql("query($id: ID!) { node(id: $id) { id } }", {"id": w3}, auth=key) == {"node": None}


async def test_inventory_reads_need_inventory_read(gql, db):
    web, _, _ = await world()
    no_scope = await f.partner_key("P1", [web], scopes=["orders:read"])
    for auth in (f.customer_token("ada@example.com"), None, await f.staff_key(["orders:read"]), no_scope):
        for query, name in ((LEVELS, "inventoryLevels"), (MOVEMENTS, "stockMovements"), (RESERVATIONS, "reservations")):
            body = await gql(query, {}, auth=auth, errors=True)
            assert body["data"] is None
            assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], name


async def test_statement_count_does_not_grow_with_the_page(gql, db):
    await world()
    key = await f.staff_key()
    for _ in range(6):
        await gql(RESERVE, {"input": {"channel": "WEB", "lines": [{"sku": "SKU-1", "quantity": 1}]}}, auth=key)
    queries = [
        "query($n: Int!) { inventoryLevels(first: $n) { nodes { onHand warehouse { code } variant { sku } } } }",
        "query($n: Int!) { stockMovements(first: $n) { nodes { kind warehouseCode sku } } }",
        f"query($n: Int!) {{ reservations(first: $n) {{ nodes {{ {RESERVATION} }} }} }}",
    ]
    for query in queries:
        counts = []
        for n in (1, 6):
            await settle_outbox()
            logger, counter = logging.getLogger("tortoise.db_client"), StatementCounter()
            old = logger.level
            logger.setLevel(logging.DEBUG)
            logger.addHandler(counter)
            try:
                await gql(query, {"n": n}, auth=key)
            finally:
                logger.removeHandler(counter)
                logger.setLevel(old)
            counts.append(counter.count)
        assert counts[0] == counts[1], (query, counts)
