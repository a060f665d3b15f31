"""The process-wide streaming runtime: hub, bus, publisher, relay job."""

from __future__ import annotations

from dataclasses import dataclass

from ordergraph.config import Settings
from ordergraph.subscriptions.bus import EventBus, InMemoryBus, RedisBus
from ordergraph.subscriptions.hub import Hub
from ordergraph.subscriptions.outbox import Publisher, relay_once
from ordergraph.workflows.events import set_event_sink


@dataclass(eq=False)
class Streaming:
    hub: Hub
    bus: EventBus
    publisher: Publisher

    async def relay(self) -> int:
        return await relay_once(self.bus)


# The runtimes started in this process, the newest last. Normally one; an app started inside
# another (tests, or an embedding that serves a second app) gets its own, and stopping it
# gives the outer app back its runtime instead of leaving the process without one.
_running: list[Streaming] = []


def current() -> Streaming:
    if not _running:
        raise RuntimeError("event streaming is not started")
    return _running[-1]


async def start(settings: Settings) -> Streaming:
    hub = Hub()
    bus: EventBus = RedisBus(hub, settings.redis_url) if settings.redis_url else InMemoryBus(hub)
    await bus.start()
    publisher = Publisher(bus)
    publisher.start()
    set_event_sink(publisher.submit)
    stream = Streaming(hub, bus, publisher)
    _running.append(stream)
    return stream


async def stop(stream: Streaming | None = None) -> None:
    """Stop `stream` (the newest by default); the one started before it becomes current again."""
    if stream is None:
        if not _running:
            return
        stream = _running[-1]
    if stream in _running:
        _running.remove(stream)
    set_event_sink(_running[-1].publisher.submit if _running else None)
    await stream.publisher.stop()
    await stream.bus.stop()
