"""Our graphql-transport-ws server (subscriptions/transport_ws.py) against a real client over a
real WebSocket: the messages and close codes strawberry's handler sends, and a parked live
subscription (no task of its own) that still takes the stream's own path when it must."""

import asyncio
import json

import pytest
import websockets

from tests import factories as f
from tests.orders_helpers import HOLD, PLACE, RELEASE, order_input, world
from tests.ws import PROTOCOL, WSClient

ORDER_EVENTS = "subscription($id: ID!, $after: String) { orderEvents(orderId: $id, after: $after) { sequence type aggregateType } }"
LOW = "subscription { lowStockAlerts { type } }"


async def _closed(ws: WSClient) -> tuple[int, str]:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        for _ in range(10):
            await ws.recv(5)
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def _raw(server: str):
    return await websockets.connect(server.replace("http", "ws", 1) + "/graphql", subprotocols=[PROTOCOL])


async def test_ack_ping_pong_and_queries_over_the_socket(server, db):
    key = await f.staff_key()
    ws = await WSClient.connect(server, init=False)
    await ws.send({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}})
    assert await ws.recv() == {"type": "connection_ack", "payload": None}  # as strawberry sends it
    await ws.send({"type": "ping"})
    assert await ws.recv() == {"type": "pong"}
    await ws.send({"type": "pong"})  # answered by nothing
    await ws.expect_silence(0.2)
    op = await ws.subscribe("{ __typename }")  # a query over the socket: one result, then complete
    assert await ws.recv() == {"id": op, "type": "next", "payload": {"data": {"__typename": "Query"}}}
    assert await ws.recv() == {"id": op, "type": "complete"}
    await ws.close()


@pytest.mark.parametrize(("message", "code", "reason"), [
    ("not json", 4400, "WebSocket message must be valid JSON"),
    (b"\x00binary", 4400, "WebSocket message type must be text"),
    ({"type": "nope"}, 4400, "Unknown message type: nope"),
    ({"payload": {}}, 4400, "Failed to parse message"),
    ({"type": "connection_init", "payload": "x"}, 4400, "Invalid connection init payload"),
])
async def test_bad_messages_close_with_4400(server, db, message, code, reason):
    ws = await _raw(server)
    await ws.send(message if isinstance(message, str | bytes) else json.dumps(message))
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (code, reason)


async def test_a_second_init_closes_with_4429_and_a_reused_id_with_4409(server, db):
    key = await f.staff_key()
    ws = await WSClient.connect(server, key)
    await ws.send({"type": "connection_init", "payload": {}})
    assert await _closed(ws) == (4429, "Too many initialisation requests")
    ws = await WSClient.connect(server, key)
    await ws.send({"id": "a", "type": "subscribe", "payload": {"query": LOW}})
    await ws.send({"id": "a", "type": "subscribe", "payload": {"query": LOW}})
    assert await _closed(ws) == (4409, "Subscriber for a already exists")


async def test_validation_syntax_and_operation_name_errors(server, db):
    key = await f.staff_key()
    ws = await WSClient.connect(server, key)
    op = await ws.subscribe("subscription { nope }")
    error = await ws.recv()
    assert error["id"] == op and error["type"] == "error" and "nope" in error["payload"][0]["message"]
    op = await ws.subscribe(LOW)  # the connection is still up, and the id is free again
    await ws.expect_silence(0.2)
    # With the schema's ParserCache, a syntax error is raised out of the stream: strawberry
    # logs it and completes the operation; so do we.
    op = await ws.subscribe("subscription {")
    assert await ws.recv() == {"id": op, "type": "complete"}
    await ws.send({"id": "x", "type": "subscribe", "payload": {"query": LOW, "operationName": "Other"}})
    assert await ws.recv() == {"id": "x", "type": "error", "payload": [{"message": "Unexpected error."}]}
    await ws.expect_silence(0.2)
    await ws.close()


async def test_invalid_header_credentials_refuse_the_handshake(server, db):
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(server.replace("http", "ws", 1) + "/graphql", subprotocols=[PROTOCOL],
                                 additional_headers={"Authorization": "Bearer og_bad_key"})
    assert refused.value.response.status_code == 403


