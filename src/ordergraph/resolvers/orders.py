"""Order queries and lifecycle mutations."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Annotated

import strawberry
from strawberry import relay
from strawberry.types import Info

from ordergraph.auth.permissions import can_write_order, order_scope
from ordergraph.auth.viewer import Viewer, ViewerKind, guest_viewer
from ordergraph.db import fetch, placeholders
from ordergraph.models import Allocation, Order, OrderHold, Warehouse
from ordergraph.models.enums import AllocationStatus
from ordergraph.resolvers.loaders import columns
from ordergraph.resolvers.mutation import run_mutation
from ordergraph.schema.common import Connection, paginate
from ordergraph.schema.enums import HoldReason, OrderStatus, ServiceLevel
from ordergraph.schema.errors import (
    IdempotencyKeyReusedError,
    InsufficientStockError,
    InvalidInputError,
    InvalidTransitionError,
    NotAuthorizedError,
    NotFoundError,
    OperationError,
    PaymentError,
)
from ordergraph.schema.orders import OrderType, TrackedOrder
from ordergraph.workflows import orders as wf
from ordergraph.workflows import payments as pay_wf
from ordergraph.workflows.commands import Address, LineCommand, PaymentCommand, PlaceOrderCommand
from ordergraph.workflows.errors import DomainError, ErrorCode


@strawberry.input
class AddressInput:
    name: str = ""
    company: str = ""
    line1: str = ""
    line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""
    phone: str = ""
    latitude: float | None = None
    longitude: float | None = None


@strawberry.input
class CustomerInput:
    email: str
    name: str = ""
    phone: str = ""


@strawberry.input
class OrderLineInput:
    sku: str
    quantity: int
    unit_price: Decimal | None = None
    external_line_id: str | None = None


@strawberry.input
class PaymentInput:
    method: str = "card"
    token: str = "tok_approve"
    gateway: str = "local"


@strawberry.input
class PlaceOrderInput:
    channel: str
    customer: CustomerInput
    shipping_address: AddressInput
    lines: list[OrderLineInput]
    billing_address: AddressInput | None = None
    external_id: str | None = None
    currency: str | None = None
    service_level: ServiceLevel = ServiceLevel.STANDARD
    notes: str = ""
    payment: PaymentInput | None = None
    reservation_token: str | None = None


@strawberry.input
class OrderFilter:
    status: list[OrderStatus] | None = None
    channel: str | None = None
    customer_email: str | None = None
    placed_from: datetime | None = None
    placed_to: datetime | None = None
    warehouse: str | None = None
    on_hold: bool | None = None
    number: str | None = None


@strawberry.enum
class OrderSort(Enum):
    PLACED_AT_DESC = "-placed_at"
    PLACED_AT_ASC = "placed_at"
    NUMBER_ASC = "number"
    NUMBER_DESC = "-number"
    TOTAL_DESC = "-total"
    TOTAL_ASC = "total"
    UPDATED_AT_DESC = "-updated_at"


@strawberry.type
class OrderPayload:
    order: OrderType


_ERRORS = (
    InvalidInputError | NotFoundError | NotAuthorizedError | InvalidTransitionError
    | IdempotencyKeyReusedError | OperationError
)
OrderResult = Annotated[
    OrderPayload | InsufficientStockError | PaymentError | _ERRORS, strawberry.union("OrderResult")
]


def _address(a: AddressInput | None) -> Address | None:
    return None if a is None else Address(**vars(a))


def _command(i: PlaceOrderInput) -> PlaceOrderCommand:
    return PlaceOrderCommand(
        channel_code=i.channel,
        customer_email=i.customer.email,
        customer_name=i.customer.name,
        customer_phone=i.customer.phone,
        lines=[LineCommand(ln.sku, ln.quantity, ln.unit_price, ln.external_line_id) for ln in i.lines],
        shipping_address=_address(i.shipping_address),
        billing_address=_address(i.billing_address),
        external_id=i.external_id,
        currency=i.currency,
        service_level=i.service_level,
        notes=i.notes,
        payment=PaymentCommand(**vars(i.payment)) if i.payment else None,
        reservation_token=i.reservation_token,
    )


async def writable_order(info: Info, order_id: relay.GlobalID) -> int:
    """The order's database id if the viewer may change it; otherwise exactly like a missing one."""
    missing = DomainError(ErrorCode.NOT_FOUND, f"no order with id {order_id}", ["id"])
    if order_id.type_name != "Order" or not order_id.node_id.isdigit():
        raise missing
    order = await Order.get_or_none(id=int(order_id.node_id))
    if order is None or not can_write_order(info.context.viewer, order):
        raise missing
    return order.id


