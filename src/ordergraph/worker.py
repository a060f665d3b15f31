"""`ordergraph worker` with Redis: the periodic jobs of `jobs.default_jobs` run on saq.

One source of truth: every `Job(name, interval, func)` that `jobs.default_jobs(relay=...)`
returns becomes a saq function and a schedule (a job added there runs in both runners). An
interval becomes wall-clock ticks: the multiples of `period(interval)` seconds since the epoch
(5 s → seconds 0, 5, …, 55 of every minute; 300 s → every fifth minute at second 0; below a
second, every second).

Several workers, one run per tick. saq's own cron enqueues every tick of a function under one
fixed key (`cron:<function>`), and saq's Redis queue only refuses a key while that job is
incomplete, so a worker coming late to a tick that already finished would enqueue it again.
Instead each worker's scheduler (a small loop, `Scheduler`) claims a tick in Redis with
`SET NX` (`<queue>:tick:<name>:<tick in ms>`, kept `period + RESULT_TTL` seconds): only the
worker that wins the claim enqueues the tick, as a saq job with the deterministic key
`<name>:<tick in ms>` (saq also refuses that key while the job is queued, running or waiting for
a retry), and one worker dequeues it. Underneath, every job stays safe to run twice (conditional
UPDATEs, unique fact keys, leased notification claims): saq saves work, the database guarantees
the outcome.

A job that raises is retried by saq (`Job.retries` = `MAX_TRIES` tries, `retry_delay` soon
rather than at its next tick), then recorded as failed; the other jobs keep running.

Environment (besides the settings in config.py):
- `ORDERGRAPH_JOB_INTERVALS`: override intervals, `name=seconds` separated by commas
  (`exception_sweeps=60,escalate_exceptions=5`); also honoured by the embedded worker.
- `ORDERGRAPH_WORKER_QUEUE`: the saq queue (default `ordergraph:jobs`); deployments sharing
  one Redis database use one queue each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from saq import Job as SaqJob
from saq import Queue, Worker

from ordergraph import jobs
from ordergraph.config import Settings
from ordergraph.observability import log

DEFAULT_QUEUE = "ordergraph:jobs"
MAX_TRIES = 3  # tries of one tick of a job that raises
RESULT_TTL = 60  # seconds a finished tick's job (and, beyond its period, its claim) stays in Redis
JOB_TIMEOUT = 300  # seconds one try of a tick may run before saq cancels it
STOP_GRACE = 5.0  # seconds a stop waits for running jobs before cancelling them


def queue_name() -> str:
    return os.environ.get("ORDERGRAPH_WORKER_QUEUE", "").strip() or DEFAULT_QUEUE


def interval_overrides() -> dict[str, float]:
    """`ORDERGRAPH_JOB_INTERVALS=name=seconds,…`; a malformed entry is an error, not ignored."""
    out: dict[str, float] = {}
    for item in os.environ.get("ORDERGRAPH_JOB_INTERVALS", "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        try:
            seconds = float(value)
        except ValueError:
            seconds = 0.0
        if not sep or seconds <= 0:
            raise ValueError(f"ORDERGRAPH_JOB_INTERVALS: expected name=seconds, got {item.strip()!r}")
        out[name.strip()] = seconds
    return out


def job_list(relay: Callable[[], Awaitable[object]] | None = None) -> list[jobs.Job]:
    """`jobs.default_jobs(relay=...)`'s jobs with the intervals of ORDERGRAPH_JOB_INTERVALS."""
    overrides = interval_overrides()
    listed = jobs.default_jobs(relay=relay).jobs
    unknown = set(overrides) - {job.name for job in listed}
    if unknown:
        raise ValueError(f"ORDERGRAPH_JOB_INTERVALS: no job named {', '.join(sorted(unknown))}")
    return [jobs.Job(job.name, overrides.get(job.name, job.interval), job.func) for job in listed]


def period(interval: float) -> int:
    """Whole seconds between two ticks of a job every `interval` seconds (at least one)."""
    return max(1, round(interval))


