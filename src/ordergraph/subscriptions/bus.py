"""The event bus: in-process (embedded default) or Redis Streams (several processes).

Publishing is at least once; each process reads the stream once and hands every message to
its Hub. Redis Streams keep an id per entry, so the reader resumes where it stopped after a
Redis restart or a dropped connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from ordergraph.observability import log
from ordergraph.subscriptions.hub import Hub
from ordergraph.subscriptions.messages import EventMessage

STREAM = "ordergraph:events"
STREAM_MAXLEN = 100_000  # the log in the database is the long-term replay source


class EventBus(Protocol):
    hub: Hub

    async def publish(self, messages: list[EventMessage]) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class InMemoryBus:
    """One process: publishing is handing the messages to the local hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def publish(self, messages: list[EventMessage]) -> None:
        for m in messages:
            self.hub.dispatch(m)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class RedisBus:
    """Redis Streams: XADD to publish; one XREAD loop per process feeds the local hub."""

    def __init__(self, hub: Hub, url: str, stream: str = STREAM) -> None:
        import redis.asyncio as aioredis  # noqa: PLC0415

        self.hub = hub
        self.stream = stream
        self._redis = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=15)
        self._reader_redis = aioredis.from_url(url, socket_connect_timeout=2, health_check_interval=15)
        self._task: asyncio.Task | None = None
        self.last_id = "$"  # not known yet: resolved to a concrete id before the first read
        self.connected = asyncio.Event()

    async def publish(self, messages: list[EventMessage]) -> None:
        if not messages:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for m in messages:
                pipe.xadd(self.stream, {"m": m.encode()}, maxlen=STREAM_MAXLEN, approximate=True)
            await pipe.execute()

    async def _stream_end(self) -> str:
        """The id of the stream's last entry, `0-0` while there is no stream: a concrete id.
        XREAD from `$` sees only what is added while it blocks; an entry added between two
        reads would be lost to this process."""
        from redis.exceptions import ResponseError  # noqa: PLC0415

        try:
            info = await self._reader_redis.xinfo_stream(self.stream)
        except ResponseError as exc:
            if "no such key" not in str(exc).lower():
                raise
            return "0-0"  # every entry it will ever hold comes after this process started
        last = info["last-generated-id"]
        return last.decode() if isinstance(last, bytes) else last

    async def start(self) -> None:
        # Start reading from the stream's current end before anyone can publish.
        with contextlib.suppress(Exception):  # Redis unreachable: the reader asks once it connects
            self.last_id = await self._stream_end()
        self._task = asyncio.create_task(self._read_loop(), name="redis-bus-reader")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()
        await self._reader_redis.aclose()

    async def _read_loop(self) -> None:
        delay = 0.05
        while True:
            try:
                if self.last_id == "$":
                    self.last_id = await self._stream_end()
                self.connected.set()
                entries = await self._reader_redis.xread({self.stream: self.last_id}, block=1000, count=1000)
                delay = 0.05
                for _, items in entries or ():
                    for entry_id, fields in items:
                        self.last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                        try:
                            self.hub.dispatch(EventMessage.decode(fields[b"m"] if b"m" in fields else fields["m"]))
                        except Exception as exc:  # noqa: BLE001 - one bad entry must not stop the stream
                            log.error("bus.bad_entry", id=self.last_id, error=repr(exc))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis down: retry with backoff, keep last_id
                self.connected.clear()
                log.warning("bus.read_failed", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
