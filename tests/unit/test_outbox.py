"""The outbox publisher, the relay, and a subscriber stream's gap filling (no GraphQL)."""

import asyncio
import contextlib

import pytest
from datetime import UTC, datetime, timedelta

from ordergraph.db import transaction
from ordergraph.models import Event
from ordergraph.subscriptions.bus import InMemoryBus
from ordergraph.subscriptions.hub import Hub
from ordergraph.subscriptions.messages import EventMessage
from ordergraph.subscriptions.outbox import Publisher, relay_once
from ordergraph.subscriptions.streams import event_stream
from ordergraph.workflows.events import record_event, set_event_sink


@pytest.fixture(autouse=True)
def no_app_sink():
    """These tests drive their own publisher: the app's (if a server runs) must not take the events."""
    previous = set_event_sink(None)
    yield
    set_event_sink(previous)


async def _events(n: int, aggregate_id: int = 1) -> list[Event]:
    async with transaction():
        return [await record_event("Test", aggregate_id, f"E{i}", "test", {"i": i}) for i in range(1, n + 1)]


async def test_relay_publishes_what_was_left_unpublished_once(db):
    hub = Hub()
    bus = InMemoryBus(hub)
    events = await _events(3)
    await Event.filter(id=events[0].id).update(published_at=datetime.now(UTC))
    with hub.subscribe([("all",)]) as sub:
        assert await relay_once(bus, grace=timedelta(seconds=5)) == 0  # too recent: the publisher's job
        assert await relay_once(bus, grace=timedelta(0)) == 2
        assert [m.type for m in sub.drain()] == ["E2", "E3"]
        assert await relay_once(bus, grace=timedelta(0)) == 0
    assert await Event.filter(published_at__isnull=True).count() == 0


@contextlib.asynccontextmanager
async def _publishing(mark_delay: float | None = None):
    """A started Publisher on an in-memory bus, installed as the event sink, and a subscription
    to every event; both taken down afterwards."""
    hub = Hub()
    publisher = Publisher(InMemoryBus(hub))
    if mark_delay is not None:
        publisher.MARK_DELAY = mark_delay
    publisher.start()
    set_event_sink(publisher.submit)
    try:
        with hub.subscribe([("all",)]) as sub:
            yield publisher, sub
    finally:
        set_event_sink(None)
        await publisher.stop()


async def test_publisher_publishes_after_commit_only(db):
    async with _publishing() as (publisher, sub):
        try:
            async with transaction():
                await record_event("Test", 1, "ROLLED_BACK", "test")
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        await _events(2)
        await publisher.flush()
        assert [(m.type, m.sequence) for m in sub.drain()] == [("E1", 1), ("E2", 2)]
        assert await Event.filter(published_at__isnull=True).count() == 0


async def test_publisher_publishes_at_once_and_marks_batches_together_soon_after(db):
    async with _publishing(mark_delay=0.3) as (publisher, sub):
        for i in range(3):  # three transactions, published as three batches
            await _events(1, aggregate_id=10 + i)
            await asyncio.wait_for(sub.get(), 2)
        # every event is out, none is marked yet: the marks wait for the group
        assert await Event.filter(published_at__isnull=True).count() == 3
        await asyncio.sleep(0.6)
        marked = await Event.all().values_list("published_at", flat=True)
        assert len(marked) == 3 and None not in marked and len(set(marked)) == 1  # one UPDATE
        await _events(1, aggregate_id=20)
        await asyncio.wait_for(sub.get(), 2)
        await publisher.flush()  # flush marks what is waiting without the delay
        assert await Event.filter(published_at__isnull=True).count() == 0


async def test_events_published_while_a_mark_is_on_its_way_are_marked_too(db, monkeypatch):
    """The marker that is running its UPDATE when another batch is published marks that batch
    as well: no later publication is needed for it (it once waited for one, or for the relay)."""
    from ordergraph.subscriptions import outbox  # noqa: PLC0415

    real, entered, release = outbox.mark_published, asyncio.Event(), asyncio.Event()

    async def held_first(ids, at=None):
        if not entered.is_set():  # the first UPDATE waits until the second batch is out
            entered.set()
            await release.wait()
        await real(ids, at)

    monkeypatch.setattr(outbox, "mark_published", held_first)
    async with _publishing(mark_delay=0.05) as (_, sub):
        await _events(1, aggregate_id=10)
        await asyncio.wait_for(sub.get(), 2)
        await asyncio.wait_for(entered.wait(), 2)  # the marker is in its UPDATE
        await _events(1, aggregate_id=11)
        await asyncio.wait_for(sub.get(), 2)
        release.set()
        for _ in range(40):
            if await Event.filter(published_at__isnull=True).count() == 0:
                break
            await asyncio.sleep(0.05)
        assert await Event.filter(published_at__isnull=True).count() == 0


async def test_stream_fills_gaps_from_the_log_and_drops_duplicates(db):
    hub = Hub()
    events = await _events(6)
    messages = [EventMessage.from_event(e, {}) for e in events]

    async def replay(after_id):
        return [e for e in await Event.all().order_by("id") if e.id > after_id]

    got: list[int] = []

    async def consume():
        async for m in event_stream([("all",)], after=None, replay=replay, hub=hub):
            got.append(m.sequence)
            if len(got) == 5:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    for seq in (2, 3, 5, 3, 4, 6):  # 5 skips 4: 4 is read from the log; the later 3 and 4 are duplicates
        hub.dispatch(messages[seq - 1])
    await asyncio.wait_for(task, 5)
    assert got == [2, 3, 4, 5, 6]


async def test_resuming_stream_replays_then_goes_live_without_duplicates(db):
    hub = Hub()
    events = await _events(4)
    messages = [EventMessage.from_event(e, {}) for e in events]

    async def replay(after_id):
        return [e for e in await Event.all().order_by("id") if e.id > after_id]

    got: list[int] = []

    async def consume():
        async for m in event_stream([("all",)], after=events[0].id, replay=replay, hub=hub):
            got.append(m.sequence)
            if len(got) == 4:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    for m in messages[2:]:  # published late: already replayed
        hub.dispatch(m)
    more = await _events(1)  # sequence 5 of the same aggregate
    hub.dispatch(EventMessage.from_event(more[0], {}))
    await asyncio.wait_for(task, 5)
    assert got == [2, 3, 4, 5]


async def test_a_slow_subscriber_that_overflows_catches_up_from_the_log(db):
    hub = Hub(queue_size=2)
    events = await _events(6)

    async def replay(after_id):
        return [e for e in await Event.all().order_by("id") if e.id > after_id]

    sub_events: list[int] = []
    stream = event_stream([("all",)], after=None, replay=replay, hub=hub)
    first = asyncio.create_task(stream.__anext__())
    await asyncio.sleep(0.05)
    hub.dispatch(EventMessage.from_event(events[0], {}))
    sub_events.append((await first).sequence)
    for e in events[1:]:  # 5 messages into a queue of 2: it overflows
        hub.dispatch(EventMessage.from_event(e, {}))
    for _ in range(5):
        sub_events.append((await asyncio.wait_for(stream.__anext__(), 5)).sequence)
    await stream.aclose()
    assert sub_events == [1, 2, 3, 4, 5, 6]
