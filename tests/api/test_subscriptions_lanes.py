"""The hub's lanes (subscriptions/lanes.py) against a socket that stops taking data: what is
written waits in order behind the blocked write, the stream's own path waits for it, and a
closed lane writes nothing more. The socket here is a coroutine that blocks on an event, as
uvicorn's send does while the transport is paused; the hub is the real one."""

import asyncio

from ordergraph.subscriptions.hub import Hub
from ordergraph.subscriptions.lanes import FAST, SKIP, SLOW, Lane, Position
from ordergraph.subscriptions.messages import EventMessage


def _message(seq: int, order_id: int = 7) -> EventMessage:
    return EventMessage(id=100 + seq, aggregate_type="Order", aggregate_id=order_id, sequence=seq, type=f"E{seq}",
                        data={}, actor="test", created_at="2026-11-22T00:00:00+00:00", order_id=order_id,
                        routing={"order": {"id": order_id, "channel_id": 1, "email": "a@example.com",
                                           "number": "SO-1", "status": "ALLOCATED"}})


class Socket:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.writable = asyncio.Event()
        self.writable.set()

    async def send_text(self, text: str) -> None:
        await self.writable.wait()
        self.sent.append(text)


def _lane(socket: Socket, position: Position, renders: list[int], open_: list[bool] | None = None) -> Lane:
    def render(m: EventMessage) -> str:
        renders.append(m.sequence)
        return f'{{"seq":{m.sequence}}}'

    return Lane(key="k", position=position, accept=lambda m: m.order_id == 7, render=render,
                prefix='{"id":"1","type":"next","payload":', send_text=socket.send_text,
                is_open=lambda: (open_ or [True])[0], backlog_limit=3)


async def test_lanes_share_one_render_keep_order_behind_a_blocked_socket_and_fall_back_when_full():
    hub = Hub()
    fast, slow = Socket(), Socket()
    renders: list[int] = []
    subs, positions = [], []
    for socket in (fast, slow):
        sub = hub.subscribe([("order", 7)])
        pos = Position()
        pos.seen[("Order", 7)] = 4  # replayed up to sequence 4
        sub.lane = _lane(socket, pos, renders)
        sub.lane.parked = True
        subs.append(sub)
        positions.append(pos)

    assert subs[0].lane.verdict(_message(4)) == SKIP  # a duplicate
    assert subs[0].lane.verdict(_message(6)) == SLOW  # a gap: the stream reads it from the log
    assert subs[0].lane.verdict(_message(5, order_id=8)) == SKIP  # not this stream's
    assert subs[0].lane.verdict(_message(5)) == FAST

    hub.dispatch(_message(5))
    assert renders == [5]  # once for both lanes
    assert fast.sent == slow.sent == ['{"id":"1","type":"next","payload":{"seq":5}}']
    assert [p.seen[("Order", 7)] for p in positions] == [5, 5] and subs[0].empty()

    slow.writable.clear()  # the second client stops reading
    for seq in (6, 7, 8, 9):
        hub.dispatch(_message(seq))
    assert [t[-3] for t in fast.sent] == ["5", "6", "7", "8", "9"]
    assert len(slow.sent) == 1  # 6 blocked, 7 8 9 behind it
    hub.dispatch(_message(10))  # the backlog is full: the stream's own path takes it
    assert [m.sequence for m in subs[1].drain()] == [10] and subs[1].lane.parked is False
    flushed = asyncio.ensure_future(subs[1].lane.flushed())
    await asyncio.sleep(0.01)
    assert not flushed.done()  # the stream waits for what the lane took first
    slow.writable.set()
    await asyncio.wait_for(flushed, 1)
    assert [t[-3] for t in slow.sent] == ["5", "6", "7", "8", "9"]
    assert fast.sent[-1].endswith('{"seq":10}}')  # the other lane was not held up
    assert renders == [5, 6, 7, 8, 9, 10]

    for sub in subs:
        sub.close()
    assert hub.active == 0


async def test_a_closed_lane_or_a_completed_operation_writes_nothing():
    socket = Socket()
    renders: list[int] = []
    pos = Position()
    pos.seen[("Order", 7)] = 1
    open_ = [True]
    lane = _lane(socket, pos, renders, open_)
    lane.deliver(_message(2), "{}")
    open_[0] = False  # the client sent `complete`
    lane.deliver(_message(3), "{}")
    assert len(socket.sent) == 1 and pos.seen[("Order", 7)] == 3
    lane.close()
    assert lane.verdict(_message(4)) == SLOW  # the stream decides, and finds the operation gone