def tick_of(interval: float, now: float) -> int:
    """The tick (epoch milliseconds) `now` falls in: the last multiple of the period."""
    p = period(interval)
    return int(now // p) * p * 1000


def retry_delay(interval: float) -> float:
    return min(max(interval / 2, 1.0), 10.0)


def function_name(job: jobs.Job) -> str:
    return f"job_{job.name}"


def _task(job: jobs.Job) -> Callable[..., Awaitable[object]]:
    async def run(ctx: dict[str, Any]) -> object:
        attempt = ctx["job"].attempts if ctx.get("job") is not None else 1
        try:
            result = await job.func()
        except Exception as exc:
            if attempt < MAX_TRIES:
                log.warning("job.retry", job=job.name, attempt=attempt, error=repr(exc))
            else:
                log.error("job.failed", job=job.name, attempt=attempt, error=repr(exc))
            raise  # saq retries it (Job.retries) after retry_delay, then records it as failed
        if result:
            log.info("job.done", job=job.name, result=result)
        return result

    run.__qualname__ = run.__name__ = function_name(job)
    return run


def functions(job_entries: list[jobs.Job]) -> list[tuple[str, Callable[..., Awaitable[object]]]]:
    """saq functions, by name, of the jobs."""
    return [(function_name(job), _task(job)) for job in job_entries]


def tick_job(job: jobs.Job, tick: int) -> SaqJob:
    """The saq job of one tick of `job`: its key is the same on every worker."""
    return SaqJob(function=function_name(job), key=f"{job.name}:{tick}", retries=MAX_TRIES,
                  retry_delay=retry_delay(job.interval), ttl=RESULT_TTL, timeout=JOB_TIMEOUT)


class Scheduler:
    """Enqueues each tick of each job once across all workers of a queue (see the module doc)."""

    def __init__(self, queue: Queue, job_entries: list[jobs.Job]) -> None:
        self.queue = queue
        self.jobs = job_entries
        self._last: dict[str, int] = {}

    def claim_key(self, job: jobs.Job, tick: int) -> str:
        return f"{self.queue.name}:tick:{job.name}:{tick}"

    async def enqueue_due(self, now: float | None = None) -> list[str]:
        """Claim and enqueue the current tick of every job not yet seen by this worker;
        the keys of the ticks this worker enqueued."""
        now = time.time() if now is None else now
        enqueued: list[str] = []
        for job in self.jobs:
            tick = tick_of(job.interval, now)
            if self._last.get(job.name, -1) >= tick:
                continue
            self._last[job.name] = tick
            claimed = await self.queue.redis.set(self.claim_key(job, tick), b"1", nx=True,
                                                 ex=period(job.interval) + RESULT_TTL)
            if claimed and await self.queue.enqueue(tick_job(job, tick)) is not None:
                enqueued.append(f"{job.name}:{tick}")
        return enqueued

    def _sleep_for(self, now: float) -> float:
        nearest = min(tick_of(job.interval, now) / 1000 + period(job.interval) for job in self.jobs)
        return min(max(nearest - now + 0.005, 0.01), 1.0)

    async def run(self) -> None:
        while True:
            try:
                await self.enqueue_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away for a moment: try again soon
                log.warning("worker.schedule_failed", error=repr(exc))
            await asyncio.sleep(self._sleep_for(time.time()))


async def _relay() -> object:
    """The outbox relay of the streaming runtime this worker started (startup)."""
    from ordergraph.subscriptions import runtime  # noqa: PLC0415

    return await runtime.current().relay()


class _QuietStop(logging.Filter):
    """Drops saq's warning that the idle dequeue and upkeep tasks outlived the (zero) grace
    period at every stop: run() has already waited for the running jobs by then."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "did not finish within the shutdown grace period" not in record.getMessage()


def _quiet_saq_logs() -> None:
    """saq logs every enqueue, start and finish at INFO; ours (job.retry/failed/done) say what
    matters, so saq's go to WARNING and above unless the log level is DEBUG."""
    saq_log = logging.getLogger("saq")
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        saq_log.setLevel(logging.WARNING)
    if not any(isinstance(f, _QuietStop) for f in saq_log.filters):
        saq_log.addFilter(_QuietStop())


def make_worker(settings: Settings, queue: Queue | None = None) -> Worker:
    """The saq worker: the jobs' functions, their scheduler, database and event streaming
    opened on startup and closed on shutdown."""
    if not settings.redis_url:
        raise ValueError("the saq worker needs REDIS_URL")
    _quiet_saq_logs()
    queue = queue or Queue.from_url(settings.redis_url, name=queue_name())
    job_entries = job_list(relay=_relay)

    async def startup(ctx: dict[str, Any]) -> None:
        from ordergraph.db import fetch, init_db  # noqa: PLC0415
        from ordergraph.subscriptions import runtime  # noqa: PLC0415

        await queue.connect()
        await init_db(settings, process_wide=True)  # jobs run in tasks saq creates
        ctx["db"] = True
        await fetch("SELECT 1 AS ok")  # fail fast when the database is unreachable
        ctx["streaming"] = await runtime.start(settings)
        ctx["scheduler"] = asyncio.create_task(Scheduler(queue, job_entries).run(), name="worker-scheduler")
        log.info("worker.start", engine="saq", queue=queue.name, jobs=[job.name for job in job_entries])

    async def shutdown(ctx: dict[str, Any]) -> None:
        from ordergraph.db import close_db  # noqa: PLC0415
        from ordergraph.subscriptions import runtime  # noqa: PLC0415

        scheduler = ctx.pop("scheduler", None)
        if scheduler is not None:
            scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scheduler
        stream = ctx.pop("streaming", None)
        if stream is not None:
            await runtime.stop(stream)
        if ctx.pop("db", False):
            await close_db()
        if stream is not None:
            log.info("worker.stop", engine="saq")

    # shutdown_grace_period_s=0: run() already waited for the running jobs when stop() comes.
    worker = Worker(queue, functions(job_entries), startup=startup, shutdown=shutdown,
                    shutdown_grace_period_s=0, timers={"sweep": 30})
    worker.SIGNALS = []  # the caller owns the signals (run's `stop`)
    return worker


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Run the saq worker until `stop` is set; then stop scheduling, let running jobs finish
    (up to STOP_GRACE seconds; then they are cancelled and saq puts them back in the queue for
    another worker), run the shutdown hooks and close the Redis connection."""
    worker = make_worker(settings)
    main = asyncio.create_task(worker.start(), name="saq-worker")
    stopping = asyncio.create_task(stop.wait(), name="worker-stop")
    try:
        await asyncio.wait({main, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        scheduler = worker.context.get("scheduler")
        if scheduler is not None:
            scheduler.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_GRACE
        while worker.job_task_contexts and not main.done() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        worker.event.set()  # start() returns through stop(): cancels what still runs, then shutdown
        try:
            await main
        finally:
            with contextlib.suppress(Exception):
                await worker.queue.disconnect()
