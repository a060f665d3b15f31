"""The outbox: committed events reach the bus right after commit (Publisher), and whatever
a crash or a Redis outage left unpublished is published by the relay from the event table.

Both mark what they published (`events.published_at`); a message may be published twice
(at least once), and subscribers de-duplicate by aggregate and sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from ordergraph.db import dialect, execute
from ordergraph.models import Event, Order
from ordergraph.observability import log
from ordergraph.subscriptions.bus import EventBus
from ordergraph.subscriptions.messages import EventMessage

BATCH = 500


async def mark_published(ids: list[int], at: datetime | None = None) -> None:
    """Set `published_at` (now, or `at`) on those of the events that have none, in one UPDATE
    whose text on PostgreSQL does not depend on how many there are (one prepared statement)."""
    if not ids:
        return
    at = at or datetime.now(UTC)
    if dialect() == "postgres":
        await execute("UPDATE events SET published_at = $1 WHERE id = ANY($2::bigint[]) AND published_at IS NULL",
                      [at, ids])
        return
    for start in range(0, len(ids), BATCH):  # SQLite: at most BATCH placeholders per statement
        chunk = ids[start:start + BATCH]
        await execute(f"UPDATE events SET published_at = ? WHERE id IN ({', '.join('?' * len(chunk))})"
                      " AND published_at IS NULL", [at, *chunk])


class Publisher:
    """Takes events from after-commit callbacks and publishes them in batches.

    Each batch goes to the bus at once; marking them published in the table waits up to
    `MARK_DELAY` so the marks of every batch published meanwhile go in one UPDATE (one per
    order placed was a statement of its own). Until marked, the relay would publish them again,
    but only once they are `relay_once`'s grace (2 s) old; a crash before the mark means they
    are published twice, which subscribers de-duplicate (at least once). `published_at` is the
    time the first batch of the group was published."""

    MARK_DELAY = 0.2

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._queue: asyncio.Queue[EventMessage] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._unmarked: list[int] = []
        self._unmarked_since: datetime | None = None
        self._marker: asyncio.Task | None = None

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
        if self._marker is not None:
            self._marker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._marker

    async def flush(self) -> None:
        """Wait until everything submitted so far has been published and marked (used at
        shutdown, tests)."""
        await self._queue.join()
        await self._mark()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < BATCH:
                batch.append(self._queue.get_nowait())
            try:
                await self.bus.publish(batch)
                if not self._unmarked:
                    self._unmarked_since = datetime.now(UTC)
                self._unmarked.extend(m.id for m in batch)
                if self._marker is None or self._marker.done():
                    self._marker = asyncio.create_task(self._mark_soon(), name="outbox-marker")
            except Exception as exc:  # noqa: BLE001 - the relay publishes them later
                log.warning("outbox.publish_failed", events=len(batch), error=repr(exc))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _mark_soon(self) -> None:
        # Batches published while a mark's UPDATE is on its way find this task still running
        # and start no other: mark them too before ending (else they would wait for the next
        # publication, or the relay, to be marked).
        while self._unmarked:
            await asyncio.sleep(self.MARK_DELAY)
            await self._mark()

    async def _mark(self) -> None:
        ids, at, self._unmarked, self._unmarked_since = self._unmarked, self._unmarked_since, [], None
        try:
            await mark_published(ids, at)
        except Exception as exc:  # noqa: BLE001 - left unmarked: the relay publishes them again
            log.warning("outbox.mark_failed", events=len(ids), error=repr(exc))


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
