"""ordergraph.ws_protocol.LeanWebSocketProtocol (what `ordergraph serve` runs) on real
connections: the handshake is not kept, the inbox is not a Queue, and a dropped connection's
protocol object is freed by reference counting."""

import asyncio
import gc
import weakref

from ordergraph.ws_protocol import Flag, Inbox, LeanWebSocketProtocol
from tests import factories as f
from tests.ws import WSClient


def _protocols() -> list[LeanWebSocketProtocol]:
    return [o for o in gc.get_objects() if type(o) is LeanWebSocketProtocol]


async def test_the_handshake_is_not_kept_and_the_inbox_is_small(server, db):
    key = await f.staff_key()
    before = {id(p) for p in _protocols()}
    ws = await WSClient.connect(server, key)  # Authorization travels in connection_init here…
    ws2 = await WSClient.connect(server, init=False)
    await asyncio.sleep(0.05)
    mine = [p for p in _protocols() if id(p) not in before and not p.disconnected]
    assert len(mine) == 2
    for p in mine:
        assert p.request is None and p.response is None  # the parsed handshake is gone
        assert p.scope["headers"] == []  # emptied once accepted (the app read them before)
        assert p.scope["subprotocols"] == ["graphql-transport-ws"]
        assert type(p.queue) is Inbox and type(p.writable) is Flag
        assert p.queue.empty() and p.queue._waiter is not None  # the app waits: one future, nothing else
    await ws.send({"type": "ping"})
    assert await ws.recv() == {"type": "pong"}  # the connection works without them
    await ws.close()
    await ws2.close()


async def test_a_dropped_connection_is_freed_by_reference_counting(server, db):
    key = await f.staff_key()
    gc.collect()
    gc.disable()
    try:
        before = {id(p) for p in _protocols()}
        clients = [await WSClient.connect(server, key) for _ in range(3)]
        await asyncio.sleep(0.05)
        mine = [p for p in _protocols() if id(p) not in before and not p.disconnected]
        refs = [weakref.ref(x) for p in mine for x in (p, p.conn)]  # with websockets' own protocol object
        del mine
        assert len(refs) == 6
        for ws in clients:
            ws.ws.transport.abort()  # no close frame: the TCP connection just goes
        for _ in range(40):
            if all(r() is None for r in refs):
                break
            await asyncio.sleep(0.05)
        assert [r() for r in refs] == [None] * 6
    finally:
        gc.enable()


async def test_inbox_and_flag_behave_as_queue_and_event():
    inbox = Inbox()
    got = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert await got == 1 and inbox.qsize() == 1 and not inbox.empty()
    assert await inbox.get() == 2 and inbox.empty() and inbox._items is None
    flag = Flag()
    assert await flag.wait() is True
    flag.clear()
    waiting = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    flag.set()
    assert await waiting is True and flag._waiters is None
