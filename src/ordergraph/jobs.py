"""Periodic background jobs: one asyncio task per job, run every `interval` seconds.

A job that raises is logged and runs again at its next tick; stopping cancels the tasks and
waits for them. Jobs must be safe to run from several processes at once (they are: each
claims its rows with a conditional UPDATE).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ordergraph.observability import log
from ordergraph.workflows.exceptions import escalate_due, sweep
from ordergraph.workflows.notifications import deliver_pending
from ordergraph.workflows.reservations import expire_due_reservations


@dataclass
class Job:
    name: str
    interval: float
    func: Callable[[], Awaitable[object]]


class JobRunner:
    def __init__(self, jobs: list[Job] | None = None) -> None:
        self.jobs: list[Job] = list(jobs or [])
        self._tasks: list[asyncio.Task] = []

    def add(self, name: str, interval: float, func: Callable[[], Awaitable[object]]) -> None:
        self.jobs.append(Job(name, interval, func))

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    def start(self) -> None:
        if self.running:
            return
        self._tasks = [asyncio.create_task(self._loop(job), name=f"job:{job.name}") for job in self.jobs]
        log.info("jobs.start", jobs=[j.name for j in self.jobs])

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    @staticmethod
    async def run_once(job: Job) -> None:
        """One tick of a job; an exception is logged, never raised."""
        try:
            result = await job.func()
            if result:
                log.info("job.done", job=job.name, result=result)
        except Exception as exc:  # noqa: BLE001 - a failing job must not stop the others
            log.error("job.failed", job=job.name, error=repr(exc), exc_info=exc)

    async def _loop(self, job: Job) -> None:
        while True:
            await self.run_once(job)
            await asyncio.sleep(job.interval)


def default_jobs(relay: Callable[[], Awaitable[object]] | None = None) -> JobRunner:
    """The jobs every API or worker process runs; `relay` publishes what the outbox missed."""
    jobs = [
        Job("expire_reservations", 5.0, expire_due_reservations),
        Job("deliver_notifications", 5.0, deliver_pending),
        Job("escalate_exceptions", 30.0, escalate_due),
        Job("exception_sweeps", 300.0, sweep),
    ]
    if relay is not None:
        jobs.append(Job("outbox_relay", 1.0, relay))
    return JobRunner(jobs)
