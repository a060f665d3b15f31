"""Each viewer sees exactly its own orders; another's answers exactly like a missing one."""

from ordergraph.models import Event, Order
from ordergraph.models.enums import ChannelKind
from tests import factories as f
from tests.orders_helpers import CANCEL, PLACE, order_input, world

LIST = "{ orders(first: 50) { totalCount edges { node { number customer { email } } } } }"
ONE = "query($n: String!) { order(number: $n) { number } }"
NODE = "query($id: ID!) { node(id: $id) { ... on Order { number } } }"
TRACK = "query($n: String!, $e: String!) { trackOrder(number: $n, email: $e) { number status email lines { sku quantity } } }"


async def _setup(gql):
    w = await world()
    mkt = await f.channel("MKT", [w["east"], w["west"]], kind=ChannelKind.MARKETPLACE)
    staff = await f.staff_key()
    acme = await f.partner_key("acme", [mkt])
    other = await f.partner_key("other", [w["channel"]])
    mine = (await gql(PLACE, {"input": order_input([("SKU-A", 1)], email="Ada@Example.com")}, auth=staff))["placeOrder"]["order"]
    theirs = (await gql(PLACE, {"input": order_input([("SKU-A", 1)], channel="MKT", email="bob@example.com")}, auth=acme))["placeOrder"]["order"]
    return staff, acme, other, mine, theirs


async def test_customer_sees_only_own_orders(gql, db):
    staff, acme, other, mine, theirs = await _setup(gql)
    ada = f.customer_token("ada@example.com")
    data = await gql(LIST, auth=ada)
    assert data["orders"]["totalCount"] == 1
    assert data["orders"]["edges"][0]["node"] == {"number": mine["number"], "customer": {"email": "ada@example.com"}}
    assert (await gql(ONE, {"n": theirs["number"]}, auth=ada))["order"] is None
    assert (await gql(ONE, {"n": "SO-999999"}, auth=ada))["order"] is None
    assert (await gql(NODE, {"id": theirs["id"]}, auth=ada))["node"] is None
    assert (await gql(NODE, {"id": mine["id"]}, auth=ada))["node"] == {"number": mine["number"]}


async def test_customer_cannot_mutate_orders(gql, db):
    staff, acme, other, mine, theirs = await _setup(gql)
    ada = f.customer_token("ada@example.com")
    events = await Event.all().count()
    r = (await gql(CANCEL, {"id": mine["id"], "reason": "x"}, auth=ada))["cancelOrder"]
    assert (r["__typename"], r["code"]) == ("NotFoundError", "NOT_FOUND")
    r = (await gql(PLACE, {"input": order_input([("SKU-A", 1)])}, auth=ada))["placeOrder"]
    assert (r["__typename"], r["code"]) == ("NotAuthorizedError", "FORBIDDEN")
    assert await Event.all().count() == events
    assert await Order.all().count() == 2


async def test_partner_sees_and_acts_only_on_its_channels(gql, db):
    staff, acme, other, mine, theirs = await _setup(gql)
    data = await gql(LIST, auth=acme)
    assert [e["node"]["number"] for e in data["orders"]["edges"]] == [theirs["number"]]
    assert (await gql(ONE, {"n": mine["number"]}, auth=acme))["order"] is None
    foreign = (await gql(CANCEL, {"id": mine["id"], "reason": "x"}, auth=acme))["cancelOrder"]
    missing = (await gql(CANCEL, {"id": "T3JkZXI6OTk5", "reason": "x"}, auth=acme))["cancelOrder"]
    assert foreign == {**missing, "message": foreign["message"]}
    assert foreign["code"] == "NOT_FOUND"
    r = (await gql(PLACE, {"input": order_input([("SKU-A", 1)], channel="WEB")}, auth=acme))["placeOrder"]
    unknown = (await gql(PLACE, {"input": order_input([("SKU-A", 1)], channel="NOPE")}, auth=acme))["placeOrder"]
    assert r["__typename"] == unknown["__typename"] == "InvalidInputError"
    assert [(p["code"], p["field"]) for p in r["problems"]] == [("UNKNOWN_CHANNEL", ["channel"])]
    assert r["problems"][0]["message"] == "unknown sales channel 'WEB'"
    assert [(p["code"], p["field"]) for p in unknown["problems"]] == [("UNKNOWN_CHANNEL", ["channel"])]
    assert (await Order.get(number=mine["number"])).status == "ALLOCATED"
    mine_other = await gql(LIST, auth=other)
    assert [e["node"]["number"] for e in mine_other["orders"]["edges"]] == [mine["number"]]


async def test_guest_tracks_with_number_and_email_only(gql, db):
    staff, acme, other, mine, theirs = await _setup(gql)
    got = (await gql(TRACK, {"n": mine["number"], "e": "ADA@example.com"}))["trackOrder"]
    assert got == {"number": mine["number"], "status": "ALLOCATED", "email": "ada@example.com", "lines": [{"sku": "SKU-A", "quantity": 1}]}
    assert (await gql(TRACK, {"n": mine["number"], "e": "bob@example.com"}))["trackOrder"] is None
    assert (await gql(TRACK, {"n": "SO-999999", "e": "ada@example.com"}))["trackOrder"] is None
    # A guest's tracked view has no addresses or customer name in the schema at all.
    body = await gql("{ __type(name: \"TrackedOrder\") { fields { name } } }")
    assert {fld["name"] for fld in body["__type"]["fields"]} == {"number", "status", "placedAt", "updatedAt", "serviceLevel", "email", "lines", "shipments"}
    # ... and its shipments no label, cost or address either
    body = await gql("{ __type(name: \"TrackedShipment\") { fields { name } } }")
    assert {fld["name"] for fld in body["__type"]["fields"]} == {
        "carrier", "trackingNumber", "direction", "status", "estimatedDelivery", "shippedAt", "deliveredAt", "trackingUrl",
        "timeline"}


async def test_anonymous_sees_no_orders(gql, db):
    await _setup(gql)
    data = await gql(LIST)
    assert data["orders"]["totalCount"] == 0


async def test_staff_without_orders_read_sees_nothing(gql, db):
    await _setup(gql)
    key = await f.staff_key(["inventory:read"])
    assert (await gql(LIST, auth=key))["orders"]["totalCount"] == 0


async def test_orders_filters_and_sort(gql, db):
    staff, acme, other, mine, theirs = await _setup(gql)
    q = "query($f: OrderFilter, $s: OrderSort) { orders(filter: $f, sort: $s) { edges { node { number } } } }"
    async def numbers(flt=None, sort=None):
        d = await gql(q, {"f": flt, "s": sort}, auth=staff)
        return [e["node"]["number"] for e in d["orders"]["edges"]]
    assert await numbers(sort="NUMBER_ASC") == [mine["number"], theirs["number"]]
    assert await numbers({"channel": "MKT"}) == [theirs["number"]]
    assert await numbers({"customerEmail": "ADA@example.com"}) == [mine["number"]]
    assert await numbers({"status": ["CANCELLED"]}) == []
    assert await numbers({"warehouse": "EAST"}, "NUMBER_ASC") == [mine["number"], theirs["number"]]
    assert await numbers({"warehouse": "WEST"}) == []
    assert await numbers({"onHold": True}) == []
    assert await numbers({"placedFrom": "2000-01-01T00:00:00Z", "placedTo": "2000-01-02T00:00:00Z"}) == []
    resp = await gql("{ orders(first: 101) { totalCount } }", auth=staff, errors=True)
    assert resp["errors"][0]["message"] == "first must be between 0 and 100"
