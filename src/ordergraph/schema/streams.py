"""Types streamed by subscriptions."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from ordergraph.models import Order
from ordergraph.schema.orders import OrderType
from ordergraph.subscriptions.messages import EventMessage


@lru_cache(maxsize=4096)
def event_time(created_at: str) -> datetime:
    """An event's `created_at` as it travels on the bus, parsed once per event, not per subscriber."""
    return datetime.fromisoformat(created_at)


# The StreamEvent of a message, made once and shared by every subscriber that yields it (the
# message object is the one the bus decoded once for the whole process).
_STREAM_EVENTS_KEPT = 64
_stream_events: dict[int, tuple[EventMessage, StreamEvent]] = {}


@strawberry.type(description="One event from the log; `cursor` resumes a subscription after it.")
class StreamEvent:
    cursor: str
    aggregate_type: str
    aggregate_id: int
    sequence: int
    type: str
    data: JSON
    actor: str
    created_at: datetime

    @classmethod
    def from_message(cls, m: EventMessage) -> StreamEvent:
        cached = _stream_events.get(id(m))
        if cached is not None and cached[0] is m:
            return cached[1]
        event = cls(
            cursor=str(m.id), aggregate_type=m.aggregate_type, aggregate_id=m.aggregate_id, sequence=m.sequence,
            type=m.type, data=m.data, actor=m.actor, created_at=event_time(m.created_at),
        )
        _stream_events[id(m)] = (m, event)  # holding m keeps its id from being reused meanwhile
        while len(_stream_events) > _STREAM_EVENTS_KEPT:
            del _stream_events[next(iter(_stream_events))]
        return event


@strawberry.type(description="An order changed: the event, and the order as it is now.")
class OrderUpdate:
    number: str
    status: str
    event: StreamEvent
    order_id: strawberry.Private[int]

    @strawberry.field
    async def order(self, info: Info) -> OrderType | None:
        o = await Order.get_or_none(id=self.order_id)
        return OrderType.from_model(o) if o else None

    @classmethod
    def from_message(cls, m: EventMessage) -> OrderUpdate:
        o = m.routing.get("order") or {}
        status = m.data.get("status")
        current = status.get("to") if isinstance(status, dict) else o.get("status", "")
        return cls(number=o.get("number", ""), status=str(current or o.get("status", "")),
                   event=StreamEvent.from_message(m), order_id=int(o.get("id", m.order_id or 0)))


@strawberry.type(description="A stock level changed (STOCK_CHANGED) or crossed its reorder point (LOW_STOCK).")
class InventoryUpdate:
    cursor: str
    type: str
    sku: str
    warehouse: str
    kind: str | None
    quantity: int | None
    on_hand: int
    allocated: int
    reserved: int
    safety_stock: int
    available: int
    reorder_point: int
    created_at: datetime
