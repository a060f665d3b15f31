"""Subscriptions across separate API processes sharing PostgreSQL and Redis (PostgreSQL runs).

Every test starts real `uvicorn ordergraph.app:create_app --factory` subprocesses with the
background jobs on (the outbox relay runs every second and publishes events left unpublished
for more than two seconds). Mutations go to one process over HTTP; subscriptions listen on
another over WebSocket; the event table is the truth every subscription is compared with:
each order's events, every one, once, in sequence order.

- two processes: the bus carries events from one to the other;
- Redis killed (SIGKILL) and restarted while mutations flow: mutations keep succeeding, and
  what was committed during the outage reaches the subscribers through the relay;
- a process killed between commit and publish (its Redis unreachable, then SIGKILL): another
  process's relay publishes its events; a fresh process takes over without duplicates.

Each test runs its own Redis server on a free port, so it can be killed and restarted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from ordergraph.cli import LEAN_WS
from ordergraph.models import Event, InventoryLevel, Order
from tests import factories as f
from tests.conftest import GraphQLClient
from tests.orders_helpers import CANCEL, HOLD, PLACE, RELEASE, order_input, world
from tests.servers import free_port
from tests.ws import WSClient

pytestmark = pytest.mark.postgres_only

UPDATES = "subscription($after: String) { orderUpdates(after: $after) { number event { cursor aggregateId sequence type } } }"
ORDER_EVENTS = "subscription($id: ID!, $after: String) { orderEvents(orderId: $id, after: $after) { cursor aggregateId sequence type } }"

RELAY_GRACE = timedelta(seconds=2)  # relay_once's default: it publishes events older than this
DELIVERY_TIMEOUT = 20.0  # seconds for every expected event to reach a subscriber
START_TIMEOUT = 30.0


# --- processes -------------------------------------------------------------------------------


class Process:
    """A subprocess whose output goes to a file (a full pipe would block it)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in kill()
        self.popen = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log.close()

    def tail(self, chars: int = 4000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-chars:]


class RedisServer:
    """A private redis-server without persistence: a restart comes back empty."""

    def __init__(self, procs: Processes, port: int) -> None:
        self.procs = procs
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: Process | None = None

    async def start(self) -> RedisServer:
        self.process = self.procs.spawn(
            f"redis-{self.port}",
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        )
        client = aioredis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    await client.ping()
                    return self
                except Exception:  # noqa: BLE001 - not listening yet
                    assert self.process.alive, f"redis-server exited:\n{self.process.tail()}"
                    assert time.monotonic() < deadline, f"redis-server did not start:\n{self.process.tail()}"
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill(signal.SIGKILL)


