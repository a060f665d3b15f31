"""The outbox: committed events reach the bus right after commit (Publisher), and whatever
a crash or a Redis outage left unpublished is published by the relay from the event table.

Both mark what they published (`events.published_at`); a message may be published twice
(at least once), and subscribers de-duplicate by aggregate and sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from ordergraph.models import Event, Order
from ordergraph.observability import log
from ordergraph.subscriptions.bus import EventBus
from ordergraph.subscriptions.messages import EventMessage

BATCH = 500


async def mark_published(ids: list[int]) -> None:
    if ids:
        await Event.filter(id__in=ids, published_at__isnull=True).update(published_at=datetime.now(UTC))


class Publisher:
    """Takes events from after-commit callbacks and publishes them in batches."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._queue: asyncio.Queue[EventMessage] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def submit(self, event: Event, routing: dict) -> None:
        self._queue.put_nowait(EventMessage.from_event(event, routing))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-publisher")

    async def stop(self) -> None:
        if self._task:
            await self.flush()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def flush(self) -> None:
        """Wait until everything submitted so far has been handled (used at shutdown, tests)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < BATCH:
                batch.append(self._queue.get_nowait())
            try:
                await self.bus.publish(batch)
                await mark_published([m.id for m in batch])
            except Exception as exc:  # noqa: BLE001 - the relay publishes them later
                log.warning("outbox.publish_failed", events=len(batch), error=repr(exc))
            finally:
                for _ in batch:
                    self._queue.task_done()


async def routing_for(events: list[Event]) -> dict[int, dict]:
    """Routing facts for events read back from the table (the relay's path)."""
    order_ids = {e.order_id for e in events if e.order_id}  # any aggregate of an order: shipments, returns...
    orders = {
        o["id"]: o
        for o in await Order.filter(id__in=list(order_ids)).values("id", "number", "status", "channel_id", "customer_email")
    }
    out: dict[int, dict] = {}
    for e in events:
        if e.order_id in orders:
            o = orders[e.order_id]
            out[e.id] = {"order": {"id": o["id"], "number": o["number"], "status": str(o["status"]),
                                   "channel_id": o["channel_id"], "email": o["customer_email"]}}
        elif e.aggregate_type == "InventoryLevel":
            out[e.id] = {"inventory": {"warehouse_id": e.data.get("warehouse_id"), "variant_id": e.data.get("variant_id")}}
        else:
            out[e.id] = {}
    return out


async def relay_once(bus: EventBus, grace: timedelta = timedelta(seconds=2)) -> int:
    """Publish events committed more than `grace` ago and still unpublished; returns how many."""
    cutoff = datetime.now(UTC) - grace
    total = 0
    while True:
        events = await Event.filter(published_at__isnull=True, created_at__lt=cutoff).order_by("id").limit(BATCH)
        if not events:
            return total
        routing = await routing_for(events)
        await bus.publish([EventMessage.from_event(e, routing[e.id]) for e in events])
        await mark_published([e.id for e in events])
        total += len(events)
        if len(events) < BATCH:
            return total
