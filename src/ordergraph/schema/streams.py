"""Types streamed by subscriptions."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from ordergraph.models import Order
from ordergraph.schema.orders import OrderType
from ordergraph.subscriptions.messages import EventMessage


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
        return cls(
            cursor=str(m.id), aggregate_type=m.aggregate_type, aggregate_id=m.aggregate_id, sequence=m.sequence,
            type=m.type, data=m.data, actor=m.actor, created_at=datetime.fromisoformat(m.created_at),
        )


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
