"""Live subscriptions over graphql-transport-ws, on a real WebSocket connection."""

import asyncio

import pytest
from gql import Client, gql as gql_doc
from gql.transport.websockets import WebsocketsTransport

from tests import factories as f
from tests.orders_helpers import CANCEL, HOLD, PLACE, RELEASE, order_input, world
from tests.ws import WSClient

ORDER_EVENTS = "subscription($id: ID!, $after: String) { orderEvents(orderId: $id, after: $after) { cursor sequence type aggregateType data } }"
UPDATES = "subscription($f: OrderUpdatesFilter) { orderUpdates(filter: $f) { number status event { type sequence cursor } } }"
MY_ORDERS = "subscription { myOrders { number status event { type } } }"
TRACKING = "subscription($n: String!, $e: String!) { orderTracking(number: $n, email: $e) { number status } }"
INVENTORY = "subscription($sku: String) { inventoryChanged(sku: $sku) { type sku warehouse kind quantity onHand allocated available } }"
LOW = "subscription { lowStockAlerts { type sku warehouse available reorderPoint } }"

PLACED_EVENTS = ["ORDER_PLACED", "PAYMENT_AUTHORIZED", "ORDER_CONFIRMED", "ORDER_ALLOCATED"]
# orderEvents streams every aggregate of the order: allocation made one fulfillment order
PLACED_STREAM = [*PLACED_EVENTS, "FULFILLMENT_ORDER_CREATED"]


async def _place(gql, key, lines=(("SKU-A", 1),), **kw):
    r = (await gql(PLACE, {"input": order_input(list(lines), **kw)}, auth=key))["placeOrder"]
    assert r["__typename"] == "OrderPayload", r
    return r["order"]


