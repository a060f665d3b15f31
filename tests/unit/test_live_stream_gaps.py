"""A live stream (no cursor) whose messages arrive out of order: what an overtaking message
skipped is read from the log, from the moment the stream subscribed (no GraphQL)."""

import asyncio

import pytest

from ordergraph.db import transaction
from ordergraph.models import Event
from ordergraph.subscriptions.hub import Hub
from ordergraph.subscriptions.messages import EventMessage
from ordergraph.subscriptions.streams import event_stream
from ordergraph.workflows.events import record_event, set_event_sink


@pytest.fixture(autouse=True)
def no_app_sink():
    """The events here are published by hand: the app's sink (if a server runs) must not take them."""
    previous = set_event_sink(None)
    yield
    set_event_sink(previous)


async def _events(n: int, aggregate_id: int) -> list[Event]:
    async with transaction():
        return [await record_event("Test", aggregate_id, f"E{aggregate_id}", "test") for _ in range(n)]


def _message(e: Event) -> EventMessage:
    return EventMessage.from_event(e, {})


async def test_a_live_stream_reads_from_the_log_what_an_overtaking_message_skipped(db):
    hub = Hub()
    await _events(2, aggregate_id=1)  # before the subscription: not this subscriber's

    async def replay(after_id):
        return []

    stream = event_stream([("all",)], after=None, replay=replay, hub=hub)
    got: list[tuple[int, int]] = []

    async def take(n: int) -> None:
        for _ in range(n):
            m = await asyncio.wait_for(stream.__anext__(), 5)
            got.append((m.aggregate_id, m.sequence))

    first = asyncio.create_task(take(1))
    for _ in range(100):  # subscribed (the stream registers before anything else)
        if hub.active:
            break
        await asyncio.sleep(0.01)
    probe = await _events(1, aggregate_id=9)
    hub.dispatch(_message(probe[0]))
    await first  # the stream is past its start: anything committed from now on is its

    # Committed, but their publishing failed (Redis down): the relay brings them later.
    stranded = await _events(3, aggregate_id=1)  # sequences 3, 4, 5
    fresh = await _events(3, aggregate_id=2)  # a new aggregate: 1, 2, 3
    hub.dispatch(_message(stranded[2]))  # Redis is back: a later event is published first
    hub.dispatch(_message(fresh[2]))
    for e in stranded[:2] + fresh[:2]:  # then the relay publishes the stranded ones
        hub.dispatch(_message(e))
    more = await _events(1, aggregate_id=1)
    hub.dispatch(_message(more[0]))
    await take(7)
    await stream.aclose()
    assert got == [(9, 1), (1, 3), (1, 4), (1, 5), (2, 1), (2, 2), (2, 3), (1, 6)]


async def test_a_late_message_from_before_the_subscription_fills_nothing(db):
    """Events committed before a live stream subscribed are not its to fill in, even when
    the bus brings a later one of them after it subscribed."""
    hub = Hub()
    old = await _events(3, aggregate_id=1)

    async def replay(after_id):
        return []

    stream = event_stream([("all",)], after=None, replay=replay, hub=hub)
    task = asyncio.create_task(stream.__anext__())
    for _ in range(100):
        if hub.active:
            break
        await asyncio.sleep(0.01)
    hub.dispatch(_message(old[2]))
    m = await asyncio.wait_for(task, 5)
    assert (m.aggregate_id, m.sequence) == (1, 3)
    await stream.aclose()
