"""Order, its lines, allocations, holds, payments and timeline; the guest's tracked view."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.types import Info

from ordergraph.auth.permissions import can_read_order
from ordergraph.models import Order, Payment
from ordergraph.resolvers.loaders import loader
from ordergraph.schema.catalog import ProductVariantType
from ordergraph.resolvers.fulfillment_loaders import floader
from ordergraph.schema.common import Money, money
from ordergraph.schema.fulfillment import FulfillmentOrderType, ShipmentType, TrackedShipment, tracked_shipments
from ordergraph.schema.enums import (
    AllocationStatus,
    HoldReason,
    OrderStatus,
    PaymentStatus,
    ServiceLevel,
    TransactionKind,
)
from ordergraph.workflows.order_lifecycle import ORDER, PAYMENT, OrderContext

PAYMENT_ACTIONS_OK = {"AUTHORIZED", "PARTIALLY_CAPTURED", "CAPTURED", "PARTIALLY_REFUNDED", "REFUNDED"}


@strawberry.type
class Address:
    name: str | None = None
    company: str | None = None
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None
    phone: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> Address:
        return cls(**{k: d.get(k) for k in cls.__annotations__})


@strawberry.type
class Customer:
    email: str
    name: str
    phone: str


@strawberry.type
class AllocationType:
    quantity: int
    status: AllocationStatus
    created_at: datetime
    warehouse_code: str


@strawberry.type(name="OrderLine")
class OrderLineType:
    id: strawberry.ID
    sku: str
    name: str
    quantity: int
    unit_price: Money
    line_total: Money
    allocated_quantity: int
    backordered_quantity: int
    shipped_quantity: int
    cancelled_quantity: int
    external_line_id: str | None
    line_id: strawberry.Private[int]
    order_id: strawberry.Private[int]
    variant_id: strawberry.Private[int]

    @strawberry.field
    async def allocations(self, info: Info) -> list[AllocationType]:
        rows = await loader(info, "allocations_by_order").load(self.order_id)
        return [
            AllocationType(quantity=a["quantity"], status=a["status"], created_at=a["created_at"],
                           warehouse_code=a["warehouse_code"])
            for a in rows
            if a["line_id"] == self.line_id
        ]

    @strawberry.field
    async def variant(self, info: Info) -> ProductVariantType:
        return ProductVariantType.from_model(await loader(info, "variant").load(self.variant_id))


@strawberry.type
class Hold:
    reason: HoldReason
    note: str
    placed_by: str
    created_at: datetime
    released_at: datetime | None
    released_by: str | None
    release_note: str

    @strawberry.field
    def active(self) -> bool:
        return self.released_at is None


@strawberry.type
class PaymentTransactionType:
    kind: TransactionKind
    amount: Decimal
    success: bool
    gateway_reference: str | None
    error_code: str | None
    created_at: datetime


@strawberry.type(name="Payment")
class PaymentType:
    id: strawberry.ID
    gateway: str
    method: str
    status: PaymentStatus
    amount: Money
    authorized: Money
    captured: Money
    refunded: Money
    authorization_expires_at: datetime | None
    failure_code: str | None
    created_at: datetime
    payment_id: strawberry.Private[int]
    model: strawberry.Private[Payment]

    @strawberry.field(description="Lifecycle actions allowed now (CAPTURE, VOID, REFUND).")
    def available_actions(self) -> list[str]:
        return PAYMENT.available(self.model)

    @classmethod
    def from_model(cls, p: Payment) -> PaymentType:
        return cls(
            id=strawberry.ID(str(p.id)), gateway=p.gateway, method=p.method, status=p.status,
            amount=money(p.amount, p.currency), authorized=money(p.authorized_amount, p.currency),
            captured=money(p.captured_amount, p.currency), refunded=money(p.refunded_amount, p.currency),
            authorization_expires_at=p.authorization_expires_at, failure_code=p.failure_code,
            created_at=p.created_at, payment_id=p.id, model=p,
        )

    @strawberry.field
    async def transactions(self, info: Info) -> list[PaymentTransactionType]:
        rows = await loader(info, "transactions_by_payment").load(self.payment_id)
        return [
            PaymentTransactionType(kind=t.kind, amount=t.amount, success=t.success, gateway_reference=t.gateway_ref,
                                   error_code=t.error_code, created_at=t.created_at)
            for t in rows
        ]


@strawberry.type
class TimelineEvent:
    cursor: str
    sequence: int
    type: str
    data: JSON
    actor: str
    created_at: datetime


def timeline_event(e) -> TimelineEvent:
    return TimelineEvent(cursor=str(e.id), sequence=e.sequence, type=e.type, data=e.data, actor=e.actor, created_at=e.created_at)


def line_type(ln, currency: str) -> OrderLineType:
    return OrderLineType(
        id=strawberry.ID(str(ln.id)), sku=ln.sku, name=ln.name, quantity=ln.quantity,
        unit_price=money(ln.unit_price, currency), line_total=money(ln.unit_price * ln.quantity, currency),
        allocated_quantity=ln.allocated_quantity, backordered_quantity=ln.backordered_quantity,
        shipped_quantity=ln.shipped_quantity, cancelled_quantity=ln.cancelled_quantity,
        external_line_id=ln.external_line_id, line_id=ln.id, order_id=ln.order_id, variant_id=ln.variant_id,
    )


@strawberry.type(name="Order")
class OrderType(relay.Node):
    id: relay.NodeID[int]
    number: str
    external_id: str | None
    status: OrderStatus
    customer: Customer
    shipping_address: Address
    billing_address: Address
    service_level: ServiceLevel
    notes: str
    subtotal: Money
    total: Money
    placed_at: datetime
    updated_at: datetime
    cancelled_at: datetime | None
    cancel_reason: str | None
    channel_id: strawberry.Private[int]
    currency: strawberry.Private[str]
    model: strawberry.Private[Order]
    known_channel_code: strawberry.Private[str | None] = None

    @classmethod
    def from_model(cls, o: Order) -> OrderType:
        """`o` may carry `channel_code`, annotated by the query that read it (`order(number)`)."""
        return cls(
            id=o.id, number=o.number, external_id=o.external_id, status=o.status,
            customer=Customer(email=o.customer_email, name=o.customer_name, phone=o.customer_phone),
            shipping_address=Address.from_dict(o.shipping_address), billing_address=Address.from_dict(o.billing_address),
            service_level=o.service_level, notes=o.notes, subtotal=money(o.subtotal, o.currency),
            total=money(o.total, o.currency), placed_at=o.placed_at, updated_at=o.updated_at,
            cancelled_at=o.cancelled_at, cancel_reason=o.cancel_reason or None,
            channel_id=o.channel_id, currency=o.currency, model=o, known_channel_code=getattr(o, "channel_code", None),
        )

    @strawberry.field
    async def channel_code(self, info: Info) -> str:
        if self.known_channel_code is not None:
            return self.known_channel_code
        return (await loader(info, "channel").load(self.channel_id)).code

    @strawberry.field
    async def lines(self, info: Info) -> list[OrderLineType]:
        return [line_type(ln, self.currency) for ln in await loader(info, "lines_by_order").load(self.id)]

    @strawberry.field
    async def holds(self, info: Info, active_only: bool = False) -> list[Hold]:
        rows = await loader(info, "holds_by_order").load(self.id)
        return [
            Hold(reason=h.reason, note=h.note, placed_by=h.placed_by, created_at=h.created_at,
                 released_at=h.released_at, released_by=h.released_by, release_note=h.release_note)
            for h in rows
            if not active_only or h.released_at is None
        ]

    @strawberry.field
    async def on_hold(self, info: Info) -> bool:
        return any(h.released_at is None for h in await loader(info, "holds_by_order").load(self.id))

    @strawberry.field(description="One per warehouse that ships part of the order.")
    async def fulfillment_orders(self, info: Info) -> list[FulfillmentOrderType]:
        return [FulfillmentOrderType.from_model(f) for f in await floader(info, "fos_by_order").load(self.id)]

    @strawberry.field(description="Every package sent (or with a label bought), with its tracking timeline.")
    async def shipments(self, info: Info) -> list[ShipmentType]:
        return [ShipmentType.from_model(s) for s in await floader(info, "shipments_by_order").load(self.id)]

    @strawberry.field(description="Exceptions raised about this order (staff only), oldest first.")
    async def exceptions(self, info: Info) -> list[Annotated["ExceptionType", strawberry.lazy("ordergraph.schema.exceptions")]]:
        from ordergraph.models import OrderException  # noqa: PLC0415
        from ordergraph.schema.exceptions import ExceptionType  # noqa: PLC0415

        if not info.context.viewer.is_staff:
            return []
        return [ExceptionType.from_model(e) for e in await OrderException.filter(order_id=self.id).order_by("id")]

    @strawberry.field(description="Returns asked for this order (RMAs), oldest first.")
    async def returns(self, info: Info) -> list[Annotated["ReturnType", strawberry.lazy("ordergraph.schema.returns")]]:
        from ordergraph.models import ReturnAuthorization  # noqa: PLC0415
        from ordergraph.schema.returns import ReturnType  # noqa: PLC0415

        return [ReturnType.from_model(r) for r in await ReturnAuthorization.filter(order_id=self.id).order_by("id")]

    @strawberry.field
    async def payments(self, info: Info) -> list[PaymentType]:
        return [PaymentType.from_model(p) for p in await loader(info, "payments_by_order").load(self.id)]

    @strawberry.field
    async def timeline(self, info: Info, after: str | None = None) -> list[TimelineEvent]:
        rows = await loader(info, "events_by_order").load(self.id)
        start = int(after) if after and after.isdigit() else 0
        return [timeline_event(e) for e in rows if e.id > start]

    @strawberry.field(description="Lifecycle actions allowed now (CONFIRM, ALLOCATE, CANCEL, PLACE_HOLD, RELEASE_HOLD).")
    async def available_actions(self, info: Info) -> list[str]:
        holds = await loader(info, "holds_by_order").load(self.id)
        pays = await loader(info, "payments_by_order").load(self.id)
        lines = await loader(info, "lines_by_order").load(self.id)
        live = [p for p in pays if p.status != "FAILED"]
        status = live[-1].status if live else ("FAILED" if pays else None)
        units = sum(ln.quantity - ln.allocated_quantity - ln.shipped_quantity - ln.cancelled_quantity for ln in lines)
        ctx = OrderContext(self.model, sum(1 for h in holds if h.released_at is None), status, units)
        return ORDER.available(self.model, ctx)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids, required: bool = False):
        rows = {o.id: o for o in await Order.filter(id__in=[int(i) for i in node_ids])}
        viewer = info.context.viewer
        out = []
        for i in node_ids:
            o = rows.get(int(i))
            out.append(cls.from_model(o) if o is not None and can_read_order(viewer, o) else None)
        return out


@strawberry.type(description="What a guest holding the order number and e-mail may see.")
class TrackedOrder:
    number: str
    status: OrderStatus
    placed_at: datetime
    updated_at: datetime
    service_level: ServiceLevel
    email: str
    order_id: strawberry.Private[int]
    currency: strawberry.Private[str]

    @strawberry.field
    async def lines(self, info: Info) -> list[TrackedLine]:
        return [
            TrackedLine(sku=ln.sku, name=ln.name, quantity=ln.quantity, shipped_quantity=ln.shipped_quantity,
                        cancelled_quantity=ln.cancelled_quantity)
            for ln in await loader(info, "lines_by_order").load(self.order_id)
        ]

    @strawberry.field(description="The order's shipments: carrier, tracking number, status, ETA and timeline.")
    async def shipments(self, info: Info) -> list[TrackedShipment]:
        return await tracked_shipments(info, self.order_id)


@strawberry.type
class TrackedLine:
    sku: str
    name: str
    quantity: int
    shipped_quantity: int
    cancelled_quantity: int
