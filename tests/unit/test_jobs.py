"""The periodic job runner, and reservation expiry running by itself."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from ordergraph.jobs import Job, JobRunner, default_jobs
from ordergraph.models import InventoryLevel, Reservation
from ordergraph.models.enums import ReservationStatus
from ordergraph.workflows.reservations import reserve_stock
from tests import factories as f


async def _until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_a_failing_job_keeps_running_and_does_not_stop_the_others():
    ticks = {"bad": 0, "good": 0}

    async def bad():
        ticks["bad"] += 1
        raise RuntimeError("boom")

    async def good():
        ticks["good"] += 1

    runner = JobRunner([Job("bad", 0.01, bad)])
    runner.add("good", 0.01, good)
    runner.start()
    runner.start()  # already running: no second set of tasks
    assert runner.running

    async def enough():
        return ticks["bad"] >= 3 and ticks["good"] >= 3

    await _until(enough)
    await runner.stop()
    assert not runner.running
    stopped = dict(ticks)
    await asyncio.sleep(0.05)
    assert ticks == stopped


async def test_default_jobs_expire_due_reservations(db):
    w = await f.warehouse("A")
    await f.channel("WEB", [w])
    v = await f.variant("SKU-1")
    await f.stock(w, v, 5)
    r = await reserve_stock("WEB", [("SKU-1", 2)], "", owner="o", actor="o")
    await Reservation.filter(id=r.id).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    runner = default_jobs()
    assert [(j.name, j.interval) for j in runner.jobs] == [
        ("expire_reservations", 5.0), ("deliver_notifications", 5.0), ("escalate_exceptions", 30.0), ("exception_sweeps", 300.0)]
    runner.start()
    try:
        async def expired():
            return (await Reservation.get(id=r.id)).status is ReservationStatus.EXPIRED

        await _until(expired)
    finally:
        await runner.stop()
    assert (await InventoryLevel.get(warehouse=w, variant=v)).reserved == 0


def test_the_arq_worker_derives_its_cron_jobs_from_default_jobs(monkeypatch):
    from ordergraph import worker  # noqa: PLC0415

    monkeypatch.delenv("ORDERGRAPH_JOB_INTERVALS", raising=False)

    async def relay():
        return 0

    crons = worker.cron_jobs(worker.job_list(relay=relay), "q")
    assert [(c.name, c.second, c.minute, c.unique, c.keep_result_s, c.max_tries) for c in crons] == [
        ("q:expire_reservations", set(range(0, 60, 5)), None, True, worker.RESULT_TTL, worker.MAX_TRIES),
        ("q:deliver_notifications", set(range(0, 60, 5)), None, True, worker.RESULT_TTL, worker.MAX_TRIES),
        ("q:escalate_exceptions", {0, 30}, None, True, worker.RESULT_TTL, worker.MAX_TRIES),
        ("q:exception_sweeps", 0, set(range(0, 60, 5)), True, worker.RESULT_TTL, worker.MAX_TRIES),
        ("q:outbox_relay", None, None, True, worker.RESULT_TTL, worker.MAX_TRIES),
    ]
    monkeypatch.setenv("ORDERGRAPH_JOB_INTERVALS", "exception_sweeps=1, escalate_exceptions=2")
    assert [(j.name, j.interval) for j in worker.job_list()] == [
        ("expire_reservations", 5.0), ("deliver_notifications", 5.0), ("escalate_exceptions", 2.0), ("exception_sweeps", 1.0)]
    for bad, message in (("nosuch=1", "no job named nosuch"), ("exception_sweeps", "got 'exception_sweeps'"),
                         ("exception_sweeps=0", "got 'exception_sweeps=0'")):
        monkeypatch.setenv("ORDERGRAPH_JOB_INTERVALS", bad)
        with pytest.raises(ValueError, match=message):
            worker.job_list()


def test_an_interval_becomes_a_wall_clock_schedule():
    from ordergraph.worker import schedule  # noqa: PLC0415

    assert schedule(1) == {"second": None}
    assert schedule(0.2) == {"second": None}
    assert schedule(5) == {"second": set(range(0, 60, 5))}
    assert schedule(30) == {"second": {0, 30}}
    assert schedule(300) == {"minute": set(range(0, 60, 5)), "second": 0}
    assert schedule(7200) == {"hour": set(range(0, 24, 2)), "minute": 0, "second": 0}
    assert schedule(86400) == {"hour": 0, "minute": 0, "second": 0}


async def test_a_failing_tick_is_retried_by_arq_then_recorded_as_failed():
    from arq import Retry  # noqa: PLC0415

    from ordergraph import worker  # noqa: PLC0415

    async def boom():
        raise RuntimeError("boom")

    [job] = worker.cron_jobs([Job("boom", 30.0, boom)], "q")
    for attempt in range(1, worker.MAX_TRIES):
        with pytest.raises(Retry) as retry:
            await job.coroutine({"job_try": attempt})
        assert retry.value.defer_score == 10_000  # min(30 / 2, 10) seconds
    with pytest.raises(RuntimeError, match="boom"):
        await job.coroutine({"job_try": worker.MAX_TRIES})
