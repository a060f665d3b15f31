"""placeOrder: capture, validation, stock policy, payment outcomes (GraphQL over HTTP)."""

import asyncio
from decimal import Decimal

from ordergraph.integrations.payments import get_gateway
from ordergraph.models import Allocation, Event, InventoryLevel, Order, OrderLine, Payment, StockMovement
from tests import factories as f
from tests.orders_helpers import ORDER_BY_NUMBER, PLACE, SHIP_TO, order_input, world


async def _counts():
    return (
        await Order.all().count(), await OrderLine.all().count(), await Allocation.all().count(),
        await Payment.all().count(), await StockMovement.all().count(), await Event.all().count(),
    )


async def _levels():
    return sorted(await InventoryLevel.all().values_list("id", "on_hand", "allocated", "reserved"))


async def test_place_order_allocates_splits_and_records_everything(gql, db):
    w = await world()
    key = await f.staff_key()
    r = (await gql(PLACE, {"input": order_input([("SKU-A", 5), ("SKU-B", 1)])}, auth=key))["placeOrder"]
    assert r["__typename"] == "OrderPayload"
    o = r["order"]
    assert o["number"] == "SO-000001"
    assert o["status"] == "ALLOCATED"
    assert o["total"] == {"amount": "75.50", "currency": "USD"}
    assert o["lines"][0]["allocations"] == [
        {"warehouseCode": "EAST", "quantity": 3, "status": "ACTIVE"},
        {"warehouseCode": "WEST", "quantity": 2, "status": "ACTIVE"},
    ]
    assert o["lines"][1]["allocations"] == [{"warehouseCode": "EAST", "quantity": 1, "status": "ACTIVE"}]
    assert o["payments"] == [{"status": "AUTHORIZED", "authorized": {"amount": "75.50"}, "captured": {"amount": "0.00"}, "refunded": {"amount": "0.00"}}]
    # the order's own events, then one fulfillment order per warehouse (each its own stream)
    assert [e["type"] for e in o["timeline"]] == ["ORDER_PLACED", "PAYMENT_AUTHORIZED", "ORDER_CONFIRMED", "ORDER_ALLOCATED",
                                                  "FULFILLMENT_ORDER_CREATED", "FULFILLMENT_ORDER_CREATED"]
    assert [e["sequence"] for e in o["timeline"]] == [1, 2, 3, 4, 1, 1]
    assert o["availableActions"] == ["CANCEL", "PLACE_HOLD"]
    a_east = await InventoryLevel.get(warehouse=w["east"], variant=w["a"])
    a_west = await InventoryLevel.get(warehouse=w["west"], variant=w["a"])
    assert (a_east.on_hand, a_east.allocated, a_west.on_hand, a_west.allocated) == (3, 3, 10, 2)
    ledger = await StockMovement.all().order_by("id").values_list("kind", "quantity", "allocated_after", "reference")
    assert ledger == [("ALLOCATION", 3, 3, "SO-000001"), ("ALLOCATION", 2, 2, "SO-000001"), ("ALLOCATION", 1, 1, "SO-000001")]