async def _order_payload(order: Order) -> OrderPayload:
    await order.refresh_from_db()
    return OrderPayload(order=OrderType.from_model(order))


def _placed_order_payload(order: Order) -> OrderPayload:
    """placeOrder's order is the one its workflow wrote and committed: no need to read it again.
    (A replayed idempotent call gets the order read afresh by the idempotency layer.)"""
    return OrderPayload(order=OrderType.from_model(order))


async def _filtered(info: Info, f: OrderFilter | None):
    qs = Order.filter(order_scope(info.context.viewer))
    if f is None:
        return qs
    if f.status:
        qs = qs.filter(status__in=[s.value for s in f.status])
    if f.channel:
        qs = qs.filter(channel__code=f.channel)
    if f.customer_email:
        qs = qs.filter(customer_email=f.customer_email.strip().lower())
    if f.placed_from:
        qs = qs.filter(placed_at__gte=f.placed_from)
    if f.placed_to:
        qs = qs.filter(placed_at__lt=f.placed_to)
    if f.number:
        qs = qs.filter(number=f.number)
    if f.warehouse:
        wh = await Warehouse.get_or_none(code=f.warehouse)
        ids = await Allocation.filter(warehouse_id=wh.id if wh else -1, status=AllocationStatus.ACTIVE).values_list("order_id", flat=True)
        qs = qs.filter(id__in=list(set(ids)))
    if f.on_hold is not None:
        held = await OrderHold.filter(released_at__isnull=True).values_list("order_id", flat=True)
        qs = qs.filter(id__in=list(set(held))) if f.on_hold else qs.exclude(id__in=list(set(held)))
    return qs


def may_read_order(viewer: Viewer, channel_id: int, customer_email: str) -> bool:
    """`order_scope(viewer)` for one order row, in Python: the same answer, no ORM query.
    (Guests read orders through `trackOrder` only, as `order_scope` says.)"""
    if viewer.kind is ViewerKind.STAFF:
        return viewer.has_scope("orders:read")
    if viewer.kind is ViewerKind.PARTNER:
        return viewer.has_scope("orders:read") and channel_id in viewer.channel_ids
    if viewer.kind is ViewerKind.CUSTOMER:
        return bool(viewer.email) and customer_email == viewer.email
    return False


@cache
def _order_sql(by: str) -> str:
    return (f"SELECT {columns(Order, 'o')}, c.code AS channel_code FROM orders o "
            f"JOIN sales_channels c ON c.id = o.channel_id WHERE o.{by} = {placeholders(1)[0]}")


async def order_row(by: str, value) -> Order | None:
    """The order with its channel code (`by` is "id" or "number"), in one plain statement."""
    rows = await fetch(_order_sql(by), [value])
    if not rows:
        return None
    o = Order._init_from_db(**rows[0])
    o.channel_code = rows[0]["channel_code"]
    return o


@strawberry.type
class OrderQuery:
    @strawberry.field(description="One order by global id or by number; null when missing or not yours.")
    async def order(self, info: Info, id: relay.GlobalID | None = None, number: str | None = None) -> OrderType | None:
        if id is not None:
            if id.type_name != "Order" or not id.node_id.isdigit():
                return None
            o = await order_row("id", int(id.node_id))
        elif number is not None:
            o = await order_row("number", number)
        else:
            return None
        if o is None or not may_read_order(info.context.viewer, o.channel_id, o.customer_email):
            return None
        return OrderType.from_model(o)

    @strawberry.field
    async def orders(
        self, info: Info, filter: OrderFilter | None = None, sort: OrderSort | None = OrderSort.PLACED_AT_DESC,
        first: int | None = None, after: str | None = None,
    ) -> Connection[OrderType]:
        sort = sort or OrderSort.PLACED_AT_DESC
        qs = (await _filtered(info, filter)).order_by(sort.value, "-id")

        async def nodes(rows):
            return [OrderType.from_model(o) for o in rows]

        return await paginate(info, qs, first, after, nodes)

    @strawberry.field(description="A guest's view of one order: number and the e-mail it was placed with.")
    async def track_order(self, info: Info, number: str, email: str) -> TrackedOrder | None:
        guest = guest_viewer(email.strip())
        o = await order_row("number", number.strip())
        if o is None or o.customer_email != guest.email:
            return None
        return TrackedOrder(number=o.number, status=o.status, placed_at=o.placed_at, updated_at=o.updated_at,
                            service_level=o.service_level, email=o.customer_email, order_id=o.id, currency=o.currency)