async def test_a_third_party_client_receives_a_whole_order_live(gql, server, db):
    await world()
    key = await f.staff_key()
    transport = WebsocketsTransport(
        url=server.replace("http", "ws") + "/graphql",
        init_payload={"Authorization": f"Bearer {key}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    received = []
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        async def listen():
            async for result in session.subscribe(gql_doc(UPDATES)):
                received.append(result["orderUpdates"])
                if len(received) == 6:
                    return

        task = asyncio.create_task(listen())
        await asyncio.sleep(0.3)
        order = await _place(gql, key)
        cancelled = (await gql(CANCEL, {"id": order["id"], "reason": "test"}, auth=key))["cancelOrder"]
        assert cancelled["__typename"] == "OrderPayload"
        await asyncio.wait_for(task, 10)
    assert [r["event"]["type"] for r in received] == PLACED_EVENTS + ["ORDER_CANCELLED", "PAYMENT_VOIDED"]
    assert {r["number"] for r in received} == {order["number"]}
    assert [r["event"]["sequence"] for r in received] == [1, 2, 3, 4, 5, 6]
    assert received[3]["status"] == "ALLOCATED" and received[4]["status"] == "CANCELLED"


async def test_order_events_replays_then_continues_live(gql, server, db):
    await world()
    key = await f.staff_key()
    order = await _place(gql, key)
    ws = await WSClient.connect(server, key)
    await ws.subscribe(ORDER_EVENTS, {"id": order["id"], "after": "0"})
    replayed = await ws.take(5)
    assert [e["orderEvents"]["type"] for e in replayed] == PLACED_STREAM
    await gql(HOLD, {"id": order["id"], "reason": "MANUAL"}, auth=key)
    live = await ws.next_data()
    assert live["orderEvents"]["type"] == "HOLD_PLACED" and live["orderEvents"]["sequence"] == 5
    await ws.expect_silence(0.3)
    await ws.close()


async def test_resume_after_a_dropped_connection_gets_every_event_once_in_order(gql, server, db):
    await world()
    key = await f.staff_key()
    order = await _place(gql, key)
    ws = await WSClient.connect(server, key)
    await ws.subscribe(ORDER_EVENTS, {"id": order["id"], "after": "0"})
    first = await ws.take(5)
    cursor = first[-1]["orderEvents"]["cursor"]
    await ws.ws.close()  # the client drops
    for _ in range(50):  # 100 events while it is away
        await gql(HOLD, {"id": order["id"], "reason": "MANUAL"}, auth=key)
        await gql(RELEASE, {"id": order["id"], "reason": "MANUAL"}, auth=key)
    ws = await WSClient.connect(server, key)
    await ws.subscribe(ORDER_EVENTS, {"id": order["id"], "after": cursor})
    resumed = [e["orderEvents"] for e in await ws.take(100)]
    assert [e["sequence"] for e in resumed] == list(range(5, 105))
    assert [e["type"] for e in resumed] == ["HOLD_PLACED", "HOLD_RELEASED"] * 50
    await gql(HOLD, {"id": order["id"], "reason": "FRAUD_REVIEW"}, auth=key)
    assert (await ws.next_data())["orderEvents"]["sequence"] == 105
    # a fraud-review hold is an exception someone must own: it streams with the order
    assert (await ws.next_data())["orderEvents"]["type"] == "EXCEPTION_RAISED"
    await ws.expect_silence(0.3)
    await ws.close()


async def test_customer_partner_and_guest_views(gql, server, db):
    from ordergraph.models.enums import ChannelKind

    w = await world()
    mkt = await f.channel("MKT", [w["east"]], kind=ChannelKind.MARKETPLACE)
    staff = await f.staff_key()
    partner = await f.partner_key("acme", [mkt])
    ada = await WSClient.connect(server, f.customer_token("ada@example.com"))
    await ada.subscribe(MY_ORDERS)
    acme = await WSClient.connect(server, partner)
    await acme.subscribe(UPDATES)
    await asyncio.sleep(0.2)
    bob_order = await _place(gql, staff, email="bob@example.com")
    ada_order = await _place(gql, staff, email="ada@example.com")
    mkt_order = await _place(gql, partner, channel="MKT", email="carol@example.com")
    got = [m["myOrders"] for m in await ada.take(4)]
    assert {m["number"] for m in got} == {ada_order["number"]}
    assert [m["event"]["type"] for m in got] == PLACED_EVENTS
    got = [m["orderUpdates"] for m in await acme.take(4)]
    assert {m["number"] for m in got} == {mkt_order["number"]}
    await ada.expect_silence(0.3)
    await acme.expect_silence(0.3)
    guest = await WSClient.connect(server)
    await guest.subscribe(TRACKING, {"n": bob_order["number"], "e": "bob@example.com"})
    assert (await guest.next_data())["orderTracking"] == {"number": bob_order["number"], "status": "ALLOCATED"}
    await gql(CANCEL, {"id": bob_order["id"], "reason": "changed mind"}, auth=staff)
    statuses = [(await guest.next_data())["orderTracking"]["status"] for _ in range(2)]
    assert statuses == ["CANCELLED", "CANCELLED"]  # ORDER_CANCELLED, PAYMENT_VOIDED
    for ws in (ada, acme, guest):
        await ws.close()


@pytest.mark.parametrize("who", ["customer", "partner", "guest"])
async def test_isolation_refuses_exactly_like_a_missing_order(gql, server, db, who):
    from ordergraph.models.enums import ChannelKind

    w = await world()
    mkt = await f.channel("MKT", [w["east"]], kind=ChannelKind.MARKETPLACE)
    staff = await f.staff_key()
    partner = await f.partner_key("acme", [mkt])
    order = await _place(gql, staff, email="bob@example.com")  # a WEB order of bob's
    if who == "guest":
        ws = await WSClient.connect(server)
        real = {"n": order["number"], "e": "ada@example.com"}
        missing = {"n": "SO-999999", "e": "ada@example.com"}
        query = TRACKING
    else:
        ws = await WSClient.connect(server, f.customer_token("ada@example.com") if who == "customer" else partner)
        real, missing, query = {"id": order["id"]}, {"id": "T3JkZXI6OTk5"}, ORDER_EVENTS
    async def outcome(variables):
        sub_id = await ws.subscribe(query, variables)
        messages = [await ws.recv()]
        while messages[-1]["type"] not in ("complete", "error"):
            messages.append(await ws.recv())
        assert {m["id"] for m in messages} == {sub_id}
        return [(m["type"], [e["extensions"] for e in m.get("payload", {}).get("errors", [])]) for m in messages]

    refused, absent = await outcome(real), await outcome(missing)
    assert refused == absent == [("next", [{"code": "NOT_FOUND"}]), ("complete", [])]
    await ws.close()


async def test_inventory_changes_and_low_stock_alerts(gql, server, db):
    from tests.orders_helpers import world as _world

    w = await _world()
    from ordergraph.models import InventoryLevel

    await InventoryLevel.filter(warehouse=w["east"], variant=w["a"]).update(reorder_point=2)
    staff = await f.staff_key()
    ws = await WSClient.connect(server, staff)
    await ws.subscribe(INVENTORY, {"sku": "SKU-A"})
    await ws.subscribe(LOW)
    await asyncio.sleep(0.2)
    await _place(gql, staff, [("SKU-A", 2), ("SKU-B", 1)])
    messages = await ws.take(2)
    kinds = sorted(next(iter(m.values()))["type"] for m in messages)
    assert kinds == ["LOW_STOCK", "STOCK_CHANGED"]
    change = next(m["inventoryChanged"] for m in messages if "inventoryChanged" in m)
    assert change == {"type": "STOCK_CHANGED", "sku": "SKU-A", "warehouse": "EAST", "kind": "ALLOCATION", "quantity": 2,
                      "onHand": 3, "allocated": 2, "available": 1}
    low = next(m["lowStockAlerts"] for m in messages if "lowStockAlerts" in m)
    assert low == {"type": "LOW_STOCK", "sku": "SKU-A", "warehouse": "EAST", "available": 1, "reorderPoint": 2}
    await ws.expect_silence(0.3)  # SKU-B's change is not for this subscription
    customer = await WSClient.connect(server, f.customer_token("ada@example.com"))
    await customer.subscribe(LOW)
    denied = await customer.recv()
    assert (denied["type"], denied["payload"]["errors"][0]["extensions"]) == ("next", {"code": "FORBIDDEN"})
    await ws.close()
    await customer.close()


async def test_live_events_are_rendered_once_per_document_and_sent_as_strawberry_would(gql, server, db):
    """Subscribers with the same document, variables and viewer share one rendered payload per
    event (the hub's lanes); another selection gets its own. The `next` message is the same
    text strawberry's own path sends (a replayed event went through it), and what a lane
    carries continues each stream with no gap or duplicate."""
    import json

    from ordergraph.subscriptions import runtime

    await world()
    key = await f.staff_key()
    order = await _place(gql, key)
    other_doc = "subscription($id: ID!) { orderEvents(orderId: $id) { sequence type } }"
    same = [await WSClient.connect(server, key) for _ in range(3)]
    for ws in same:
        await ws.subscribe(ORDER_EVENTS, {"id": order["id"], "after": "0"})
    replay_texts = [[await ws.ws.recv() for _ in range(5)] for ws in same]
    assert len({tuple(t) for t in replay_texts}) == 1  # strawberry's path: identical per subscriber
    other = await WSClient.connect(server, key)
    await other.subscribe(other_doc, {"id": order["id"]})
    await asyncio.sleep(0.2)  # `other` has no cursor: it is live once it has read the log's end
    hub = runtime.current().hub
    rendered, shared = hub.rendered, hub.shared
    await gql(HOLD, {"id": order["id"], "reason": "MANUAL"}, auth=key)  # seq 5: `other` has seen none of this order
    await gql(RELEASE, {"id": order["id"], "reason": "MANUAL"}, auth=key)  # seq 6
    live_texts = [[await ws.ws.recv() for _ in range(2)] for ws in same]
    assert len({tuple(t) for t in live_texts}) == 1
    first, second = (json.loads(t) for t in live_texts[0])
    assert [first["payload"]["data"]["orderEvents"]["sequence"], second["payload"]["data"]["orderEvents"]["sequence"]] == [5, 6]
    assert live_texts[0][1] == json.dumps(second, separators=(",", ":"))  # strawberry's encoding
    assert json.loads(replay_texts[0][0]).keys() == first.keys() == {"id", "type", "payload"}
    assert first["payload"].keys() == {"data"} and first["id"] == "1" and first["type"] == "next"
    assert [m["orderEvents"] for m in await other.take(2)] == [{"sequence": 5, "type": "HOLD_PLACED"},
                                                               {"sequence": 6, "type": "HOLD_RELEASED"}]
    # seq 5 and 6 went through the lanes for the three; `other` saw seq 5 first through its
    # stream (first event of the aggregate), then seq 6 through its own lane group.
    assert hub.shared - shared == 3 + 3 + 1
    assert hub.rendered - rendered == 1 + 2
    for ws in (*same, other):
        await ws.expect_silence(0.2)
        await ws.close()