async def test_validation_reports_every_problem_and_writes_nothing(gql, db):
    await world()
    await f.variant("SKU-OFF", active=False)
    key = await f.staff_key()
    before = await _counts()
    bad = {
        "channel": "WEB",
        "currency": "EUR",
        "customer": {"email": "not-an-email"},
        "shippingAddress": {"name": "A", "line1": "", "city": "X", "postalCode": "1", "country": "ZZ"},
        "lines": [
            {"sku": "NOPE", "quantity": 1},
            {"sku": "SKU-OFF", "quantity": 1},
            {"sku": "SKU-A", "quantity": 0},
            {"sku": "SKU-B", "quantity": 1},
            {"sku": "SKU-B", "quantity": 2},
            {"sku": "SKU-C", "quantity": 1, "unitPrice": "1.00"},
        ],
    }
    r = (await gql(PLACE, {"input": bad}, auth=key))["placeOrder"]
    assert r["__typename"] == "InvalidInputError"
    assert r["code"] == "INVALID_INPUT"
    got = sorted((p["code"], ".".join(p["field"])) for p in r["problems"])
    assert got == sorted([
        ("CURRENCY_MISMATCH", "currency"),
        ("INVALID_EMAIL", "customer.email"),
        ("INCOMPLETE_ADDRESS", "shippingAddress.line1"),
        ("UNKNOWN_COUNTRY", "shippingAddress.country"),
        ("UNKNOWN_SKU", "lines.0.sku"),
        ("INACTIVE_SKU", "lines.1.sku"),
        ("QUANTITY_OUT_OF_RANGE", "lines.2.quantity"),
        ("DUPLICATE_LINE", "lines.4"),
        ("PRICE_NOT_ALLOWED", "lines.5.unitPrice"),
    ])
    assert await _counts() == before


async def test_duplicate_external_id_names_the_existing_order(gql, db):
    await world()
    key = await f.staff_key()
    first = (await gql(PLACE, {"input": order_input([("SKU-A", 1)], externalId="MKT-1")}, auth=key))["placeOrder"]
    assert first["__typename"] == "OrderPayload"
    before = await _counts()
    again = (await gql(PLACE, {"input": order_input([("SKU-A", 1)], externalId="MKT-1")}, auth=key))["placeOrder"]
    assert again["__typename"] == "InvalidInputError"
    [problem] = again["problems"]
    assert problem["__typename"] == "DuplicateExternalIdProblem"
    assert problem["code"] == "DUPLICATE_EXTERNAL_ID"
    assert problem["existingOrderNumber"] == first["order"]["number"]
    assert await _counts() == before


async def test_reject_channel_refuses_short_order_writes_nothing_and_voids_authorization(gql, db):
    await world()
    key = await f.staff_key()
    before, levels = await _counts(), await _levels()
    r = (await gql(PLACE, {"input": order_input([("SKU-C", 3), ("SKU-A", 1)])}, auth=key))["placeOrder"]
    assert r["__typename"] == "InsufficientStockError"
    assert r["code"] == "INSUFFICIENT_STOCK"
    assert r["shortages"] == [{"sku": "SKU-C", "requested": 3, "available": 2}]
    assert await _counts() == before
    assert await _levels() == levels
    newest = list(get_gateway("local").authorizations.values())[-1]
    assert (newest.amount, newest.status) == (Decimal("25.00"), "voided")


async def test_accept_channel_backorders_and_stock_arrival_allocates_oldest_first(gql, db):
    from ordergraph.models.enums import MovementKind, StockPolicy
    from ordergraph.workflows.backorders import on_stock_increased
    from ordergraph.workflows.stock import move

    w = await world(stock_policy=StockPolicy.ACCEPT)
    key = await f.staff_key()
    first = (await gql(PLACE, {"input": order_input([("SKU-C", 4)])}, auth=key))["placeOrder"]["order"]
    second = (await gql(PLACE, {"input": order_input([("SKU-C", 1)])}, auth=key))["placeOrder"]["order"]
    assert first["status"] == "PARTIALLY_ALLOCATED"
    assert first["lines"][0]["allocatedQuantity"] == 2 and first["lines"][0]["backorderedQuantity"] == 2
    assert second["status"] == "BACKORDERED"
    assert "ALLOCATE" in first["availableActions"]
    level = await InventoryLevel.get(warehouse=w["west"], variant=w["c"])
    await move(level.id, MovementKind.RECEIPT, actor="test", d_on_hand=2, reason="po-1")
    await on_stock_increased(w["c"].id, "test")
    one = (await gql(ORDER_BY_NUMBER, {"n": first["number"]}, auth=key))["order"]
    two = (await gql(ORDER_BY_NUMBER, {"n": second["number"]}, auth=key))["order"]
    assert one["status"] == "ALLOCATED" and one["lines"][0]["backorderedQuantity"] == 0
    assert two["status"] == "BACKORDERED"  # the oldest order took the 2 units that arrived
    await move(level.id, MovementKind.RECEIPT, actor="test", d_on_hand=1, reason="po-2")
    await on_stock_increased(w["c"].id, "test")
    two = (await gql(ORDER_BY_NUMBER, {"n": second["number"]}, auth=key))["order"]
    assert two["status"] == "ALLOCATED"
    assert [e["type"] for e in two["timeline"]][-3:] == ["ORDER_ALLOCATED", "FULFILLMENT_ORDER_CREATED", "EXCEPTION_RESOLVED"]
    assert two["timeline"][-3]["data"]["status"] == {"from": "BACKORDERED", "to": "ALLOCATED"}
    assert two["timeline"][-1]["data"]["kind"] == "OUT_OF_STOCK"  # the backorder's exception closed itself


