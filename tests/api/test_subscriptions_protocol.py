"""graphql-transport-ws only, connection-init timeout, credentials at init, and limits."""

import asyncio

import pytest
import websockets

from tests import factories as f
from tests.ws import WSClient

ORDER_EVENTS = "subscription($id: ID!) { orderEvents(orderId: $id) { type } }"
LOW = "subscription { lowStockAlerts { type } }"


async def test_legacy_graphql_ws_protocol_is_refused(server, db):
    url = server.replace("http", "ws") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-ws"]) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd.code == 4406  # subprotocol not acceptable


async def test_no_connection_init_closes_with_4408(server, db):
    ws = await WSClient.connect(server, init=False)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await ws.recv(5)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4408, "Connection initialisation timeout")


async def test_invalid_credentials_at_init_are_refused_with_4403(server, db):
    ws = await WSClient.connect(server, init=False)
    await ws.send({"type": "connection_init", "payload": {"Authorization": "Bearer og_bad_key"}})
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await ws.recv(5)
    assert closed.value.rcvd.code == 4403


async def test_subscribing_before_init_closes_with_4401(server, db):
    ws = await WSClient.connect(server, init=False)
    await ws.subscribe(LOW)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await ws.recv(5)
    assert closed.value.rcvd.code == 4401


async def test_connections_per_viewer_are_capped_and_freed(server, db, settings):
    key = await f.staff_key()
    cap = settings.max_ws_connections_per_viewer
    open_ = [await WSClient.connect(server, key) for _ in range(cap)]
    extra = await WSClient.connect(server, init=False)
    await extra.send({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}})
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await extra.recv(5)
    assert closed.value.rcvd.code == 4403
    other = await WSClient.connect(server, await f.staff_key())  # another viewer is not affected
    await open_[0].close()
    await asyncio.sleep(0.2)
    again = await WSClient.connect(server, key)  # a freed slot can be used again
    for ws in [*open_[1:], other, again]:
        await ws.close()


async def test_subscriptions_per_connection_are_capped(server, db, settings):
    key = await f.staff_key()
    ws = await WSClient.connect(server, key)
    for _ in range(settings.max_subscriptions_per_connection):
        await ws.subscribe(LOW)
    over = await ws.subscribe(LOW)
    refused = await ws.recv()
    assert refused == {"id": over, "type": "error", "payload": [{"message": "Subscription limit reached"}]}
    await ws.expect_silence(0.2)  # the connection and its other subscriptions stay up
    await ws.close()


async def test_an_app_started_and_stopped_inside_another_leaves_its_streams_working(gql, server, db):
    """Another app served in the same process (as some tests do) starts its own event
    streaming; stopping it gives the running app its own back instead of none."""
    from ordergraph.app import create_app
    from ordergraph.subscriptions import runtime
    from tests.orders_helpers import PLACE, order_input, world
    from tests.servers import serve

    outer = runtime.current()
    async with serve(create_app(db, manage_db=False)):
        assert runtime.current() is not outer
    assert runtime.current() is outer
    await world()
    key = await f.staff_key()
    ws = await WSClient.connect(server, key)
    await ws.subscribe("subscription { lowStockAlerts { type } }")
    await ws.expect_silence(0.2)  # subscribed, no error
    order = (await gql(PLACE, {"input": order_input([("SKU-A", 1)])}, auth=key))["placeOrder"]
    assert order["__typename"] == "OrderPayload"
    await ws.subscribe("subscription($id: ID!, $a: String) { orderEvents(orderId: $id, after: $a) { type } }",
                       {"id": order["order"]["id"], "a": "0"})
    assert [m["orderEvents"]["type"] for m in await ws.take(4)][0] == "ORDER_PLACED"
    await ws.close()
