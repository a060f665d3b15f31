"""The `ordergraph_active_subscriptions` gauge follows the hub: up on subscribe, back to zero
when the client goes away, whether it completes or just drops the socket."""

import asyncio

from tests import factories as f
from tests.orders_helpers import PLACE, order_input, world
from tests.ws import WSClient

ORDER_EVENTS = "subscription($id: ID!, $after: String) { orderEvents(orderId: $id, after: $after) { sequence type } }"


async def _gauge(gql, name: str) -> float:
    text = (await gql.http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def _wait_for(gql, name: str, value: float, timeout: float = 5.0) -> None:
    seen = None
    for _ in range(int(timeout / 0.05)):
        seen = await _gauge(gql, name)
        if seen == value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} stayed at {seen}, expected {value}")


async def test_active_subscriptions_gauge_up_on_subscribe_and_zero_after_disconnects(gql, server, db):
    await world()
    key = await f.staff_key()
    r = (await gql(PLACE, {"input": order_input([("SKU-A", 1)])}, auth=key))["placeOrder"]
    assert r["__typename"] == "OrderPayload", r
    await _wait_for(gql, "ordergraph_active_subscriptions", 0)

    clients = [await WSClient.connect(server, key) for _ in range(3)]
    for ws in clients:
        await ws.subscribe(ORDER_EVENTS, {"id": r["order"]["id"], "after": "0"})
        await ws.take(4)  # replayed: the subscription is registered in the hub (it subscribes first)
    assert await _gauge(gql, "ordergraph_active_subscriptions") == 3
    assert await _gauge(gql, "ordergraph_ws_connections") >= 3

    clients[0].ws.transport.abort()  # abrupt: no `complete`, no close frame, the TCP connection just goes
    await _wait_for(gql, "ordergraph_active_subscriptions", 2)
    await clients[1].close()  # a close frame, still without `complete`
    await _wait_for(gql, "ordergraph_active_subscriptions", 1)
    await clients[2].send({"id": "1", "type": "complete"})
    await _wait_for(gql, "ordergraph_active_subscriptions", 0)
    await clients[2].close()


async def test_a_dropped_subscription_is_freed_without_waiting_for_the_garbage_collector(gql, server, db):
    """After an abrupt disconnect, the server's objects for the connection (the protocol
    handler, its operations and parked live tails, its context, the subscription's executor)
    go as soon as nothing uses them, not at the next full collection: with thousands of
    connections dropping at once, cycles keep hundreds of megabytes waiting and the collection
    that frees them stalls every client."""
    import gc

    from ordergraph.context import Context
    from ordergraph.subscriptions.transport_ws import Connection, LiveTail, Operation, SubscriptionExecutor

    per_connection = (Connection, Operation, LiveTail, Context)
    watched = (*per_connection, SubscriptionExecutor)

    def alive(kinds=watched) -> int:
        return sum(1 for o in gc.get_objects() if isinstance(o, kinds))

    await world()
    key = await f.staff_key()
    r = (await gql(PLACE, {"input": order_input([("SKU-A", 1)])}, auth=key))["placeOrder"]
    await _wait_for(gql, "ordergraph_active_subscriptions", 0)
    gc.collect()
    gc.disable()
    try:
        before = alive()
        clients = [await WSClient.connect(server, key) for _ in range(3)]
        for ws in clients:
            await ws.subscribe(ORDER_EVENTS, {"id": r["order"]["id"], "after": "0"})
            await ws.take(4)
        # what is counted is there while connected (the three share one executor: same
        # document, variables and viewer)
        assert alive(per_connection) >= 3 * len(per_connection) and alive(SubscriptionExecutor) >= 1
        for ws in clients:
            ws.ws.transport.abort()
        await _wait_for(gql, "ordergraph_active_subscriptions", 0)
        for _ in range(40):  # the connections' tasks end on the loop's next turns
            if alive() == before:
                break
            await asyncio.sleep(0.05)
        assert alive() == before
    finally:
        gc.enable()