async def test_declined_payment_captures_order_on_payment_hold_then_retry_proceeds(gql, db):
    from tests.orders_helpers import RETRY

    await world()
    key = await f.staff_key()
    levels = await _levels()
    r = (await gql(PLACE, {"input": order_input([("SKU-A", 1)], token="tok_decline")}, auth=key))["placeOrder"]
    o = r["order"]
    assert o["status"] == "PENDING"
    assert o["onHold"] is True
    assert o["holds"] == [{"reason": "PAYMENT", "active": True}]
    assert o["payments"][0]["status"] == "FAILED"
    assert [e["type"] for e in o["timeline"]] == ["ORDER_PLACED", "PAYMENT_DECLINED", "HOLD_PLACED", "EXCEPTION_RAISED"]
    assert o["timeline"][3]["data"]["kind"] == "PAYMENT_FAILED"
    assert o["timeline"][1]["data"]["decline_code"] == "card_declined"
    assert "CONFIRM" not in o["availableActions"]
    assert await _levels() == levels  # nothing allocated while on hold
    again = (await gql(RETRY, {"id": o["id"], "token": "tok_insufficient_funds"}, auth=key))["retryPayment"]
    assert again["__typename"] == "PaymentError"
    assert again["code"] == "INSUFFICIENT_FUNDS"
    ok = (await gql(RETRY, {"id": o["id"], "token": "tok_approve"}, auth=key))["retryPayment"]["order"]
    assert ok["status"] == "ALLOCATED"
    assert ok["onHold"] is False
    assert [p["status"] for p in ok["payments"]] == ["FAILED", "FAILED", "AUTHORIZED"]
    assert [e["type"] for e in ok["timeline"]][-6:] == ["PAYMENT_AUTHORIZED", "HOLD_RELEASED", "EXCEPTION_RESOLVED",
                                                        "ORDER_CONFIRMED", "ORDER_ALLOCATED", "FULFILLMENT_ORDER_CREATED"]
    assert ok["timeline"][-4]["data"]["kind"] == "PAYMENT_FAILED"  # the retry fixed what the decline raised


async def test_transient_gateway_error_is_retried(gql, db):
    await world()
    key = await f.staff_key()
    r = (await gql(PLACE, {"input": order_input([("SKU-A", 1)], token="tok_transient")}, auth=key))["placeOrder"]
    assert r["order"]["payments"][0]["status"] == "AUTHORIZED"
    assert r["order"]["status"] == "ALLOCATED"


async def test_gateway_down_refuses_the_order_and_writes_nothing(gql, db):
    await world()
    key = await f.staff_key()
    before = await _counts()
    r = (await gql(PLACE, {"input": order_input([("SKU-A", 1)], token="tok_gateway_down")}, auth=key))["placeOrder"]
    assert r["__typename"] == "PaymentError"
    assert r["code"] == "GATEWAY_UNAVAILABLE"
    assert await _counts() == before


