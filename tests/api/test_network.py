"""Warehouses, sales channels and partners over GraphQL."""

from ordergraph.models import ChannelWarehouse, Event, Partner, SalesChannel, Warehouse
from tests import factories as f

RESULT = """
    __typename
    ... on Error { code message field }
    ... on InvalidInputError { problems { code field } }
"""
WAREHOUSE = "code name address { line1 line2 city region postalCode country } latitude longitude priority active shipCountries"

CREATE_WH = f"""
mutation($input: CreateWarehouseInput!, $key: String) {{
  createWarehouse(input: $input, idempotencyKey: $key) {{ {RESULT} ... on WarehousePayload {{ warehouse {{ id {WAREHOUSE} }} }} }}
}}"""
UPDATE_WH = f"""
mutation($code: String!, $input: UpdateWarehouseInput!) {{
  updateWarehouse(code: $code, input: $input) {{ {RESULT} ... on WarehousePayload {{ warehouse {{ {WAREHOUSE} }} }} }}
}}"""
CREATE_CH = f"""
mutation($input: CreateSalesChannelInput!) {{
  createSalesChannel(input: $input) {{ {RESULT}
    ... on SalesChannelPayload {{ salesChannel {{ code name kind currency allocationStrategy stockPolicy
        captureMode setsPrices active warehouses {{ code }} }} }} }}
}}"""
UPDATE_CH = f"""
mutation($code: String!, $input: UpdateSalesChannelInput!) {{
  updateSalesChannel(code: $code, input: $input) {{ {RESULT}
    ... on SalesChannelPayload {{ salesChannel {{ code name currency stockPolicy active warehouses {{ code }} }} }} }}
}}"""
CREATE_PARTNER = f"""
mutation($input: CreatePartnerInput!) {{
  createPartner(input: $input) {{ {RESULT} ... on PartnerPayload {{ partner {{ code name channels {{ code }} }} }} }}
}}"""

WH_INPUT = {
    "code": "EAST",
    "name": "East DC",
    "address": {"line1": "1 Dock Rd", "city": "Newark", "postalCode": "07101", "country": "US"},
    "latitude": 40.73,
    "longitude": -74.17,
    "priority": 10,
    "shipCountries": ["US", "CA"],
}


async def _events(aggregate_type: str) -> list[tuple[str, dict, str]]:
    return [(e.type, e.data, e.actor) for e in await Event.filter(aggregate_type=aggregate_type).order_by("id")]


def _problems(result: dict) -> list[tuple[str, tuple[str, ...]]]:
    assert result["__typename"] == "InvalidInputError", result
    assert result["code"] == "INVALID_INPUT"
    return sorted((p["code"], tuple(p["field"])) for p in result["problems"])


# ---------------------------------------------------------------- warehouses


async def test_create_warehouse(gql, db):
    key = await f.staff_key(["catalog:write"])
    result = (await gql(CREATE_WH, {"input": WH_INPUT}, auth=key))["createWarehouse"]
    assert result["__typename"] == "WarehousePayload"
    w = result["warehouse"]
    assert {k: v for k, v in w.items() if k != "id"} == {
        "code": "EAST", "name": "East DC",
        "address": {"line1": "1 Dock Rd", "line2": None, "city": "Newark", "region": None,
                    "postalCode": "07101", "country": "US"},
        "latitude": 40.73, "longitude": -74.17, "priority": 10, "active": True, "shipCountries": ["US", "CA"],
    }
    row = await Warehouse.get(code="EAST")
    assert row.address == {"line1": "1 Dock Rd", "city": "Newark", "postal_code": "07101", "country": "US"}
    [(type_, data, actor)] = await _events("Warehouse")
    assert type_ == "WAREHOUSE_CREATED" and data["code"] == "EAST" and actor.startswith("staff:")


async def test_create_warehouse_reports_every_problem_and_writes_nothing(gql, db):
    key = await f.staff_key()
    bad = {
        "code": "bad code!",
        "name": " ",
        "address": {"line1": "", "city": "X", "postalCode": " ", "country": "ZZ"},
        "latitude": 91.0,
        "longitude": -181.0,
        "priority": -1,
        "shipCountries": ["US", "XX"],
    }
    result = (await gql(CREATE_WH, {"input": bad}, auth=key))["createWarehouse"]
    assert _problems(result) == sorted([
        ("INVALID_VALUE", ("code",)),
        ("REQUIRED", ("name",)),
        ("INCOMPLETE_ADDRESS", ("address", "line1")),
        ("INCOMPLETE_ADDRESS", ("address", "postalCode")),
        ("UNKNOWN_COUNTRY", ("address", "country")),
        ("INVALID_VALUE", ("latitude",)),
        ("INVALID_VALUE", ("longitude",)),
        ("INVALID_VALUE", ("priority",)),
        ("UNKNOWN_COUNTRY", ("shipCountries", "1")),
    ])
    assert await Warehouse.all().count() == 0
    assert await Event.all().count() == 0


