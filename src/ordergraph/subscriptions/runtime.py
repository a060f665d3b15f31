"""The process-wide streaming runtime: hub, bus, publisher, relay job."""

from __future__ import annotations

from dataclasses import dataclass

from ordergraph.config import Settings
from ordergraph.subscriptions.bus import EventBus, InMemoryBus, RedisBus
from ordergraph.subscriptions.hub import Hub
from ordergraph.subscriptions.outbox import Publisher, relay_once
from ordergraph.workflows.events import set_event_sink


@dataclass
class Streaming:
    hub: Hub
    bus: EventBus
    publisher: Publisher

    async def relay(self) -> int:
        return await relay_once(self.bus)


_current: Streaming | None = None


def current() -> Streaming:
    if _current is None:
        raise RuntimeError("event streaming is not started")
    return _current


async def start(settings: Settings) -> Streaming:
    global _current  # noqa: PLW0603 - one runtime per process
    hub = Hub()
    bus: EventBus = RedisBus(hub, settings.redis_url) if settings.redis_url else InMemoryBus(hub)
    await bus.start()
    publisher = Publisher(bus)
    publisher.start()
    set_event_sink(publisher.submit)
    _current = Streaming(hub, bus, publisher)
    return _current


async def stop() -> None:
    global _current  # noqa: PLW0603
    if _current is None:
        return
    set_event_sink(None)
    await _current.publisher.stop()
    await _current.bus.stop()
    _current = None
