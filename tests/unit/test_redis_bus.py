"""The Redis Streams bus against a private redis-server (any backend; skipped without the binary)."""

import asyncio
import shutil
import subprocess

import pytest
import redis.asyncio as aioredis

from ordergraph.subscriptions.bus import RedisBus
from ordergraph.subscriptions.hub import Hub
from ordergraph.subscriptions.messages import EventMessage
from tests.servers import free_port


@pytest.fixture
async def redis_url():
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = aioredis.from_url(url, socket_connect_timeout=1)
    try:
        for _ in range(200):
            try:
                await client.ping()
                break
            except Exception:  # noqa: BLE001 - not listening yet
                assert proc.poll() is None, "redis-server exited"
                await asyncio.sleep(0.05)
        yield url
    finally:
        await client.aclose()
        proc.kill()
        proc.wait(10)


def _message(i: int) -> EventMessage:
    return EventMessage(id=i, aggregate_type="Test", aggregate_id=1, sequence=i, type="E", data={}, actor="test",
                        created_at="2026-01-01T00:00:00+00:00")


async def test_a_reader_started_before_the_stream_exists_misses_nothing_published_between_two_reads(redis_url):
    """A fresh Redis has no stream yet. Reading from `$` would only see entries added while an
    XREAD blocks: one published between two reads (the reader busy dispatching, or its block
    timed out) would be lost to this process."""
    hub = Hub()
    bus = RedisBus(hub, redis_url, stream="test:events")
    real_xread = bus._reader_redis.xread
    reads = 0

    async def xread(streams, **kwargs):
        nonlocal reads
        reads += 1
        if reads == 1:
            kwargs["block"] = 10  # the first read times out at once
        elif reads == 2:
            await bus.publish([_message(1)])  # published while the reader was between two reads
        return await real_xread(streams, **kwargs)

    bus._reader_redis.xread = xread
    with hub.subscribe([("all",)]) as sub:
        await bus.start()
        try:
            got = await asyncio.wait_for(sub.get(), 5)
            assert got == _message(1)
            await bus.publish([_message(2)])
            assert await asyncio.wait_for(sub.get(), 5) == _message(2)
        finally:
            await bus.stop()


async def test_a_reader_starts_at_the_end_of_an_existing_stream(redis_url):
    hub = Hub()
    earlier = RedisBus(Hub(), redis_url, stream="test:events")
    await earlier.publish([_message(1)])  # before this process started: not its to deliver
    await earlier.stop()
    bus = RedisBus(hub, redis_url, stream="test:events")
    with hub.subscribe([("all",)]) as sub:
        await bus.start()
        try:
            await bus.publish([_message(2)])
            assert await asyncio.wait_for(sub.get(), 5) == _message(2)
            await asyncio.sleep(0.1)
            assert sub.drain() == []
        finally:
            await bus.stop()
