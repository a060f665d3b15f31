"""Fan-out inside one process: subscribers register topics; an event is handed to the
subscribers of its topics only, so the work per event does not grow with unrelated ones.

A subscriber's queue is bounded; one that falls behind is marked `overflowed` and catches up
from the event log (nothing is lost, it is replayed).

A subscriber parked on a `Lane` (see lanes.py) is served without its queue when the event
simply continues its stream: the payload is rendered once for every lane with the same key,
and each lane writes it to its socket. Everything else goes through the queue.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import defaultdict, deque
from collections.abc import Callable, Iterable

from ordergraph.observability import ACTIVE_SUBSCRIPTIONS, log
from ordergraph.subscriptions.lanes import FAST, SKIP, Lane
from ordergraph.subscriptions.messages import EventMessage, Topic

_hubs: weakref.WeakSet[Hub] = weakref.WeakSet()  # every live hub of this process, for the gauge
ACTIVE_SUBSCRIPTIONS.set_function(lambda: sum(hub.active for hub in list(_hubs)))


class Subscription:
    """One subscriber's registration: a bounded queue of messages (made only while something
    waits in it, so an idle subscriber holds no queue) and, once live, its lane."""

    __slots__ = ("hub", "topics", "maxsize", "pending", "overflowed", "lane", "notify", "_waiter")

    def __init__(self, hub: Hub, topics: list[Topic], maxsize: int) -> None:
        self.hub = hub
        self.topics = topics
        self.maxsize = maxsize
        self.pending: deque[EventMessage] | None = None
        self.overflowed = False
        self.lane: Lane | None = None
        # Called when a message is queued and nothing waits for it: a parked stream's tail
        # (live.LiveTail), which has no task waiting on the queue.
        self.notify: Callable[[], None] | None = None
        self._waiter: asyncio.Future | None = None

    def offer(self, message: EventMessage) -> None:
        if self.lane is not None:
            self.lane.parked = False  # the stream takes over until it parks again
        pending = self.pending
        if pending is None:
            pending = self.pending = deque()
        if len(pending) >= self.maxsize:
            self.overflowed = True
        else:
            pending.append(message)
        waiter = self._waiter
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
        elif self.notify is not None:
            self.notify()

    def empty(self) -> bool:
        return not self.pending

    async def get(self) -> EventMessage:
        while not self.pending:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.pop()

    def pop(self) -> EventMessage:
        """The next queued message (there must be one), without waiting."""
        message = self.pending.popleft()
        if not self.pending:
            self.pending = None
        return message

    def drain(self) -> list[EventMessage]:
        items = list(self.pending or ())
        self.pending = None
        return items

    def close(self) -> None:
        self.notify = None
        self.hub.unsubscribe(self)
        if self.lane is not None:
            self.lane.close()
            self.lane = None

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Hub:
    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self._by_topic: dict[Topic, set[Subscription]] = defaultdict(set)
        self.delivered = 0
        self.rendered = 0  # payloads rendered for lanes: once per event and lane group
        self.shared = 0  # messages written by lanes, without waking their streams
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
        shared: dict[object, list[Subscription]] = {}
        for topic in message.topics():
            for sub in self._by_topic.get(topic, ()):
                if id(sub) in seen:
                    continue
                seen.add(id(sub))
                lane = sub.lane
                if lane is not None and lane.parked:
                    verdict = lane.verdict(message)
                    if verdict == SKIP:
                        continue
                    if verdict == FAST:
                        shared.setdefault(lane.key, []).append(sub)
                        continue
                sub.offer(message)
        for subs in shared.values():
            try:
                payload = subs[0].lane.render(message)  # once for the whole group
            except Exception as exc:  # noqa: BLE001 - the ordinary path reports it per subscriber
                log.warning("subscription.render_failed", event=message.id, error=repr(exc))
                payload = None
            if payload is not None:
                self.rendered += 1
            for sub in subs:
                if payload is None or sub.lane is None:
                    sub.offer(message)
                else:
                    sub.lane.deliver(message, payload)
                    self.shared += 1
        self.delivered += len(seen)
