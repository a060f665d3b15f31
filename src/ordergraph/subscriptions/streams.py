"""One subscriber's stream: replay from the log, then live from the hub, with no gap, no
duplicate and each aggregate's events in sequence order.

Live messages are taken as they come when they continue their aggregate's sequence; a
message that skips ahead (another process published it first, or this subscriber overflowed)
is preceded by the missing events read from the log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from ordergraph.models import Event
from ordergraph.subscriptions import runtime
from ordergraph.subscriptions.hub import Hub
from ordergraph.subscriptions.messages import EventMessage, Topic

Replay = Callable[[int], Awaitable[list[Event]]]
REPLAY_LIMIT = 10_000


async def _missing(aggregate: tuple[str, int], after_seq: int, before_seq: int, floor_id: int) -> list[Event]:
    return await Event.filter(
        aggregate_type=aggregate[0], aggregate_id=aggregate[1],
        sequence__gt=after_seq, sequence__lt=before_seq, id__gt=floor_id,
    ).order_by("sequence")


async def event_stream(
    topics: list[Topic],
    *,
    after: int | None,
    replay: Replay,
    accept: Callable[[EventMessage], bool] = lambda m: True,
    routing: Callable[[list[Event]], Awaitable[dict[int, dict]]] | None = None,
    hub: Hub | None = None,
) -> AsyncIterator[EventMessage]:
    """Events for `topics`: those after the cursor `after` from the log first, then live."""
    hub = hub or runtime.current().hub
    seen: dict[tuple[str, int], int] = {}
    floor = after or 0
    last_id = floor
    resuming = after is not None

    async def as_messages(events: list[Event]) -> list[EventMessage]:
        facts = await routing(events) if routing and events else {}
        return [EventMessage.from_event(e, facts.get(e.id, {})) for e in events]

    def fresh(m: EventMessage) -> bool:
        prev = seen.get(m.aggregate)
        return prev is None or m.sequence > prev

    with hub.subscribe(topics) as sub:  # subscribe first: nothing published from now on is missed
        if resuming:
            for m in await as_messages(await replay(floor)):
                if fresh(m) and accept(m):
                    seen[m.aggregate] = m.sequence
                    last_id = max(last_id, m.id)
                    yield m
        while True:
            if sub.overflowed:  # fell behind: what the queue dropped is in the log
                sub.overflowed = False
                sub.drain()
                for m in await as_messages(await replay(last_id)):
                    if fresh(m) and accept(m):
                        seen[m.aggregate] = m.sequence
                        last_id = max(last_id, m.id)
                        yield m
            m = await sub.get()
            if not accept(m) or not fresh(m):
                continue
            prev = seen.get(m.aggregate)
            if (prev is not None and m.sequence > prev + 1) or (prev is None and resuming and m.sequence > 1):
                for gap in await as_messages(await _missing(m.aggregate, prev or 0, m.sequence, 0 if prev else floor)):
                    if fresh(gap) and accept(gap):
                        seen[gap.aggregate] = gap.sequence
                        yield gap
            seen[m.aggregate] = m.sequence
            last_id = max(last_id, m.id)
            yield m