async def test_create_warehouse_with_taken_code(gql, db):
    key = await f.staff_key()
    await f.warehouse("EAST")
    result = (await gql(CREATE_WH, {"input": WH_INPUT}, auth=key))["createWarehouse"]
    assert _problems(result) == [("ALREADY_EXISTS", ("code",))]
    assert await Warehouse.all().count() == 1


async def test_create_warehouse_idempotency_key_replays(gql, db):
    key = await f.staff_key()
    first = (await gql(CREATE_WH, {"input": WH_INPUT, "key": "wh-1"}, auth=key))["createWarehouse"]
    again = (await gql(CREATE_WH, {"input": WH_INPUT, "key": "wh-1"}, auth=key))["createWarehouse"]
    assert first == again and first["__typename"] == "WarehousePayload"
    other = (await gql(CREATE_WH, {"input": {**WH_INPUT, "code": "WEST"}, "key": "wh-1"}, auth=key))["createWarehouse"]
    assert other["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await Warehouse.all().count() == 1


async def test_network_mutations_are_refused_without_catalog_write(gql, db):
    ch = await f.channel("WEB", [await f.warehouse("W1")])
    viewers = [
        await f.staff_key(["orders:write", "inventory:write"]),
        await f.partner_key("P1", [ch]),
        f.customer_token("ada@example.com"),
    ]
    calls = [
        (CREATE_WH, {"input": WH_INPUT}, "createWarehouse"),
        (UPDATE_WH, {"code": "W1", "input": {"name": "Renamed"}}, "updateWarehouse"),
        (CREATE_CH, {"input": {"code": "NEW", "name": "N", "kind": "WEB", "currency": "USD"}}, "createSalesChannel"),
        (UPDATE_CH, {"code": "WEB", "input": {"active": False}}, "updateSalesChannel"),
        (CREATE_PARTNER, {"input": {"code": "P2", "name": "P2"}}, "createPartner"),
    ]
    for auth in [*viewers, None]:
        for query, variables, name in calls:
            result = (await gql(query, variables, auth=auth))[name]
            assert (result["__typename"], result["code"]) == ("NotAuthorizedError", "FORBIDDEN"), name
    assert await Warehouse.all().values_list("code", "name") == [("W1", "Warehouse W1")]
    assert await SalesChannel.all().values_list("code", "active") == [("WEB", True)]
    assert await Partner.all().count() == 1
    assert await Event.all().count() == 0


async def test_update_warehouse(gql, db):
    key = await f.staff_key()
    await f.warehouse("W1", priority=50)
    result = (await gql(UPDATE_WH, {"code": "W1", "input": {
        "name": "North", "priority": 5, "latitude": None, "longitude": None, "shipCountries": ["GB"],
        "address": {"line1": "2 Quay", "city": "Leeds", "postalCode": "LS1", "country": "GB"},
    }}, auth=key))["updateWarehouse"]
    assert result["__typename"] == "WarehousePayload"
    w = result["warehouse"]
    assert (w["name"], w["priority"], w["latitude"], w["longitude"], w["shipCountries"]) == ("North", 5, None, None, ["GB"])
    assert w["address"]["country"] == "GB" and w["active"] is True
    [(type_, data, _)] = await _events("Warehouse")
    assert type_ == "WAREHOUSE_UPDATED"
    assert set(data) == {"code", "name", "priority", "latitude", "longitude", "ship_countries", "address"}


async def test_update_warehouse_errors(gql, db):
    key = await f.staff_key()
    await f.warehouse("W1")
    missing = (await gql(UPDATE_WH, {"code": "NOPE", "input": {"name": "x"}}, auth=key))["updateWarehouse"]
    assert (missing["__typename"], missing["code"], missing["field"]) == ("NotFoundError", "NOT_FOUND", ["code"])
    bad = (await gql(UPDATE_WH, {"code": "W1", "input": {"name": "", "latitude": 100.0, "shipCountries": ["QQ"]}}, auth=key))["updateWarehouse"]
    assert _problems(bad) == sorted([
        ("REQUIRED", ("name",)), ("INVALID_VALUE", ("latitude",)), ("UNKNOWN_COUNTRY", ("shipCountries", "0")),
    ])
    w = await Warehouse.get(code="W1")
    assert (w.name, w.latitude, w.ship_countries) == ("Warehouse W1", 40.0, ["US", "CA"])
    assert await Event.all().count() == 0


# ---------------------------------------------------------------- sales channels


async def test_create_sales_channel_with_warehouses(gql, db):
    key = await f.staff_key()
    await f.warehouse("W1", priority=20)
    await f.warehouse("W2", priority=10)
    result = (await gql(CREATE_CH, {"input": {
        "code": "MKT", "name": "Marketplace", "kind": "MARKETPLACE", "currency": "EUR",
        "allocationStrategy": "PROXIMITY", "stockPolicy": "ACCEPT", "captureMode": "ON_CONFIRMATION",
        "setsPrices": True, "warehouses": ["W1", "W2"],
    }}, auth=key))["createSalesChannel"]
    assert result["salesChannel"] == {
        "code": "MKT", "name": "Marketplace", "kind": "MARKETPLACE", "currency": "EUR",
        "allocationStrategy": "PROXIMITY", "stockPolicy": "ACCEPT", "captureMode": "ON_CONFIRMATION",
        "setsPrices": True, "active": True, "warehouses": [{"code": "W2"}, {"code": "W1"}],
    }
    [(type_, data, _)] = await _events("SalesChannel")
    assert type_ == "SALES_CHANNEL_CREATED" and data["warehouses"] == ["W1", "W2"]


async def test_create_sales_channel_errors(gql, db):
    key = await f.staff_key()
    await f.warehouse("W1")
    await f.channel("WEB", [])
    result = (await gql(CREATE_CH, {"input": {
        "code": "WEB", "name": "", "kind": "WEB", "currency": "XYZ", "warehouses": ["W1", "GHOST"],
    }}, auth=key))["createSalesChannel"]
    assert _problems(result) == sorted([
        ("ALREADY_EXISTS", ("code",)), ("REQUIRED", ("name",)),
        ("INVALID_VALUE", ("currency",)), ("NOT_FOUND", ("warehouses", "1")),
    ])
    assert await SalesChannel.all().count() == 1
    assert await ChannelWarehouse.all().count() == 0
    assert await Event.all().count() == 0


async def test_update_sales_channel_replaces_warehouses(gql, db):
    key = await f.staff_key()
    w1, w2 = await f.warehouse("W1"), await f.warehouse("W2")
    await f.channel("WEB", [w1])
    result = (await gql(UPDATE_CH, {"code": "WEB", "input": {
        "name": "Web shop", "stockPolicy": "ACCEPT", "warehouses": ["W2"],
    }}, auth=key))["updateSalesChannel"]
    assert result["salesChannel"] == {
        "code": "WEB", "name": "Web shop", "currency": "USD", "stockPolicy": "ACCEPT", "active": True,
        "warehouses": [{"code": "W2"}],
    }
    assert await ChannelWarehouse.all().values_list("warehouse_id", flat=True) == [w2.id]
    [(type_, data, _)] = await _events("SalesChannel")
    assert type_ == "SALES_CHANNEL_UPDATED"
    assert data == {"code": "WEB", "name": "Web shop", "stock_policy": "ACCEPT", "warehouses": ["W2"]}


async def test_update_sales_channel_errors(gql, db):
    key = await f.staff_key()
    w1 = await f.warehouse("W1")
    await f.channel("WEB", [w1])
    missing = (await gql(UPDATE_CH, {"code": "NOPE", "input": {"active": False}}, auth=key))["updateSalesChannel"]
    assert (missing["__typename"], missing["code"]) == ("NotFoundError", "NOT_FOUND")
    bad = (await gql(UPDATE_CH, {"code": "WEB", "input": {"currency": "ABC", "warehouses": ["GHOST"]}}, auth=key))["updateSalesChannel"]
    assert _problems(bad) == sorted([("INVALID_VALUE", ("currency",)), ("NOT_FOUND", ("warehouses", "0"))])
    ch = await SalesChannel.get(code="WEB")
    assert (ch.currency, ch.active) == ("USD", True)
    assert await ChannelWarehouse.all().values_list("warehouse_id", flat=True) == [w1.id]
    assert await Event.all().count() == 0


# ---------------------------------------------------------------- partners


async def test_create_partner(gql, db):
    key = await f.staff_key()
    web, mkt = await f.channel("WEB", []), await f.channel("MKT", [])
    result = (await gql(CREATE_PARTNER, {"input": {"code": "ACME", "name": "Acme 3PL", "channels": ["MKT", "WEB"]}}, auth=key))["createPartner"]
    assert result["partner"] == {"code": "ACME", "name": "Acme 3PL", "channels": [{"code": "WEB"}, {"code": "MKT"}]}
    assert (await Partner.get(code="ACME")).channel_ids == sorted([web.id, mkt.id])
    [(type_, data, _)] = await _events("Partner")
    assert type_ == "PARTNER_CREATED" and data["channels"] == ["MKT", "WEB"]


async def test_partner_codes_may_be_lower_case_slugs_but_not_mixed(gql, db):
    key = await f.staff_key()
    await f.channel("MKT", [])
    ok = (await gql(CREATE_PARTNER, {"input": {"code": "acme-market", "name": "Acme", "channels": ["MKT"]}}, auth=key))["createPartner"]
    assert ok["partner"]["code"] == "acme-market"
    mixed = (await gql(CREATE_PARTNER, {"input": {"code": "Acme-Market", "name": "Acme", "channels": ["MKT"]}}, auth=key))["createPartner"]
    assert _problems(mixed) == [("INVALID_VALUE", ("code",))]
    assert await Partner.all().count() == 1


async def test_create_partner_errors(gql, db):
    key = await f.staff_key()
    await f.partner_key("ACME", [])
    result = (await gql(CREATE_PARTNER, {"input": {"code": "ACME", "name": " ", "channels": ["NOPE"]}}, auth=key))["createPartner"]
    assert _problems(result) == sorted([
        ("ALREADY_EXISTS", ("code",)), ("REQUIRED", ("name",)), ("UNKNOWN_CHANNEL", ("channels", "0")),
    ])
    assert await Partner.all().count() == 1
    assert await Event.all().count() == 0


# ---------------------------------------------------------------- reads


LIST = """
query($active: Boolean, $first: Int, $after: String) {
  warehouses(active: $active, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { code } }
  salesChannels { totalCount nodes { code warehouses { code } } }
}"""


async def test_staff_lists_the_network(gql, db):
    key = await f.staff_key(["orders:read"])  # any staff scope reads the network
    w1 = await f.warehouse("W1", priority=2)
    w2 = await f.warehouse("W2", priority=1)
    await f.warehouse("OFF", active=False)
    await f.channel("WEB", [w1, w2])
    data = await gql(LIST, {"active": True, "first": 1}, auth=key)
    assert data["warehouses"]["totalCount"] == 2
    assert data["warehouses"]["nodes"] == [{"code": "W2"}]
    page2 = await gql(LIST, {"active": True, "after": data["warehouses"]["pageInfo"]["endCursor"]}, auth=key)
    assert page2["warehouses"]["nodes"] == [{"code": "W1"}]
    assert page2["warehouses"]["pageInfo"]["hasNextPage"] is False
    assert data["salesChannels"]["nodes"] == [{"code": "WEB", "warehouses": [{"code": "W2"}, {"code": "W1"}]}]
    one = await gql('{ warehouse(code: "OFF") { code active } salesChannel(code: "WEB") { code } }', auth=key)
    assert one == {"warehouse": {"code": "OFF", "active": False}, "salesChannel": {"code": "WEB"}}


async def test_partner_reads_only_its_channels_and_their_warehouses(gql, db):
    w1, w2 = await f.warehouse("W1"), await f.warehouse("W2")
    mine = await f.channel("MINE", [w1])
    await f.channel("OTHER", [w2])
    key = await f.partner_key("P1", [mine])
    data = await gql(LIST, auth=key)
    assert data["warehouses"]["nodes"] == [{"code": "W1"}]
    assert data["salesChannels"]["nodes"] == [{"code": "MINE", "warehouses": [{"code": "W1"}]}]
    one = await gql('{ warehouse(code: "W2") { code } salesChannel(code: "OTHER") { code } }', auth=key)
    assert one == {"warehouse": None, "salesChannel": None}
    staff = await f.staff_key()
    ids = await gql('{ a: warehouse(code: "W2") { id } b: salesChannel(code: "OTHER") { id } c: salesChannel(code: "MINE") { id } }', auth=staff)
    expected = [(ids["a"]["id"], None), (ids["b"]["id"], None), (ids["c"]["id"], {"__typename": "SalesChannel"})]
    for gid, node in expected:
        assert (await gql("query($id: ID!) { node(id: $id) { __typename } }", {"id": gid}, auth=key))["node"] == node


async def test_customers_and_anonymous_read_no_network(gql, db):
    w1 = await f.warehouse("W1")
    await f.channel("WEB", [w1])
    for auth in (f.customer_token("ada@example.com"), None):
        data = await gql(LIST, auth=auth)
        assert data["warehouses"] == {"totalCount": 0, "pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": []}
        assert data["salesChannels"] == {"totalCount": 0, "nodes": []}
        one = await gql('{ warehouse(code: "W1") { code } salesChannel(code: "WEB") { code } }', auth=auth)
        assert one == {"warehouse": None, "salesChannel": None}