async def test_a_parked_subscription_has_no_task_takes_gaps_and_new_aggregates_and_completes(gql, server, db):
    """Parked after its replay, the subscription holds no asyncio task; a live event that
    continues the stream goes through the lane, one of a new aggregate (the order's second
    fulfillment order…) through the tail's own path; `complete` ends it at once."""
    from ordergraph.subscriptions.transport_ws import LiveTail, Operation

    await world()
    key = await f.staff_key()
    order = (await gql(PLACE, {"input": order_input([("SKU-A", 1)])}, auth=key))["placeOrder"]["order"]
    import gc

    def tails() -> set[LiveTail]:
        return {o for o in gc.get_objects() if type(o) is LiveTail and o.op is not None}

    earlier = tails()  # other tests' connections, still open
    ws = await WSClient.connect(server, key)
    op = await ws.subscribe(ORDER_EVENTS, {"id": order["id"], "after": "0"})
    replayed = await ws.take(5)
    assert [e["orderEvents"]["type"] for e in replayed][0] == "ORDER_PLACED"
    await asyncio.sleep(0.05)

    def parked() -> list[Operation]:
        return [t.op for t in tails() - earlier]

    ops = parked()
    assert len(ops) == 1 and ops[0].task is None  # no task while parked
    assert parked()[0].task is None
    await gql(HOLD, {"id": order["id"], "reason": "MANUAL"}, auth=key)
    await gql(RELEASE, {"id": order["id"], "reason": "MANUAL"}, auth=key)
    live = [e["orderEvents"] for e in await ws.take(2)]
    assert [e["type"] for e in live] == ["HOLD_PLACED", "HOLD_RELEASED"]
    assert [e["sequence"] for e in live] == [5, 6]
    # The first event of an aggregate new to the stream is not the lane's: the tail wakes, runs
    # the stream's own checks (its predecessors, none here) in a task, sends it, sleeps again.
    from ordergraph.subscriptions import runtime
    from ordergraph.subscriptions.messages import EventMessage

    raw_id = (await gql("query($id: ID!) { node(id: $id) { ... on Order { number } } }", {"id": order["id"]},
                        auth=key))
    assert raw_id["node"]["number"] == order["number"]
    order_pk = int(__import__("base64").b64decode(order["id"]).decode().split(":")[1])
    hub = runtime.current().hub
    shared = hub.shared
    hub.dispatch(EventMessage(id=10_000, aggregate_type="Shipment", aggregate_id=99, sequence=1, type="TEST_EVENT",
                              data={}, actor="test", created_at="2026-12-06T00:00:00+00:00", order_id=order_pk,
                              routing={"order": {"id": order_pk, "channel_id": 0, "email": "x@example.com"}}))
    new = (await ws.next_data())["orderEvents"]
    assert (new["aggregateType"], new["sequence"], new["type"]) == ("Shipment", 1, "TEST_EVENT")
    # One that starts past its aggregate's first event: the tail reads the log for what came
    # before it (the database, from the tail's own task), finds nothing, sends it.
    hub.dispatch(EventMessage(id=10_001, aggregate_type="Shipment", aggregate_id=98, sequence=2, type="TEST_EVENT",
                              data={}, actor="test", created_at="2026-12-06T00:00:00+00:00", order_id=order_pk,
                              routing={"order": {"id": order_pk, "channel_id": 0, "email": "x@example.com"}}))
    new = (await ws.next_data())["orderEvents"]
    assert (new["aggregateType"], new["sequence"]) == ("Shipment", 2)
    assert hub.shared == shared  # not through the lane
    await asyncio.sleep(0.05)
    assert parked()[0].tail.task is None  # back to sleep
    await ws.send({"id": op, "type": "complete"})
    await asyncio.sleep(0.1)
    assert parked() == []
    await gql(HOLD, {"id": order["id"], "reason": "MANUAL"}, auth=key)
    await ws.expect_silence(0.3)
    await ws.close()
