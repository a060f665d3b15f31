"""`ordergraph worker` on saq (PostgreSQL runs: PostgreSQL + Redis).

- two real worker processes on one database and one Redis: an exception due for escalation is
  escalated once (one event, one notification, delivered once), an overdue order raises one
  SLA exception, an expired reservation is released once, and events left unpublished (no
  sink when they were committed) reach the Redis stream through the relay;
- two saq workers in this process on one queue: every tick runs once, on one of them, and a
  worker coming late to a tick that already ran does not enqueue it again;
- a tick that raises is retried by saq, then recorded as failed;
- SIGTERM stops a worker cleanly (exit status 0) within seconds.

Each test uses its own saq queue (ORDERGRAPH_WORKER_QUEUE) so runs sharing the Redis database
never take each other's jobs; intervals are lowered to one second (ORDERGRAPH_JOB_INTERVALS).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from saq import Queue, Worker
from saq.job import Status

from ordergraph import worker as saq_worker
from ordergraph.db import transaction
from ordergraph.jobs import Job
from ordergraph.models import Event, InventoryLevel, Notification, Order, OrderException, Reservation, StockMovement
from ordergraph.models.enums import ExceptionKind as K
from ordergraph.models.enums import ExceptionStatus, NotificationStatus, ReservationStatus
from ordergraph.subscriptions.bus import STREAM
from ordergraph.subscriptions.messages import EventMessage
from ordergraph.workflows import exceptions
from ordergraph.workflows.commands import Address, LineCommand, PaymentCommand, PlaceOrderCommand
from ordergraph.workflows.events import set_event_sink
from ordergraph.workflows.orders import place_order
from ordergraph.workflows.reservations import reserve_stock
from tests import factories as f

pytestmark = pytest.mark.postgres_only

FAST = "expire_reservations=1,deliver_notifications=1,escalate_exceptions=1,exception_sweeps=1"
NYC = Address(name="Ada", line1="1 Main St", city="New York", postal_code="10001", country="US")
TIMEOUT = 30.0


class WorkerProcess:
    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen([sys.executable, "-m", "ordergraph.cli", "worker"], env=env,
                                      stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def started(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while "worker.start" not in self.output():
            assert self.popen.poll() is None, f"{self.name} exited:\n{self.output()[-4000:]}"
            assert time.monotonic() < deadline, f"{self.name} did not start:\n{self.output()[-4000:]}"
            await asyncio.sleep(0.05)

    def stop(self) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log.close()
        return self.popen.returncode


def _env(settings, tmp_path: Path, queue: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OG_TEST")}
    env.update(
        DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url, DB_POOL_SIZE="5", LOG_LEVEL="INFO",
        OUTBOX_DIR=str(tmp_path / "outbox"), ORDERGRAPH_JOB_INTERVALS=FAST, ORDERGRAPH_WORKER_QUEUE=queue,
        PYTHONUNBUFFERED="1",
    )
    env.pop("ORDERGRAPH_DEBUG", None)
    return env


async def _until(predicate, what: str, procs: list[WorkerProcess]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not await predicate():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in procs)
            pytest.fail(f"not reached in {TIMEOUT}s: {what}\n{logs}")
        await asyncio.sleep(0.1)


async def _stream_end(client) -> str:
    last = await client.xrevrange(STREAM, count=1)
    return last[0][0].decode() if last else "0-0"


async def _collect_stream(client, start: str, into: list[EventMessage]) -> None:
    """Read the stream as it grows (other test sessions sharing Redis db 15 FLUSHDB when they
    start, which would take entries read only at the end of the test)."""
    last = start
    while True:
        for _, entries in await client.xread({STREAM: last}, block=200) or []:
            for entry_id, fields in entries:
                last = entry_id.decode()
                into.append(EventMessage.decode(fields[b"m"]))


async def test_two_worker_processes_do_each_thing_once_and_relay_what_was_left(db, tmp_path):
    token = uuid.uuid4().hex
    now = datetime.now(UTC)
    previous_sink = set_event_sink(None)  # nothing published at commit: the relay's work
    try:
        w = await f.warehouse("EAST", priority=1)
        await f.channel("WEB", [w])
        v = await f.variant("SKU-A", price="10.00")
        await f.stock(w, v, 10)

        def order(qty: int) -> PlaceOrderCommand:
            return PlaceOrderCommand("WEB", "ada@example.com", [LineCommand("SKU-A", qty)], NYC, payment=PaymentCommand())

        fresh = await place_order(order(1), "test")
        late = await place_order(order(1), "test")
        await Order.filter(id=late.id).update(placed_at=now - timedelta(days=7))  # not shipped by its promise
        async with transaction():  # raised 31 minutes ago: its first escalation is a minute overdue
            due = await exceptions.raise_exception(K.PAYMENT_FAILED, f"PAYMENT_FAILED:{token}", f"declined {token}",
                                                   "test", order_id=fresh.id, now=now - timedelta(minutes=31))
        reservation = await reserve_stock("WEB", [("SKU-A", 2)], "", owner="o", actor="o")
        await Reservation.filter(id=reservation.id).update(expires_at=now - timedelta(seconds=1))
    finally:
        set_event_sink(previous_sink)
    left = {e.id for e in await Event.filter(published_at__isnull=True)}
    raised_event = await Event.get(aggregate_type="Exception", aggregate_id=due.id, type="EXCEPTION_RAISED")
    assert raised_event.id in left and len(left) == await Event.all().count()
    assert (await InventoryLevel.get(warehouse=w, variant=v)).reserved == 2
    moves_before = await StockMovement.all().count()

    client = aioredis.from_url(db.redis_url)
    start = await _stream_end(client)
    messages: list[EventMessage] = []
    reader = asyncio.create_task(_collect_stream(client, start, messages))
    env = _env(db, tmp_path, f"ordergraph-test:{token}")
    procs = [WorkerProcess(f"worker-{i}", env, tmp_path / f"worker-{i}.log") for i in (1, 2)]
    try:
        for p in procs:
            await p.started()

        async def escalated():
            return await Notification.filter(template="EXCEPTION_ESCALATED", status=NotificationStatus.SENT).exists()

        async def swept():
            return await OrderException.filter(kind=K.SHIP_SLA_BREACH).exists()

        async def expired():
            return (await Reservation.get(id=reservation.id)).status is ReservationStatus.EXPIRED

        async def relayed():
            return not await Event.filter(id__in=list(left), published_at__isnull=True).exists()

        async def streamed():
            return sum(token in str(m.data.get("summary", "")) for m in messages) >= 2

        for predicate, what in ((escalated, "escalation delivered"), (swept, "SLA sweep"),
                                (expired, "reservation expired"), (relayed, "unpublished events relayed"),
                                (streamed, "both events on the Redis stream")):
            await _until(predicate, what, procs)
        await asyncio.sleep(3.0)  # several more ticks of every job on both workers: nothing more happens
        outputs = [p.output() for p in procs]
    finally:
        codes = [p.stop() for p in procs]
        reader.cancel()
    assert codes == [0, 0], "\n".join(p.output()[-3000:] for p in procs)
    for out in outputs:
        assert "Traceback" not in out and "job.failed" not in out, out[-3000:]

    exc = await OrderException.get(id=due.id)
    assert (exc.status, exc.escalation_level) == (ExceptionStatus.ESCALATED, 1)
    assert exc.escalate_at is not None and exc.escalate_at > now + timedelta(minutes=25)  # next level in 30 min
    assert await Event.filter(aggregate_type="Exception", aggregate_id=due.id, type="EXCEPTION_ESCALATED").count() == 1
    [note] = await Notification.filter(template="EXCEPTION_ESCALATED")
    assert (note.key, note.status, note.attempts) == (f"EXCEPTION_ESCALATED:{due.id}:1", NotificationStatus.SENT, 1)

    [breach] = await OrderException.filter(kind=K.SHIP_SLA_BREACH)
    assert (breach.order_id, breach.fact_key, breach.status) == (late.id, f"SHIP_SLA_BREACH:{late.id}", ExceptionStatus.OPEN)
    assert await OrderException.all().count() == 2  # the escalated one and the breach, nothing else
    assert await Event.filter(aggregate_type="Exception", type="EXCEPTION_RAISED").count() == 2

    assert await Event.filter(aggregate_type="Reservation", aggregate_id=reservation.id,
                              type="RESERVATION_EXPIRED").count() == 1
    level = await InventoryLevel.get(warehouse=w, variant=v)
    assert level.reserved == 0
    released = await StockMovement.filter(id__gt=0).order_by("id").offset(moves_before).values_list("quantity", "reserved_after")
    assert released == [(-2, 0)]  # one release of the two units

    assert not await Event.filter(published_at__isnull=True).exists()
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    await client.aclose()
    mine = [(m.id, m.type) for m in messages if token in str(m.data.get("summary", ""))]
    escalated_event = await Event.get(aggregate_type="Exception", aggregate_id=due.id, type="EXCEPTION_ESCALATED")
    # the raised event by the relay (it was left unpublished), the escalation by the worker's publisher
    assert sorted(mine) == sorted([(raised_event.id, "EXCEPTION_RAISED"), (escalated_event.id, "EXCEPTION_ESCALATED")])


async def _in_process_workers(redis_url: str, queue_name: str, job_entries: list[Job], count: int, on_job):
    """`count` saq workers on one queue, each with its own connection and tick scheduler."""
    queues = [Queue.from_url(redis_url, name=queue_name) for _ in range(count)]
    workers = []
    for i, queue in enumerate(queues):
        async def before_process(ctx, name=f"w{i}") -> None:
            on_job(name, ctx["job"])
        workers.append(Worker(queue, saq_worker.functions(job_entries), before_process=before_process,
                              shutdown_grace_period_s=0))
    for w in workers:
        w.SIGNALS = []
        await w.queue.connect()
    tasks = [asyncio.create_task(w.start()) for w in workers]
    tasks += [asyncio.create_task(saq_worker.Scheduler(q, job_entries).run()) for q in queues]

    async def close() -> None:
        for t in tasks[count:]:
            t.cancel()
        for w in workers:
            w.event.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for q in queues:
            await q.disconnect()

    return queues, close


async def test_two_saq_workers_run_each_tick_once(db):
    """Our schedule on saq: two workers on one queue, each tick (job key) runs once."""
    queue = f"ordergraph-test:{uuid.uuid4().hex}"
    calls: list[int] = []
    seen: dict[str, list[str]] = {"w0": [], "w1": []}

    async def tick() -> int:
        calls.append(1)
        await asyncio.sleep(0.05)
        return 1

    job = Job("tick", 1.0, tick)
    queues, close = await _in_process_workers(db.redis_url, queue, [job], 2,
                                              lambda name, j: seen[name].append(j.key))
    try:
        await asyncio.sleep(4.5)
        # a worker that comes late (started after a tick ran and its job finished) does not
        # enqueue it again
        ran = sorted(int(i.rsplit(":", 1)[1]) for i in seen["w0"] + seen["w1"])
        assert len(ran) >= 2, seen
        done = await queues[0].job(f"tick:{ran[-2]}")
        assert done is not None and done.status is Status.COMPLETE, done
        late = Queue.from_url(db.redis_url, name=queue)
        await late.connect()
        try:
            assert await saq_worker.Scheduler(late, [job]).enqueue_due(now=ran[-2] / 1000 + 0.5) == []
        finally:
            await late.disconnect()
    finally:
        await close()
    ids = seen["w0"] + seen["w1"]
    assert len(ids) >= 3, seen
    assert len(set(ids)) == len(ids) == len(calls), seen  # no tick ran twice
    assert all(i.startswith("tick:") for i in ids)
    ticks = sorted(int(i.rsplit(":", 1)[1]) for i in ids)
    assert all(b - a == 1000 for a, b in zip(ticks, ticks[1:], strict=False)), ticks  # one a second, none missed


async def test_a_failing_tick_is_retried_by_saq_then_recorded_as_failed(db):
    queue = f"ordergraph-test:{uuid.uuid4().hex}"
    attempts: dict[str, list[int]] = {}

    async def boom():
        raise RuntimeError("boom")

    job = Job("boom", 1.0, boom)  # retried after retry_delay(1.0) = 1 s
    queues, close = await _in_process_workers(db.redis_url, queue, [job], 2,
                                              lambda name, j: attempts.setdefault(j.key, []).append(j.attempts))
    try:
        deadline = time.monotonic() + 15
        while True:
            failed = [j for j in await queues[0].jobs([k for k in await _keys(queues[0])]) if j and j.status is Status.FAILED]
            if failed:
                break
            assert time.monotonic() < deadline, attempts
            await asyncio.sleep(0.1)
    finally:
        await close()
    first = failed[0]
    assert first.attempts == saq_worker.MAX_TRIES == 3
    assert "RuntimeError: boom" in (first.error or "")
    assert attempts[first.key] == [1, 2, 3], attempts  # three tries of that tick, then no more
    assert (first.retries, first.retry_delay, first.ttl) == (saq_worker.MAX_TRIES, 1.0, saq_worker.RESULT_TTL)


async def _keys(queue: Queue) -> list[str]:
    prefix = queue.job_id("")
    return [k.decode()[len(prefix):] for k in await queue.redis.keys(f"{prefix}boom:*")]


async def test_sigterm_stops_a_worker_cleanly(db, tmp_path):
    proc = WorkerProcess("worker", _env(db, tmp_path, f"ordergraph-test:{uuid.uuid4().hex}"), tmp_path / "w.log")
    try:
        await proc.started()
        await asyncio.sleep(1.5)  # a few ticks in
        began = time.monotonic()
        proc.popen.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.popen.wait, 15)
        took = time.monotonic() - began
    finally:
        proc.stop()
    out = proc.output()
    assert code == 0, out[-3000:]
    assert took < 8.0, took
    assert '"engine": "saq"' in out and "worker.stop" in out and "Traceback" not in out, out[-3000:]

