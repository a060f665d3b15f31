"""Shared delivery of live events: the payload is built once per event and group, not once per
subscriber.

A subscriber's stream (`streams.event_stream`) is a chain of async generators under the
GraphQL transport: waking it, executing the selection and encoding JSON for every subscriber
costs hundreds of microseconds each, so an event for thousands of subscribers would take
seconds. A `Lane` is the fast way around that chain for the common case only: while the
stream is parked waiting for its next live message, and the message simply continues its
aggregate's sequence (no gap, no duplicate) and passes the stream's own `accept` check, the
hub hands it to the lane instead of the queue. Lanes with the same `key` (the same operation
document, variables and viewer) share one rendered payload per event; each lane only adds its
operation id around that text and writes it to its socket.

Anything else (a gap to fill from the log, the first event of an aggregate, a render that has
errors or must await, a slow socket with a full backlog) goes through the queue and the
stream's ordinary path, which also waits for the lane's pending writes first: the order on
the wire is the order of the stream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

from ordergraph.observability import log
from ordergraph.subscriptions.messages import EventMessage

SKIP, SLOW, FAST = 0, 1, 2


class Position:
    """Where a stream is: the last sequence delivered per aggregate and the highest event id."""

    __slots__ = ("seen", "last_id")

    def __init__(self, last_id: int = 0) -> None:
        self.seen: dict[tuple[str, int], int] = {}
        self.last_id = last_id

    def fresh(self, m: EventMessage) -> bool:
        prev = self.seen.get(m.aggregate)
        return prev is None or m.sequence > prev

    def advance(self, m: EventMessage) -> None:
        self.seen[m.aggregate] = m.sequence
        if m.id > self.last_id:
            self.last_id = m.id


def step(coro: Coroutine[Any, Any, Any]) -> asyncio.Future | None:
    """Run `coro` now, in the caller, up to its end; None when it ended without waiting.

    Writing to a WebSocket is a chain of coroutines that completes without suspending unless
    the socket's buffer is full, so most sends finish here with no task switch (Python 3.12's
    eager tasks do the same). If it does have to wait, the rest runs in a task, returned."""
    try:
        waiting_on = _taken(coro.send(None))
    except StopIteration:
        return None
    return asyncio.ensure_future(_finish(coro, waiting_on))


def _taken(waiting_on: Any) -> Any:
    # What a task does with a future its coroutine yields: clear the flag that the future's
    # `await` set, or awaiting it again raises "await wasn't used with future".
    if getattr(waiting_on, "_asyncio_future_blocking", False):
        waiting_on._asyncio_future_blocking = False  # noqa: SLF001
    return waiting_on


async def _finish(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
    while True:
        try:
            if waiting_on is None:  # a bare yield (asyncio.sleep(0))
                await asyncio.sleep(0)
            else:
                await waiting_on
        except BaseException as exc:  # noqa: BLE001 - cancellation goes into the coroutine
            try:
                waiting_on = _taken(coro.throw(exc))
            except StopIteration:
                return
            continue
        try:
            waiting_on = _taken(coro.send(None))
        except StopIteration:
            return


class Lane:
    """One subscriber's fast path to its socket (see the module docstring)."""

    __slots__ = ("key", "position", "accept", "render", "prefix", "send_text", "is_open",
                 "parked", "backlog_limit", "park", "_drain", "_backlog", "_closed")

    def __init__(
        self,
        *,
        key: Hashable,
        position: Position,
        accept: Callable[[EventMessage], bool],
        render: Callable[[EventMessage], str | None],
        prefix: str,
        send_text: Callable[[str], Coroutine[Any, Any, Any]],
        is_open: Callable[[], bool],
        backlog_limit: int = 1000,
    ) -> None:
        self.key = key
        self.position = position
        self.accept = accept
        self.render = render  # payload JSON for an event, or None: take the ordinary path
        self.prefix = prefix  # the `next` message up to its payload, with this operation's id
        self.send_text = send_text
        self.is_open = is_open
        self.parked = False  # the stream waits for its next live message with nothing queued
        self.backlog_limit = backlog_limit
        # park(state) -> bool, set by the transport: takes over a stream that waits with nothing
        # queued, so that it needs no task while parked (transport_ws.Operation.park)
        self.park: Callable[[Any], bool] | None = None
        self._drain: asyncio.Future | None = None
        self._backlog: deque[str] | None = None  # texts waiting behind a write that had to wait
        self._closed = False

    def verdict(self, m: EventMessage) -> int:
        """SKIP what the stream would drop, FAST what continues a sequence, SLOW the rest."""
        if self._closed:
            return SLOW
        if not self.accept(m):
            return SKIP
        prev = self.position.seen.get(m.aggregate)
        if prev is not None and m.sequence <= prev:
            return SKIP
        if prev is None or m.sequence != prev + 1:
            return SLOW
        if self._backlog is not None and len(self._backlog) >= self.backlog_limit:
            return SLOW
        return FAST

    def deliver(self, m: EventMessage, payload: str) -> None:
        self.position.advance(m)
        if not self.is_open():  # completed by the client: nothing more for this id
            return
        text = self.prefix + payload + "}"
        if self._drain is not None:  # an earlier write waits for the socket: keep the order
            if self._backlog is None:
                self._backlog = deque()
            self._backlog.append(text)
            return
        try:
            self._drain = step(self.send_text(text))
        except Exception as exc:  # noqa: BLE001 - the socket is gone; the connection's own task ends it
            self._fail(exc)
            return
        if self._drain is not None:
            self._drain.add_done_callback(self._drained)

    def _drained(self, fut: asyncio.Future) -> None:
        self._drain = None
        if fut.cancelled():
            return
        if (exc := fut.exception()) is not None:
            self._fail(exc)
            return
        if self._backlog and not self._closed:
            self._drain = asyncio.ensure_future(self._write_backlog())
            self._drain.add_done_callback(self._drained)
        else:
            self._backlog = None

    async def _write_backlog(self) -> None:
        while self._backlog:
            await self.send_text(self._backlog.popleft())

    def _fail(self, exc: BaseException) -> None:
        log.debug("subscription.lane_closed", error=repr(exc))
        self.close()

    async def flushed(self) -> None:
        """Wait until every text handed to this lane has been written (or the lane closed)."""
        while self._drain is not None:
            drain = self._drain
            if drain.done():  # its callback (next write, or none) has not run yet
                await asyncio.sleep(0)
            else:
                await asyncio.wait([drain])  # neither raises its error nor cancels it

    def close(self) -> None:
        self._closed = True
        self.parked = False
        self.park = None
        self._backlog = None
        if self._drain is not None:
            self._drain.cancel()
