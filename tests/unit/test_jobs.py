"""The periodic job runner, and reservation expiry running by itself."""

import asyncio
from datetime import UTC, datetime, timedelta

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
