"""Returns (RMAs) in the graph: the return, its lines and inspections, its labels, its refund."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.types import Info

from ordergraph.auth.permissions import can_read_order
from ordergraph.models import Order, ReturnAuthorization, ReturnInspection, ReturnLine, Shipment, Warehouse
from ordergraph.schema.common import Money, money
from ordergraph.schema.enums import Disposition, ItemCondition, ReturnReason, ReturnStatus
from ordergraph.schema.fulfillment import ShipmentType
from ordergraph.workflows.returns import RETURN, refund_quote


@strawberry.type
class ReturnInspectionType:
    quantity: int
    condition: ItemCondition
    disposition: Disposition
    note: str
    actor: str
    created_at: datetime
    warehouse_code: str | None


@strawberry.type(name="ReturnLine")
class ReturnLineType:
    id: strawberry.ID
    order_line_id: strawberry.ID
    sku: str
    quantity: int
    reason: ReturnReason
    note: str
    unit_price: Money
    received_quantity: int
    inspected_quantity: int
    refunded_quantity: int
    line_id: strawberry.Private[int]

    @strawberry.field
    async def inspections(self) -> list[ReturnInspectionType]:
        rows = await ReturnInspection.filter(line_id=self.line_id).order_by("id")
        codes = {w.id: w.code for w in await Warehouse.filter(id__in=[r.warehouse_id for r in rows if r.warehouse_id])}
        return [ReturnInspectionType(quantity=r.quantity, condition=r.condition, disposition=r.disposition, note=r.note,
                                     actor=r.actor, created_at=r.created_at, warehouse_code=codes.get(r.warehouse_id))
                for r in rows]


@strawberry.type
class RefundPreview:
    merchandise: Money = strawberry.field(description="Refundable units (resellable, damaged, defective) at their price.")
    restocking_fee: Money
    return_shipping_fee: Money
    refundable_left: Money = strawberry.field(description="Captured and not yet refunded on the order's payment.")
    total: Money


@strawberry.type(name="Return")
class ReturnType(relay.Node):
    id: relay.NodeID[int]
    number: str
    status: ReturnStatus
    requested_by: str
    requester_kind: str
    note: str
    auto_approved: bool
    decline_reason: str | None
    refund_amount: Money
    restocking_fee: Money
    return_shipping_fee: Money
    refund_error: str | None
    requested_at: datetime
    approved_at: datetime | None
    received_at: datetime | None
    inspected_at: datetime | None
    closed_at: datetime | None
    cancelled_at: datetime | None
    processing_seconds: int | None = strawberry.field(description="Request to refund (or exchange, or close).")
    model: strawberry.Private[ReturnAuthorization]

    @classmethod
    def from_model(cls, r: ReturnAuthorization) -> ReturnType:
        c = r.currency
        return cls(id=r.id, number=r.number, status=r.status, requested_by=r.requested_by, requester_kind=r.requester_kind,
                   note=r.note, auto_approved=r.auto_approved, decline_reason=r.decline_reason or None,
                   refund_amount=money(r.refund_amount, c), restocking_fee=money(r.restocking_fee, c),
                   return_shipping_fee=money(r.return_shipping_fee, c), refund_error=r.refund_error or None,
                   requested_at=r.requested_at, approved_at=r.approved_at, received_at=r.received_at,
                   inspected_at=r.inspected_at, closed_at=r.closed_at, cancelled_at=r.cancelled_at,
                   processing_seconds=r.processing_seconds, model=r)

    @strawberry.field
    async def order_number(self) -> str:
        return (await Order.get(id=self.model.order_id)).number

    @strawberry.field(description="The replacement order of an exchange.")
    async def exchange_order_number(self) -> str | None:
        if self.model.exchange_order_id is None:
            return None
        return (await Order.get(id=self.model.exchange_order_id)).number

    @strawberry.field
    async def warehouse_code(self) -> str:
        return (await Warehouse.get(id=self.model.warehouse_id)).code

    @strawberry.field
    async def lines(self) -> list[ReturnLineType]:
        currency = self.model.currency
        return [ReturnLineType(id=strawberry.ID(str(rl.id)), order_line_id=strawberry.ID(str(rl.order_line_id)), sku=rl.sku,
                               quantity=rl.quantity, reason=rl.reason, note=rl.note, unit_price=money(rl.unit_price, currency),
                               received_quantity=rl.received_quantity, inspected_quantity=rl.inspected_quantity,
                               refunded_quantity=rl.refunded_quantity, line_id=rl.id)
                for rl in await ReturnLine.filter(rma_id=self.id).order_by("id")]

    @strawberry.field(description="The return's labels (RETURN shipments) with their tracking timeline.")
    async def labels(self) -> list[ShipmentType]:
        return [ShipmentType.from_model(s) for s in await Shipment.filter(return_id=self.id).order_by("id")]

    @strawberry.field(description="What a refund would pay now, computed from the inspections and the channel's policy.")
    async def refund_preview(self) -> RefundPreview:
        q = await refund_quote(self.model)
        c = self.model.currency
        return RefundPreview(merchandise=money(q.merchandise, c), restocking_fee=money(q.restocking_fee, c),
                             return_shipping_fee=money(q.return_shipping_fee, c),
                             refundable_left=money(q.refundable_left, c), total=money(q.total, c))

    @strawberry.field(description="Lifecycle actions allowed now.")
    def available_actions(self) -> list[str]:
        return RETURN.available(self.model)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids, required: bool = False):
        rows = {r.id: r for r in await ReturnAuthorization.filter(id__in=[int(i) for i in node_ids])}
        orders = {o.id: o for o in await Order.filter(id__in=[r.order_id for r in rows.values()])}
        viewer = info.context.viewer
        return [cls.from_model(rows[int(i)]) if int(i) in rows and can_read_order(viewer, orders[rows[int(i)].order_id])
                else None for i in node_ids]