async def test_twenty_concurrent_calls_with_one_key_make_one_order(gql, db):
    await world()
    key = await f.staff_key()
    variables = {"input": order_input([("SKU-A", 1)]), "key": "checkout-42"}
    results = await asyncio.gather(*[gql(PLACE, variables, auth=key) for _ in range(20)])
    numbers = {r["placeOrder"]["order"]["number"] for r in results}
    assert numbers == {"SO-000001"}
    assert await Order.all().count() == 1
    assert await Allocation.all().count() == 1
    reused = (await gql(PLACE, {"input": order_input([("SKU-A", 2)]), "key": "checkout-42"}, auth=key))["placeOrder"]
    assert reused["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await Order.all().count() == 1


async def test_idempotent_replay_of_a_refusal(gql, db):
    await world()
    key = await f.staff_key()
    v = {"input": order_input([("SKU-C", 50)]), "key": "k-short"}
    first = (await gql(PLACE, v, auth=key))["placeOrder"]
    second = (await gql(PLACE, v, auth=key))["placeOrder"]
    assert first == second
    assert first["code"] == "INSUFFICIENT_STOCK"


async def test_marketplace_channel_sets_prices_and_requires_them(gql, db):
    from ordergraph.models.enums import ChannelKind

    w = await world()
    await f.channel("MKT", [w["east"]], kind=ChannelKind.MARKETPLACE, sets_prices=True)
    key = await f.staff_key()
    lines = [{"sku": "SKU-A", "quantity": 1, "unitPrice": "8.99", "externalLineId": "L1"},
             {"sku": "SKU-A", "quantity": 1, "unitPrice": "8.99", "externalLineId": "L2"},
             {"sku": "SKU-B", "quantity": 1}]
    r = (await gql(PLACE, {"input": order_input(lines, channel="MKT")}, auth=key))["placeOrder"]
    assert r["__typename"] == "InvalidInputError"
    assert [(p["code"], p["field"]) for p in r["problems"]] == [("PRICE_REQUIRED", ["lines", "2", "unitPrice"])]
    lines[2]["unitPrice"] = "20.00"
    r = (await gql(PLACE, {"input": order_input(lines, channel="MKT")}, auth=key))["placeOrder"]
    assert r["order"]["total"] == {"amount": "37.98", "currency": "USD"}
    assert [ln["allocatedQuantity"] for ln in r["order"]["lines"]] == [1, 1, 1]


async def test_what_place_order_answers_is_what_it_committed(gql, db):
    """The payload is built from the order the workflow wrote, without reading it again: read
    afresh, each outcome is the same (number, status, lines, allocations, payments, timeline)."""
    from ordergraph.models.enums import StockPolicy  # noqa: PLC0415
    from ordergraph.workflows.reservations import reserve_stock  # noqa: PLC0415

    await world(stock_policy=StockPolicy.ACCEPT)
    key = await f.staff_key()
    held = await reserve_stock("WEB", [("SKU-B", 2)], "cart-1", "guest:ada@example.com", "test")
    inputs = [
        order_input([("SKU-A", 5), ("SKU-B", 1)]),                         # allocated, split
        order_input([("SKU-C", 5)]),                                       # partly backordered
        order_input([("SKU-A", 1)], token="tok_decline"),                  # PENDING on a payment hold
        order_input([("SKU-B", 2)], reservationToken=held.token),          # from a reservation
        order_input([("SKU-A", 1)], token=None),                           # no payment
    ]
    statuses = []
    for body in inputs:
        placed = (await gql(PLACE, {"input": body}, auth=key))["placeOrder"]
        assert placed["__typename"] == "OrderPayload", placed
        fresh = (await gql(ORDER_BY_NUMBER, {"n": placed["order"]["number"]}, auth=key))["order"]
        assert fresh == placed["order"]
        row = await Order.get(number=placed["order"]["number"])
        assert row.number == f"SO-{row.id:06d}"
        statuses.append(placed["order"]["status"])
    assert statuses == ["ALLOCATED", "PARTIALLY_ALLOCATED", "PENDING", "ALLOCATED", "ALLOCATED"]
