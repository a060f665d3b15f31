"""`ordergraph worker` with Redis: the periodic jobs of `jobs.default_jobs` run by arq.

One source of truth: every `Job(name, interval, func)` that `jobs.default_jobs(relay=...)`
returns becomes an arq cron job (a job added there runs in both runners). An interval becomes
a wall-clock schedule: 5 s → seconds {0, 5, …, 55} of every minute, 300 s → minutes
{0, 5, …, 55} at second 0, and so on (an interval that does not divide the minute or the hour
leaves a shorter gap at the turn of it; below a second, every second).

Several workers, one run per tick: arq's cron jobs are `unique`, so every worker computes the
same job id for a tick (`<name>:<tick in ms>`) and enqueues it up to a second early; Redis keeps
one job per id and one worker takes it. The result is kept for `RESULT_TTL` seconds, so a
worker that comes late to a tick that already ran does not enqueue it again. Underneath, every
job stays safe to run twice (conditional UPDATEs, unique fact keys, leased notification
claims): arq saves work, the database guarantees the outcome.

A job that raises is retried by arq (`Retry`, up to `MAX_TRIES` tries, soon rather than at its
next tick), then recorded as failed; the other jobs keep running.

Environment (besides the settings in config.py):
- `ORDERGRAPH_JOB_INTERVALS`: override intervals, `name=seconds` separated by commas
  (`exception_sweeps=60,escalate_exceptions=5`); also honoured by the embedded worker.
- `ORDERGRAPH_WORKER_QUEUE`: the arq queue (default `ordergraph:jobs`); deployments sharing
  one Redis database use one queue each.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any

from arq import Retry
from arq.connections import RedisSettings
from arq.cron import CronJob, cron
from arq.worker import Worker

from ordergraph import jobs
from ordergraph.config import Settings
from ordergraph.observability import log

DEFAULT_QUEUE = "ordergraph:jobs"
MAX_TRIES = 3  # tries of one tick of a job that raises
RESULT_TTL = 60  # seconds a tick's result stays in Redis (its id cannot be enqueued again)
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


def schedule(interval: float) -> dict[str, Any]:
    """arq cron fields for "every `interval` seconds" on the wall clock."""
    seconds = max(1, round(interval))
    if seconds < 60:
        return {"second": None if seconds == 1 else set(range(0, 60, seconds))}
    if seconds < 3600:
        return {"minute": set(range(0, 60, max(1, round(seconds / 60)))), "second": 0}
    if seconds < 86400:
        return {"hour": set(range(0, 24, max(1, round(seconds / 3600)))), "minute": 0, "second": 0}
    return {"hour": 0, "minute": 0, "second": 0}


def retry_delay(interval: float) -> float:
    return min(max(interval / 2, 1.0), 10.0)


def _task(job: jobs.Job) -> Callable[[dict[str, Any]], Awaitable[object]]:
    async def run(ctx: dict[str, Any]) -> object:
        try:
            result = await job.func()
        except Exception as exc:  # noqa: BLE001 - arq retries it, then records the failure
            attempt = ctx.get("job_try", 1)
            if attempt < MAX_TRIES:
                log.warning("job.retry", job=job.name, attempt=attempt, error=repr(exc))
                raise Retry(defer=retry_delay(job.interval)) from exc
            log.error("job.failed", job=job.name, attempt=attempt, error=repr(exc), exc_info=exc)
            raise
        if result:
            log.info("job.done", job=job.name, result=result)
        return result

    run.__qualname__ = run.__name__ = f"job_{job.name}"
    return run


def cron_jobs(job_entries: list[jobs.Job], queue: str) -> list[CronJob]:
    return [
        cron(_task(job), name=f"{queue}:{job.name}", unique=True, keep_result=RESULT_TTL, max_tries=MAX_TRIES,
             **schedule(job.interval))
        for job in job_entries
    ]


async def _relay() -> object:
    """The outbox relay of the streaming runtime this worker started (on_startup)."""
    from ordergraph.subscriptions import runtime  # noqa: PLC0415

    return await runtime.current().relay()


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of `arq.worker.Worker` (arq's WorkerSettings, as a dict)."""
    if not settings.redis_url:
        raise ValueError("the arq worker needs REDIS_URL")
    queue = queue_name()

    async def on_startup(ctx: dict[str, Any]) -> None:
        from ordergraph.db import fetch, init_db  # noqa: PLC0415
        from ordergraph.subscriptions import runtime  # noqa: PLC0415

        await init_db(settings, process_wide=True)  # jobs run in tasks arq creates
        ctx["db"] = True
        await fetch("SELECT 1 AS ok")  # fail fast when the database is unreachable
        ctx["streaming"] = await runtime.start(settings)
        log.info("worker.start", engine="arq", queue=queue, jobs=[c.name for c in ctx_jobs])

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        from ordergraph.db import close_db  # noqa: PLC0415
        from ordergraph.subscriptions import runtime  # noqa: PLC0415

        stream = ctx.pop("streaming", None)
        if stream is not None:
            await runtime.stop(stream)
        if ctx.pop("db", False):
            await close_db()
        if stream is not None:
            log.info("worker.stop", engine="arq")

    ctx_jobs = cron_jobs(job_list(relay=_relay), queue)
    return {
        "queue_name": queue,
        "cron_jobs": ctx_jobs,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "max_tries": MAX_TRIES,
        "timezone": UTC,
        "health_check_key": f"{queue}:health-check",
    }


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Run the arq worker until `stop` is set, then let running jobs finish (up to
    STOP_GRACE seconds, then they are cancelled and arq runs them again elsewhere) and close."""
    worker = Worker(**worker_settings(settings), handle_signals=False)
    main = asyncio.create_task(worker.async_run(), name="arq-worker")
    stopping = asyncio.create_task(stop.wait(), name="worker-stop")
    try:
        await asyncio.wait({main, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        failed = main.exception() if main.done() and not main.cancelled() else None
        worker.allow_pick_jobs = False
        deadline = asyncio.get_running_loop().time() + STOP_GRACE
        while any(not t.done() for t in worker.tasks.values()) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()  # cancels what still runs, runs on_shutdown, closes the pool
        await worker.on_shutdown(worker.ctx)  # again when close() stopped early: a no-op otherwise
        if not main.done():
            main.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await main
    if failed is not None:
        raise failed