class Api:
    """An API process: `python -m uvicorn ordergraph.app:create_app --factory`."""

    def __init__(self, process: Process, base_url: str) -> None:
        self.process = process
        self.base_url = base_url
        self.gql = GraphQLClient(base_url)

    async def wait_started(self) -> Api:
        # uvicorn runs the lifespan (database, bus, relay job) before it accepts connections.
        deadline = time.monotonic() + START_TIMEOUT
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                try:
                    if (await http.get(f"{self.base_url}/healthz")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                assert self.process.alive, f"{self.process.name} exited:\n{self.process.tail()}"
                assert time.monotonic() < deadline, f"{self.process.name} did not start:\n{self.process.tail()}"
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        self.process.kill(signal.SIGKILL)
        await self.gql.http.aclose()


class Processes:
    """Everything a test starts; whatever is still running is killed when the test ends."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.started: list[Process] = []
        self.apis: list[Api] = []

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> Process:
        process = Process(name, cmd, env or dict(os.environ), self.tmp_path / f"{name}.log")
        self.started.append(process)
        return process

    async def redis(self) -> RedisServer:
        return await RedisServer(self, free_port()).start()

    def api(self, name: str, redis_url: str) -> Api:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OG_TEST_")}
        env.update(
            DATABASE_URL=self.database_url, REDIS_URL=redis_url, LOG_LEVEL="WARNING", RUN_JOBS="true",
            DB_POOL_SIZE="8", PYTHONUNBUFFERED="1",
        )
        cmd = [sys.executable, "-m", "uvicorn", "ordergraph.app:create_app", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
               "--ws", LEAN_WS]  # the WebSocket protocol `ordergraph serve` runs
        api = Api(self.spawn(name, cmd, env), f"http://127.0.0.1:{port}")
        self.apis.append(api)
        return api

    async def cleanup(self) -> None:
        for api in self.apis:
            await api.gql.http.aclose()
        for process in reversed(self.started):
            process.kill(signal.SIGKILL)

    def logs(self) -> str:
        last = {p.log_path: p for p in self.started}  # a restarted server appends to its log
        return "\n".join(f"--- {p.name} (rc={p.popen.returncode})\n{p.tail(2500)}" for p in last.values())


@pytest.fixture
async def procs(db, tmp_path):
    processes = Processes(tmp_path, db.database_url)
    try:
        yield processes
    finally:
        await processes.cleanup()
        print(processes.logs())  # shown when the test failed


async def start_all(*apis: Api) -> None:
    await asyncio.gather(*(api.wait_started() for api in apis))


# --- subscriptions ---------------------------------------------------------------------------


class Feed:
    """One subscription on its own connection, read in the background into `items`."""

    def __init__(self, name: str, ws: WSClient, field: str) -> None:
        self.name = name
        self.ws = ws
        self.field = field
        self.items: list[dict] = []  # {cursor, aggregateId, sequence, type}
        self.problems: list[object] = []
        self.task: asyncio.Task | None = None

    @classmethod
    async def open(cls, name: str, api: Api, key: str, query: str, variables: dict, field: str) -> Feed:
        ws = await WSClient.connect(api.base_url, key)
        feed = cls(name, ws, field)
        await ws.subscribe(query, variables)
        feed.task = asyncio.create_task(feed._read())
        return feed

    async def _read(self) -> None:
        try:
            while True:
                message = await self.ws.recv(timeout=None)
                if message["type"] == "ping":
                    await self.ws.send({"type": "pong"})
                elif message["type"] == "next" and "errors" not in message["payload"]:
                    data = message["payload"]["data"][self.field]
                    self.items.append(data["event"] if "event" in data else data)
                else:
                    self.problems.append(message)
        except Exception as exc:  # noqa: BLE001 - a closed connection is a problem to report
            self.problems.append(repr(exc))

    async def close(self) -> None:
        if self.task:
            self.task.cancel()
        await self.ws.close()


def by_order(items) -> dict[int, list[tuple[int, str]]]:
    out: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for e in items:
        out[int(e["aggregateId"] if isinstance(e, dict) else e.aggregate_id)].append(
            (e["sequence"], e["type"]) if isinstance(e, dict) else (e.sequence, e.type)
        )
    return dict(out)


async def order_events(**filters) -> list[Event]:
    return await Event.filter(aggregate_type="Order", **filters).order_by("id")


async def wait_for_all(feed: Feed, expected: list[Event], *, only_orders: set[int] | None = None,
                       timeout: float = DELIVERY_TIMEOUT) -> None:
    """Until `feed` has every expected event; then assert each arrived once, in order, and
    nothing else came (after a short silence, in case of late duplicates)."""

    def received():
        return [e for e in feed.items if only_orders is None or int(e["aggregateId"]) in only_orders]

    deadline = time.monotonic() + timeout
    while len(received()) < len(expected) and time.monotonic() < deadline and not feed.problems:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    got = received()
    assert not feed.problems, f"{feed.name}: {feed.problems}"
    missing = {e.id for e in expected} - {int(e["cursor"]) for e in got}
    if missing:
        orders = {e.aggregate_id for e in expected if e.id in missing}
        want = {k: v for k, v in by_order(expected).items() if k in orders}
        have = {k: v for k, v in by_order(got).items() if k in orders}
        raise AssertionError(f"{feed.name}: {len(missing)} event(s) never arrived within {timeout}s: ids {sorted(missing)}; "
                             f"expected {want}, received {have}")
    assert by_order(got) == by_order(expected), f"{feed.name}: not every event once in sequence order"
    assert len(got) == len(expected), f"{feed.name}: {len(got)} received, {len(expected)} expected"


# --- workload --------------------------------------------------------------------------------


async def setup_world() -> str:
    await world()
    await InventoryLevel.all().update(on_hand=10_000)  # stock is not what these tests are about
    return await f.staff_key()


async def mutate(api: Api, key: str, query: str, variables: dict) -> dict:
    data = await api.gql(query, variables, auth=key)
    result = next(iter(data.values()))
    assert result["__typename"] == "OrderPayload", result
    return result["order"]


async def place(api: Api, key: str, i: int = 0) -> dict:
    return await mutate(api, key, PLACE, {"input": order_input([("SKU-A", 1)], email=f"buyer{i}@example.com")})


async def hold(api: Api, key: str, order: dict) -> dict:
    return await mutate(api, key, HOLD, {"id": order["id"], "reason": "MANUAL"})


async def release(api: Api, key: str, order: dict) -> dict:
    return await mutate(api, key, RELEASE, {"id": order["id"], "reason": "MANUAL"})


async def cancel(api: Api, key: str, order: dict) -> dict:
    return await mutate(api, key, CANCEL, {"id": order["id"], "reason": "test"})


async def order_id(order: dict) -> int:
    return (await Order.get(number=order["number"])).id


async def open_feeds(api: Api, key: str, probe: dict, probe_writer: Api) -> tuple[dict[str, Feed], int]:
    """Three subscriptions on `api`, all live once this returns:
    - `resumed`: orderUpdates from cursor 0 (replay, then live);
    - `live`: orderUpdates with no cursor (what happens from now on);
    - `order`: orderEvents of the probe order after its last event so far (returned).
    The probe order gets holds and releases (through `probe_writer`) until `live` has one:
    every event committed after that must reach all three."""
    pid = await order_id(probe)
    cursor = (await Event.filter(order_id=pid).order_by("-id").first()).id
    feeds = {
        "resumed": await Feed.open("resumed", api, key, UPDATES, {"after": "0"}, "orderUpdates"),
        "live": await Feed.open("live", api, key, UPDATES, {}, "orderUpdates"),
        "order": await Feed.open("order", api, key, ORDER_EVENTS, {"id": probe["id"], "after": str(cursor)}, "orderEvents"),
    }
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    held = False
    while not feeds["live"].items:
        assert time.monotonic() < deadline, "the live subscription never received the probe's events"
        await (release if held else hold)(probe_writer, key, probe)
        held = not held
        for _ in range(20):
            if feeds["live"].items:
                break
            await asyncio.sleep(0.05)
    if held:
        await release(probe_writer, key, probe)
    return feeds, cursor


async def close_feeds(feeds: dict[str, Feed]) -> None:
    for feed in feeds.values():
        await feed.close()


async def check_feeds(feeds: dict[str, Feed], probe_id: int, probe_cursor: int, later_orders: set[int]) -> None:
    """`resumed` has every order event; `order` every event of the probe order after its
    cursor; `live` every event of the orders placed once it was live (and of the probe order,
    whose first events may have preceded it, no duplicate and nothing out of order)."""
    everything = await order_events()
    await wait_for_all(feeds["resumed"], everything)
    await wait_for_all(feeds["order"], [e for e in everything if e.aggregate_id == probe_id and e.id > probe_cursor])
    await wait_for_all(feeds["live"], [e for e in everything if e.aggregate_id in later_orders], only_orders=later_orders)
    probe_seen = [e["sequence"] for e in feeds["live"].items if int(e["aggregateId"]) == probe_id]
    last = max(e.sequence for e in everything if e.aggregate_id == probe_id)
    assert probe_seen == list(range(probe_seen[0], last + 1)), f"live: the probe order's events {probe_seen}"


async def stream_ids(url: str) -> list[int]:
    """The event ids on the Redis stream, as published (duplicates included)."""
    from ordergraph.subscriptions.bus import STREAM  # noqa: PLC0415
    from ordergraph.subscriptions.messages import EventMessage  # noqa: PLC0415

    client = aioredis.from_url(url)
    try:
        return [EventMessage.decode(fields[b"m"]).id for _, fields in await client.xrange(STREAM)]
    finally:
        await client.aclose()


async def wait_published(ids: list[int], timeout: float = 10) -> list[Event]:
    deadline = time.monotonic() + timeout
    while await Event.filter(id__in=ids, published_at__isnull=True).exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return await Event.filter(id__in=ids).order_by("id")


# --- the tests -------------------------------------------------------------------------------


async def test_a_subscription_on_one_process_receives_the_mutations_sent_to_another(procs):
    key = await setup_world()
    redis = await procs.redis()
    a, b = procs.api("api-a", redis.url), procs.api("api-b", redis.url)
    await start_all(a, b)
    probe = await place(b, key)
    feeds, cursor = await open_feeds(a, key, probe, b)

    async def lifecycle(i: int) -> dict:
        order = await place(b, key, i)
        await hold(b, key, order)
        await cancel(b, key, order)
        return order

    orders = await asyncio.gather(*(lifecycle(i) for i in range(1, 7)))  # interleaved on B
    await hold(b, key, probe)
    await check_feeds(feeds, await order_id(probe), cursor, {await order_id(o) for o in orders})
    # B published each event right after its commit (the relay would wait RELAY_GRACE).
    events = await wait_published([e.id for e in await Event.all()])
    assert all(e.published_at - e.created_at < RELAY_GRACE for e in events), "published late: by a relay"
    assert [e.type for e in await order_events(aggregate_id=await order_id(orders[0]))] == [
        "ORDER_PLACED", "PAYMENT_AUTHORIZED", "ORDER_CONFIRMED", "ORDER_ALLOCATED", "HOLD_PLACED",
        "ORDER_CANCELLED", "PAYMENT_VOIDED",
    ]
    await close_feeds(feeds)


async def test_redis_restarted_while_events_flow_loses_nothing(procs):
    key = await setup_world()
    redis = await procs.redis()
    a, b = procs.api("api-a", redis.url), procs.api("api-b", redis.url)
    await start_all(a, b)
    probe = await place(b, key)
    feeds, cursor = await open_feeds(a, key, probe, b)

    stop = asyncio.Event()
    redis_down = False
    placed: list[dict] = []
    during_outage: list[str] = []  # mutations that succeeded while Redis was down

    async def step(kind, *args) -> dict:
        order = await kind(b, key, *args)
        if redis_down:
            during_outage.append(kind.__name__)
        return order

    async def traffic() -> None:
        # Each order is placed, held one round later and cancelled the round after:
        # the outage cuts through the lives of several orders.
        while not stop.is_set():
            placed.append(await step(place, len(placed) + 1))
            if len(placed) >= 2:
                await step(hold, placed[-2])
            if len(placed) >= 3:
                await step(cancel, placed[-3])
            await asyncio.sleep(0.05)
        await step(hold, placed[-1])
        for order in placed[-2:]:
            await step(cancel, order)

    task = asyncio.create_task(traffic())
    try:
        await asyncio.sleep(1.0)
        redis.kill()
        redis_down = True
        await asyncio.sleep(2.5)
        assert not task.done(), task.exception()
        stranded = await Event.filter(published_at__isnull=True).count()
        await redis.start()  # same port, empty
        redis_down = False
        await asyncio.sleep(1.5)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert len(during_outage) >= 5, during_outage  # mutations never wait for Redis
    assert stranded > 0  # events committed during the outage were left to the relay

    await check_feeds(feeds, await order_id(probe), cursor, {await order_id(o) for o in placed})
    events = await wait_published([e.id for e in await Event.all()])
    assert all(e.published_at is not None for e in events)
    # Redis came back empty: what it holds now was published after the restart, the
    # stranded events among it (by the relay, or the publisher's retry).
    assert set(await stream_ids(redis.url)) >= {e.id for e in events if e.published_at - e.created_at >= RELAY_GRACE}
    await close_feeds(feeds)


async def test_a_process_killed_between_commit_and_publish(procs):
    key = await setup_world()
    redis = await procs.redis()
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: B's publishing fails
    a, b = procs.api("api-a", redis.url), procs.api("api-b", nowhere)
    await start_all(a, b)
    probe = await place(a, key)
    feeds, cursor = await open_feeds(a, key, probe, a)

    before = (await Event.all().order_by("-id").first()).id
    stranded_orders = [await place(b, key, i) for i in range(1, 4)]
    await hold(b, key, stranded_orders[0])
    await cancel(b, key, stranded_orders[1])
    await hold(b, key, probe)
    from_b = await Event.filter(id__gt=before).order_by("id")
    assert from_b and all(e.published_at is None for e in from_b), [(e.id, e.published_at) for e in from_b]
    await b.kill()  # committed, never published: SIGKILL
    assert b.process.popen.returncode == -signal.SIGKILL

    later = {await order_id(o) for o in stranded_orders}
    await check_feeds(feeds, await order_id(probe), cursor, later)  # A's relay published them
    relayed = await wait_published([e.id for e in from_b])
    assert all(e.published_at - e.created_at >= RELAY_GRACE for e in relayed)  # by a relay, not B
    on_stream = await stream_ids(redis.url)
    assert {e.id for e in from_b} <= set(on_stream)

    # A fresh process in B's place: its events flow, nothing reaches a subscriber twice.
    b2 = procs.api("api-b2", redis.url)
    await start_all(b2)
    await release(b2, key, stranded_orders[0])
    await cancel(b2, key, stranded_orders[0])
    fresh = await place(b2, key, 9)
    await cancel(b2, key, stranded_orders[2])
    await release(b2, key, probe)
    later.add(await order_id(fresh))
    await check_feeds(feeds, await order_id(probe), cursor, later)
    assert not await Event.filter(published_at__isnull=True).exists()
    await close_feeds(feeds)
