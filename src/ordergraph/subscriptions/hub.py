"""Fan-out inside one process: subscribers register topics; an event is handed to the
subscribers of its topics only, so the work per event does not grow with unrelated ones.

A subscriber's queue is bounded; one that falls behind is marked `overflowed` and catches up
from the event log (nothing is lost, it is replayed).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import defaultdict
from collections.abc import Iterable

from ordergraph.observability import ACTIVE_SUBSCRIPTIONS
from ordergraph.subscriptions.messages import EventMessage, Topic

_hubs: weakref.WeakSet[Hub] = weakref.WeakSet()  # every live hub of this process, for the gauge
ACTIVE_SUBSCRIPTIONS.set_function(lambda: sum(hub.active for hub in list(_hubs)))


class Subscription:
    __slots__ = ("hub", "topics", "queue", "overflowed")

    def __init__(self, hub: Hub, topics: list[Topic], maxsize: int) -> None:
        self.hub = hub
        self.topics = topics
        self.queue: asyncio.Queue[EventMessage] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, message: EventMessage) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True

    async def get(self) -> EventMessage:
        return await self.queue.get()

    def drain(self) -> list[EventMessage]:
        items = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items

    def close(self) -> None:
        self.hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Hub:
    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self._by_topic: dict[Topic, set[Subscription]] = defaultdict(set)
        self.delivered = 0
        _hubs.add(self)

    def subscribe(self, topics: Iterable[Topic]) -> Subscription:
        sub = Subscription(self, list(topics), self.queue_size)
        for topic in sub.topics:
            self._by_topic[topic].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        for topic in sub.topics:
            subs = self._by_topic.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_topic[topic]

    @property
    def active(self) -> int:
        return len({s for subs in self._by_topic.values() for s in subs})

    def dispatch(self, message: EventMessage) -> None:
        seen: set[int] = set()
        for topic in message.topics():
            for sub in self._by_topic.get(topic, ()):
                if id(sub) not in seen:
                    seen.add(id(sub))
                    sub.offer(message)
        self.delivered += len(seen)