@strawberry.type
class OrderMutation:
    @strawberry.mutation
    async def place_order(self, info: Info, input: PlaceOrderInput, idempotency_key: str | None = None) -> OrderResult:
        viewer = info.context.viewer

        async def action():
            if not viewer.has_scope("orders:write") or not (viewer.is_staff or viewer.is_partner):
                raise DomainError(ErrorCode.FORBIDDEN, "placeOrder needs a staff or partner key with orders:write")
            allowed = viewer.channel_ids if viewer.is_partner else None
            return await wf.place_order(_command(input), viewer.actor, allowed)

        return await run_mutation(info, "placeOrder", idempotency_key, {"input": input}, action, _placed_order_payload)

    @strawberry.mutation
    async def cancel_order(self, info: Info, id: relay.GlobalID, reason: str, idempotency_key: str | None = None) -> OrderResult:
        async def action():
            return await wf.cancel_order(await writable_order(info, id), reason, info.context.viewer.actor)

        return await run_mutation(info, "cancelOrder", idempotency_key, {"id": str(id), "reason": reason}, action, _order_payload)

    @strawberry.mutation
    async def place_hold(self, info: Info, id: relay.GlobalID, reason: HoldReason, note: str = "", idempotency_key: str | None = None) -> OrderResult:
        async def action():
            return await wf.place_hold(await writable_order(info, id), reason, note, info.context.viewer.actor)

        return await run_mutation(info, "placeHold", idempotency_key, {"id": str(id), "reason": reason, "note": note}, action, _order_payload)

    @strawberry.mutation
    async def release_hold(self, info: Info, id: relay.GlobalID, reason: HoldReason, note: str = "", idempotency_key: str | None = None) -> OrderResult:
        async def action():
            return await wf.release_hold(await writable_order(info, id), reason, note, info.context.viewer.actor)

        return await run_mutation(info, "releaseHold", idempotency_key, {"id": str(id), "reason": reason, "note": note}, action, _order_payload)

    @strawberry.mutation
    async def allocate_order(self, info: Info, id: relay.GlobalID, idempotency_key: str | None = None) -> OrderResult:
        from ordergraph.workflows.allocation import allocate_order  # noqa: PLC0415

        async def action():
            return await allocate_order(await writable_order(info, id), info.context.viewer.actor)

        return await run_mutation(info, "allocateOrder", idempotency_key, {"id": str(id)}, action, _order_payload)

    @strawberry.mutation
    async def retry_payment(self, info: Info, id: relay.GlobalID, payment: PaymentInput, idempotency_key: str | None = None) -> OrderResult:
        async def action():
            return await wf.retry_payment(await writable_order(info, id), PaymentCommand(**vars(payment)), info.context.viewer.actor)

        return await run_mutation(info, "retryPayment", idempotency_key, {"id": str(id), "payment": payment}, action, _order_payload)

    @strawberry.mutation(description="Capture (part of) the order's authorized payment; staff with payments:write.")
    async def capture_payment(self, info: Info, id: relay.GlobalID, amount: Decimal | None = None, idempotency_key: str | None = None) -> OrderResult:
        async def action():
            order_id = await writable_order(info, id)
            payment = await pay_wf.primary_payment(order_id)
            if payment is None:
                raise DomainError(ErrorCode.NOT_FOUND, "the order has no payment to capture", ["id"])
            await pay_wf.capture(payment.id, amount, info.context.viewer.actor)
            return await Order.get(id=order_id)

        return await run_mutation(info, "capturePayment", idempotency_key, {"id": str(id), "amount": amount}, action, _order_payload, scope="payments:write")

    @strawberry.mutation(description="Refund (part of) what was captured; never more than captured.")
    async def refund_payment(self, info: Info, id: relay.GlobalID, amount: Decimal | None = None, reason: str = "", idempotency_key: str | None = None) -> OrderResult:
        async def action():
            order_id = await writable_order(info, id)
            payment = await pay_wf.primary_payment(order_id)
            if payment is None:
                raise DomainError(ErrorCode.NOT_FOUND, "the order has no payment to refund", ["id"])
            await pay_wf.refund(payment.id, amount, info.context.viewer.actor, reason)
            return await Order.get(id=order_id)

        return await run_mutation(info, "refundPayment", idempotency_key, {"id": str(id), "amount": amount, "reason": reason}, action, _order_payload, scope="payments:write")
