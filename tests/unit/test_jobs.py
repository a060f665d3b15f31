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


def test_the_saq_worker_derives_its_functions_and_tick_jobs_from_default_jobs(monkeypatch):
    from ordergraph import worker  # noqa: PLC0415

    monkeypatch.delenv("ORDERGRAPH_JOB_INTERVALS", raising=False)

    async def relay():
        return 0

    entries = worker.job_list(relay=relay)
    assert [name for name, _ in worker.functions(entries)] == [
        "job_expire_reservations", "job_deliver_notifications", "job_escalate_exceptions", "job_exception_sweeps",
        "job_outbox_relay"]
    assert all(func.__qualname__ == name for name, func in worker.functions(entries))
    tick = worker.tick_of(300.0, 1_800_000_123.4)
    job = worker.tick_job(entries[3], tick)
    assert (job.function, job.key, job.retries, job.retry_delay, job.ttl, job.timeout) == (
        "job_exception_sweeps", "exception_sweeps:1800000000000", worker.MAX_TRIES, 10.0, worker.RESULT_TTL,
        worker.JOB_TIMEOUT)
    assert worker.MAX_TRIES == 3
    monkeypatch.setenv("ORDERGRAPH_JOB_INTERVALS", "exception_sweeps=1, escalate_exceptions=2")
    assert [(j.name, j.interval) for j in worker.job_list()] == [
        ("expire_reservations", 5.0), ("deliver_notifications", 5.0), ("escalate_exceptions", 2.0), ("exception_sweeps", 1.0)]
    for bad, message in (("nosuch=1", "no job named nosuch"), ("exception_sweeps", "got 'exception_sweeps'"),
                         ("exception_sweeps=0", "got 'exception_sweeps=0'")):
        monkeypatch.setenv("ORDERGRAPH_JOB_INTERVALS", bad)
        with pytest.raises(ValueError, match=message):
            worker.job_list()


def test_an_interval_becomes_wall_clock_ticks():
    from ordergraph.worker import period, retry_delay, tick_of  # noqa: PLC0415

    assert [period(i) for i in (0.2, 1, 5, 30, 300, 7200)] == [1, 1, 5, 30, 300, 7200]
    t = 1_800_000_007.9  # 2027-01-15 08:00:07.9 UTC
    assert tick_of(1, t) == 1_800_000_007_000
    assert tick_of(0.2, t) == 1_800_000_007_000  # below a second: every second
    assert tick_of(5, t) == 1_800_000_005_000  # seconds 0, 5, ..., 55 of every minute
    assert tick_of(30, t) == 1_800_000_000_000  # seconds 0 and 30
    assert tick_of(300, t) == 1_800_000_000_000  # every fifth minute at second 0
    assert tick_of(300, t - 8) == 1_799_999_700_000
    assert tick_of(86400, t) == 1_799_971_200_000  # midnight UTC
    assert [retry_delay(i) for i in (1, 5, 30, 300)] == [1.0, 2.5, 10.0, 10.0]


async def test_a_failing_tick_raises_to_saq_which_retries_it():
    from ordergraph import worker  # noqa: PLC0415

    calls = []

    async def boom():
        calls.append(1)
        raise RuntimeError("boom")

    async def fine():
        return 3

    [(_, run_boom), (_, run_fine)] = worker.functions([Job("boom", 30.0, boom), Job("fine", 30.0, fine)])
    for attempt in range(1, worker.MAX_TRIES + 1):
        with pytest.raises(RuntimeError, match="boom"):
            await run_boom({"job": type("J", (), {"attempts": attempt})()})
    assert len(calls) == worker.MAX_TRIES
    assert await run_fine({"job": None}) == 3
