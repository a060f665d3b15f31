"""One subscriber's stream: replay from the log, then live from the hub, with no gap, no
duplicate and each aggregate's events in sequence order.

Live messages are taken as they come when they continue their aggregate's sequence; a
message that skips ahead (another process published it first, the relay publishes its
predecessors later, or this subscriber overflowed) is preceded by the missing events read
from the log. A stream's events are those after its cursor, or, without one, those after the
log's end when it subscribed.

Once live, a stream may hand its socket a `Lane` (lanes.py): while it waits with nothing
queued, messages that just continue their aggregate's sequence are written by the hub without
waking it, and the stream's position moves with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from ordergraph.models import Event
from ordergraph.subscriptions import runtime
from ordergraph.subscriptions.hub import Hub
from ordergraph.subscriptions.lanes import Lane, Position
from ordergraph.subscriptions.messages import EventMessage, Topic
from ordergraph.subscriptions.outbox import routing_for

Replay = Callable[[int], Awaitable[list[Event]]]
REPLAY_LIMIT = 10_000


async def _missing(aggregate: tuple[str, int], after_seq: int, before_seq: int, floor_id: int) -> list[Event]:
    return await Event.filter(
        aggregate_type=aggregate[0], aggregate_id=aggregate[1],
        sequence__gt=after_seq, sequence__lt=before_seq, id__gt=floor_id,
    ).order_by("sequence")


async def _log_end() -> int:
    ids = await Event.all().order_by("-id").limit(1).values_list("id", flat=True)
    return ids[0] if ids else 0


# The id of an aggregate's event, by sequence: events never change, so one query serves every
# subscriber that asks about the same message (a live event fanned out to thousands of them).
_ids: dict[tuple[str, int, int], asyncio.Task[int | None]] = {}
_IDS_KEPT = 4096


async def _fetch_id(key: tuple[str, int, int]) -> int | None:
    ids = await Event.filter(aggregate_type=key[0], aggregate_id=key[1], sequence=key[2]).values_list("id", flat=True)
    return ids[0] if ids else None


async def _predecessor_id(m: EventMessage) -> int | None:
    key = (m.aggregate_type, m.aggregate_id, m.sequence - 1)
    task = _ids.get(key)
    if task is None or task.get_loop() is not asyncio.get_running_loop():
        task = _ids[key] = asyncio.ensure_future(_fetch_id(key))
        while len(_ids) > _IDS_KEPT:
            del _ids[next(iter(_ids))]
    try:
        found = await asyncio.shield(task)  # one subscriber leaving must not cancel the others' query
    except Exception:
        _ids.pop(key, None)
        raise
    if found is None:
        _ids.pop(key, None)
    return found


class LiveState:
    """What a live stream needs to go on: its hub registration, where it is, and how to read
    what it missed. The stream's generator uses it, and so does a parked stream's `LiveTail`."""

    __slots__ = ("sub", "pos", "accept", "routing", "replay", "start")

    def __init__(self, sub, pos: Position, accept, routing, replay: Replay, start: int) -> None:
        self.sub = sub
        self.pos = pos
        self.accept = accept
        self.routing = routing
        self.replay = replay
        self.start = start

    async def as_messages(self, events: list[Event], routing=None) -> list[EventMessage]:
        routing = routing or self.routing
        facts = await routing(events) if routing and events else {}
        return [EventMessage.from_event(e, facts.get(e.id, {})) for e in events]

    async def caught_up(self) -> list[EventMessage]:
        """After the queue overflowed: what it dropped, read from the log."""
        sub, pos = self.sub, self.pos
        sub.overflowed = False
        sub.drain()
        out = []
        for m in await self.as_messages(await self.replay(pos.last_id)):
            if pos.fresh(m) and self.accept(m):
                pos.advance(m)
                out.append(m)
        return out

    async def taken(self, m: EventMessage) -> list[EventMessage]:
        """A live message as the stream delivers it: preceded by the events of its aggregate
        that this stream missed (read from the log), or nothing if it is not for the stream."""
        pos, accept = self.pos, self.accept
        if not accept(m) or not pos.fresh(m):
            return []
        seen = pos.seen
        prev = seen.get(m.aggregate)
        if prev is not None:
            gaps = await _missing(m.aggregate, prev, m.sequence, 0) if m.sequence > prev + 1 else []
        elif m.sequence > 1 and ((pred := await _predecessor_id(m)) is None or pred > self.start):
            gaps = await _missing(m.aggregate, 0, m.sequence, self.start)
        else:  # the aggregate's earlier events are all from before this stream's start
            gaps = []
        out = []
        if gaps:
            for gap in await self.as_messages(gaps, self.routing or routing_for):
                if pos.fresh(gap) and accept(gap):
                    seen[gap.aggregate] = gap.sequence
                    out.append(gap)
        if pos.fresh(m):  # else the lane delivered it while the gap was being read
            pos.advance(m)
            out.append(m)
        return out


async def event_stream(
    topics: list[Topic],
    *,
    after: int | None,
    replay: Replay,
    accept: Callable[[EventMessage], bool] = lambda m: True,
    routing: Callable[[list[Event]], Awaitable[dict[int, dict]]] | None = None,
    hub: Hub | None = None,
    lane: Callable[[Position, Callable[[EventMessage], bool]], Lane | None] | None = None,
) -> AsyncIterator[EventMessage]:
    """Events for `topics`: those after the cursor `after` from the log first, then live.
    `lane(position, accept)`, if given, makes the fast path to the subscriber's socket; if
    the lane can be parked (`lane.park`, see live.py and transport_ws.py), the stream hands its live tail
    to it the first time it waits with nothing queued, and its generator ends there (its task
    is cancelled): the tail goes on without a task of its own."""
    hub = hub or runtime.current().hub
    floor = after or 0
    pos = Position(floor)
    resuming = after is not None
    sub = hub.subscribe(topics)  # subscribe first: nothing published from now on is missed
    owned = True
    try:
        # Where this stream's events start: after the cursor, or (live only) after the log's
        # current end. A live message may overtake earlier events of its aggregate committed
        # after that point (the publisher failed and the relay brings them later, or another
        # process published them more slowly): those are read from the log, not skipped.
        start = floor if resuming else await _log_end()
        state = LiveState(sub, pos, accept, routing, replay, start)
        if resuming:
            for m in await state.as_messages(await replay(floor)):
                if pos.fresh(m) and accept(m):
                    pos.advance(m)
                    yield m
        if lane is not None:
            sub.lane = lane(pos, accept)
        park = getattr(sub.lane, "park", None)
        while True:
            if sub.overflowed:  # fell behind: what the queue dropped is in the log
                for m in await state.caught_up():
                    yield m
                continue
            if sub.lane is not None:
                if sub.empty():
                    sub.lane.parked = True
                    if park is not None and park(state):
                        owned = False  # the tail has the registration now; this task ends
                        await asyncio.sleep(0)  # park cancelled this task: CancelledError here
                        raise RuntimeError("a parked stream went on")  # pragma: no cover
                m = await sub.get()
                sub.lane.parked = False
                await sub.lane.flushed()  # what the lane took before this message is on the wire first
            else:
                m = await sub.get()
            for out in await state.taken(m):
                yield out
    finally:
        if owned:
            sub.close()
