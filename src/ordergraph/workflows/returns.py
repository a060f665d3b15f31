"""Returns (RMAs): request with eligibility checks, approval (automatic by channel rule, or by
staff), return label, receipt, per-unit inspection with restocking, and the computed refund.

Eligibility, each problem a typed error reported together, nothing written on refusal: only
delivered units; never more than delivered minus already returned (open returns count); within
the channel's window from delivery; only returnable variants; never on a cancelled order. The
order row is locked while this is checked and the return written, so two concurrent requests
for the last returnable unit make one return.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from ordergraph.db import transaction
from ordergraph.models import (
    FulfillmentOrder,
    Order,
    OrderLine,
    PackageItem,
    ProductVariant,
    ReturnAuthorization,
    ReturnInspection,
    ReturnLine,
    SalesChannel,
    Shipment,
    Warehouse,
)
from ordergraph.models.enums import (
    Disposition,
    ItemCondition,
    MovementKind,
    OrderStatus,
    ReturnReason,
    ReturnStatus as R,
    ShipmentDirection,
    ShipmentStatus,
    TrackingSource,
    TrackingStatus,
)
from ordergraph.workflows.errors import DomainError, ErrorCode, Problems
from ordergraph.workflows.events import order_part_event
from ordergraph.workflows.lifecycle import StateMachine
from ordergraph.workflows.order_lifecycle import choose

OPEN_BEFORE_RECEIPT = (R.REQUESTED, R.APPROVED, R.LABEL_ISSUED, R.IN_TRANSIT)
CLOSED_STATES = (R.DECLINED, R.CANCELLED)  # returns that no longer hold units back
MERCHANT_FAULT = {ReturnReason.DAMAGED, ReturnReason.DEFECTIVE, ReturnReason.WRONG_ITEM,
                  ReturnReason.NOT_AS_DESCRIBED, ReturnReason.ARRIVED_LATE}
REFUNDABLE = {ItemCondition.RESELLABLE, ItemCondition.DAMAGED, ItemCondition.DEFECTIVE}
AUTO_APPROVER = "system:auto-approval"


def _internal(rma) -> str | None:
    return None if getattr(rma, "offering", True) is False else "happens when the carrier scans the parcel"


RETURN = StateMachine(
    "return",
    {
        (R.REQUESTED, "APPROVE"): R.APPROVED,
        (R.REQUESTED, "DECLINE"): R.DECLINED,
        (R.APPROVED, "ISSUE_LABEL"): R.LABEL_ISSUED,
        (R.LABEL_ISSUED, "PICKED_UP"): R.IN_TRANSIT,
        **{(s, "RECEIVE"): R.RECEIVED for s in (R.APPROVED, R.LABEL_ISSUED, R.IN_TRANSIT, R.RECEIVED)},
        (R.RECEIVED, "INSPECT"): f"{R.RECEIVED}|{R.INSPECTED}",
        (R.INSPECTED, "REFUND"): R.REFUNDED,
        (R.INSPECTED, "EXCHANGE"): R.EXCHANGED,
        (R.INSPECTED, "CLOSE"): R.CLOSED,
        **{(s, "CANCEL"): R.CANCELLED for s in OPEN_BEFORE_RECEIPT},
    },
    guards={"PICKED_UP": _internal},
)


class _Internal:
    offering = False


INTERNAL = _Internal()


def _now() -> datetime:
    return datetime.now(UTC)


async def return_event(rma: ReturnAuthorization, order: Order, type_: str, actor: str, *, new: bool = False, **data):
    return await order_part_event("Return", rma.id, order, type_, actor, {"return": rma.number, **data}, new=new,
                                  routing={"return": {"id": rma.id, "number": rma.number, "status": str(rma.status)}})


@dataclass
class ReturnLineRequest:
    order_line_id: int
    quantity: int
    reason: ReturnReason
    note: str = ""


@dataclass
class LineEligibility:
    line: OrderLine
    delivered: int
    delivered_at: datetime | None
    returned: int  # in returns still open or done (not declined or cancelled)

    @property
    def returnable(self) -> int:
        return max(0, self.delivered - self.returned)


async def eligibility(order: Order) -> dict[int, LineEligibility]:
    """Per order line: units delivered (in delivered outbound shipments), when, and units
    already asked back."""
    lines = {ln.id: ln for ln in await OrderLine.filter(order_id=order.id)}
    delivered: dict[int, int] = defaultdict(int)
    when: dict[int, datetime] = {}
    shipments = await Shipment.filter(order_id=order.id, direction=ShipmentDirection.OUTBOUND,
                                      status=ShipmentStatus.DELIVERED)
    for s in shipments:
        for item in await PackageItem.filter(package_id=s.package_id).prefetch_related("fulfillment_line"):
            line_id = item.fulfillment_line.order_line_id
            delivered[line_id] += item.quantity
            at = s.delivered_at or s.last_scan_at
            if at is not None and (line_id not in when or at > when[line_id]):
                when[line_id] = at
    returned: dict[int, int] = defaultdict(int)
    for rl in await ReturnLine.filter(rma__order_id=order.id).exclude(rma__status__in=list(CLOSED_STATES)):
        returned[rl.order_line_id] += rl.quantity
    return {lid: LineEligibility(ln, delivered[lid], when.get(lid), returned[lid]) for lid, ln in lines.items()}


async def _return_warehouse(order: Order) -> int:
    """Where returns go: the warehouse that shipped the order's first shipment, else the
    channel's first warehouse."""
    first = await Shipment.filter(order_id=order.id, direction=ShipmentDirection.OUTBOUND).order_by("id").first()
    if first is not None and first.fulfillment_order_id:
        return (await FulfillmentOrder.get(id=first.fulfillment_order_id)).warehouse_id
    wh = await Warehouse.filter(channel_links__channel_id=order.channel_id).order_by("priority", "id").first()
    if wh is None:
        raise DomainError(ErrorCode.NOT_FOUND, "the order's channel has no warehouse to return to")
    return wh.id


async def request_return(order_id: int, lines: list[ReturnLineRequest], actor: str, requester_kind: str,
                         note: str = "") -> ReturnAuthorization:
    problems = Problems()
    if not lines:
        problems.add(ErrorCode.REQUIRED, "at least one line", "lines")
    seen: set[int] = set()
    for i, rl in enumerate(lines):
        if rl.quantity < 1:
            problems.add(ErrorCode.INVALID_VALUE, "quantity must be at least 1", "lines", i, "quantity")
        if rl.order_line_id in seen:
            problems.add(ErrorCode.DUPLICATE_LINE, "this order line is already in the request", "lines", i, "orderLineId")
        seen.add(rl.order_line_id)
        if len(rl.note) > 1000:
            problems.add(ErrorCode.INVALID_VALUE, "note is at most 1000 characters", "lines", i, "note")
    problems.raise_if_any()
    async with transaction():
        order = await Order.select_for_update().get_or_none(id=order_id)
        if order is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such order", ["orderId"])
        if order.status is OrderStatus.CANCELLED:
            raise DomainError(ErrorCode.ORDER_CANCELLED, f"order {order.number} was cancelled", ["orderId"])
        channel = await SalesChannel.get(id=order.channel_id)
        facts = await eligibility(order)
        variants = {v.id: v for v in await ProductVariant.filter(id__in=[f.line.variant_id for f in facts.values()])}
        now = _now()
        for i, rl in enumerate(lines):
            fact = facts.get(rl.order_line_id)
            if fact is None:
                problems.add(ErrorCode.NOT_FOUND, "no such line on this order", "lines", i, "orderLineId")
                continue
            if not variants[fact.line.variant_id].returnable:
                problems.add(ErrorCode.NOT_RETURNABLE, f"{fact.line.sku} cannot be returned", "lines", i, "orderLineId")
                continue
            if fact.delivered == 0:
                problems.add(ErrorCode.NOT_DELIVERED, f"no unit of {fact.line.sku} was delivered yet", "lines", i,
                             "orderLineId")
                continue
            if fact.delivered_at and now > fact.delivered_at + timedelta(days=channel.return_window_days):
                problems.add(ErrorCode.RETURN_WINDOW_EXPIRED,
                             f"{fact.line.sku} was delivered more than {channel.return_window_days} days ago",
                             "lines", i, "orderLineId", delivered_at=fact.delivered_at.isoformat())
                continue
            if rl.quantity > fact.returnable:
                problems.add(ErrorCode.RETURN_QUANTITY_EXCEEDED,
                             f"only {fact.returnable} unit(s) of {fact.line.sku} can still be returned",
                             "lines", i, "quantity", returnable=fact.returnable)
        problems.raise_if_any()
        rma = await ReturnAuthorization.create(
            number=f"RMA-T{uuid.uuid4().hex[:24]}", order_id=order.id, channel_id=order.channel_id, requested_by=actor,
            requester_kind=requester_kind, note=note, warehouse_id=await _return_warehouse(order), currency=order.currency,
        )
        rma.number = f"RMA-{rma.id:06d}"
        await rma.save(update_fields=["number"])
        await ReturnLine.bulk_create([
            ReturnLine(rma_id=rma.id, order_line_id=rl.order_line_id, variant_id=facts[rl.order_line_id].line.variant_id,
                       sku=facts[rl.order_line_id].line.sku, quantity=rl.quantity, reason=rl.reason, note=rl.note,
                       unit_price=facts[rl.order_line_id].line.unit_price)
            for rl in lines
        ])
        value = sum((facts[rl.order_line_id].line.unit_price * rl.quantity for rl in lines), Decimal(0))
        await return_event(rma, order, "RETURN_REQUESTED", actor, new=True, value=value,
                           lines=[{"sku": facts[rl.order_line_id].line.sku, "quantity": rl.quantity, "reason": rl.reason}
                                  for rl in lines])
        rule = set(channel.auto_approve_reasons or [])
        if rule and all(str(rl.reason) in rule for rl in lines) and value <= channel.auto_approve_max_value:
            await _approve(rma, order, AUTO_APPROVER, auto=True,
                           rule={"reasons": sorted(rule), "max_value": channel.auto_approve_max_value})
    return rma


async def _approve(rma: ReturnAuthorization, order: Order, actor: str, *, auto: bool = False, **data) -> None:
    rma.status = RETURN.target(rma, "APPROVE")
    rma.approved_at = _now()
    rma.auto_approved = auto
    await rma.save(update_fields=["status", "approved_at", "auto_approved", "updated_at"])
    await return_event(rma, order, "RETURN_APPROVED", actor, automatic=auto, **data)


async def _locked(rma_id: int) -> tuple[ReturnAuthorization, Order]:
    rma = await ReturnAuthorization.get_or_none(id=rma_id)
    if rma is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such return", ["id"])
    order = await Order.select_for_update().get(id=rma.order_id)
    rma = await ReturnAuthorization.select_for_update().get(id=rma_id)
    return rma, order


async def approve_return(rma_id: int, actor: str) -> ReturnAuthorization:
    async with transaction():
        rma, order = await _locked(rma_id)
        await _approve(rma, order, actor)
    return rma


async def decline_return(rma_id: int, reason: str, actor: str) -> ReturnAuthorization:
    if not reason.strip():
        raise DomainError(ErrorCode.REQUIRED, "a reason the requester can read", ["reason"])
    async with transaction():
        rma, order = await _locked(rma_id)
        rma.status = RETURN.target(rma, "DECLINE")
        rma.decline_reason = reason.strip()[:500]
        rma.closed_at = _now()
        await rma.save(update_fields=["status", "decline_reason", "closed_at", "updated_at"])
        await return_event(rma, order, "RETURN_DECLINED", actor, reason=rma.decline_reason)
    return rma


async def cancel_return(rma_id: int, actor: str) -> ReturnAuthorization:
    """By the requester (or staff), before the parcel arrives; a label bought is voided."""
    from ordergraph.workflows.shipping import void_label  # noqa: PLC0415

    rma = await ReturnAuthorization.get_or_none(id=rma_id)
    if rma is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such return", ["id"])
    RETURN.target(rma, "CANCEL")
    label = await Shipment.filter(return_id=rma.id, status=ShipmentStatus.LABEL_CREATED).first()
    if label is not None:
        await void_label(label.id, actor)
    async with transaction():
        rma, order = await _locked(rma_id)
        rma.status = RETURN.target(rma, "CANCEL")
        rma.cancelled_at = _now()
        await rma.save(update_fields=["status", "cancelled_at", "updated_at"])
        await return_event(rma, order, "RETURN_CANCELLED", actor)
    return rma


async def issue_label(rma_id: int, actor: str, *, carrier: str | None = None) -> Shipment:
    """The customer's prepaid label back to the return warehouse: the cheapest quote (of the
    given carrier, if any)."""
    from ordergraph.integrations.carriers import CarrierError, Parcel, available_carriers, get_carrier, with_retries  # noqa: PLC0415
    from ordergraph.workflows.shipping import _address, carrier_failure, shipment_event  # noqa: PLC0415

    rma = await ReturnAuthorization.get_or_none(id=rma_id)
    if rma is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such return", ["id"])
    RETURN.target(rma, "ISSUE_LABEL")
    order = await Order.get(id=rma.order_id)
    wh = await Warehouse.get(id=rma.warehouse_id)
    ship_from, ship_to = _address(order.shipping_address, order.customer_name), _address(wh.address, wh.name)
    lines = await ReturnLine.filter(rma_id=rma.id)
    weights = {v.id: v.weight_grams for v in await ProductVariant.filter(id__in=[rl.variant_id for rl in lines])}
    grams = max(100, sum(weights.get(rl.variant_id, 0) * rl.quantity for rl in lines) + 150)
    parcels = [Parcel(weight_grams=grams, length_cm=30, width_cm=20, height_cm=15)]
    try:
        carriers = [get_carrier(carrier)] if carrier else available_carriers()
    except CarrierError as exc:
        raise carrier_failure(exc) from None
    quotes = []
    for c in carriers:
        try:
            quotes.extend(await with_retries(lambda c=c: c.rates(ship_from, ship_to, parcels, order.currency)))
        except CarrierError:
            continue
    if not quotes:
        raise DomainError(ErrorCode.NO_RATES, "no carrier can carry this return", ["carrier"])
    best = min(quotes, key=lambda q: (q.amount, q.transit_days, q.carrier))
    voided = await Shipment.filter(return_id=rma.id, status=ShipmentStatus.VOIDED).count()
    try:
        label = await with_retries(lambda: get_carrier(best.carrier).buy_label(
            ship_from, ship_to, parcels, best.service, rma.number, f"return-label-{rma.number}-{voided}"))
    except CarrierError as exc:
        raise carrier_failure(exc) from None
    async with transaction():
        rma, order = await _locked(rma_id)
        existing = await Shipment.filter(tracking_number=label.tracking_number).first()
        if existing is not None:
            return existing  # a concurrent call recorded the same label
        rma.status = RETURN.target(rma, "ISSUE_LABEL")
        await rma.save(update_fields=["status", "updated_at"])
        shipment = await Shipment.create(
            order_id=order.id, direction=ShipmentDirection.RETURN, return_id=rma.id, carrier=label.carrier,
            service=label.service, service_level=str(label.service_level), tracking_number=label.tracking_number,
            label_amount=label.amount, currency=label.currency, label_format=label.format, label_document=label.document,
            estimated_delivery=label.estimated_delivery, created_by=actor,
        )
        from ordergraph.models import TrackingEvent  # noqa: PLC0415

        await TrackingEvent.create(
            shipment_id=shipment.id, carrier=label.carrier, carrier_event_id=f"label-{label.tracking_number}",
            status=TrackingStatus.LABEL_CREATED, occurred_at=label.created_at, description="return label created",
            estimated_delivery=label.estimated_delivery, source=TrackingSource.CARRIER, actor=actor,
        )
        await shipment_event(shipment, order, "LABEL_CREATED", actor, new=True, direction="RETURN", **{"return": rma.number})
        await return_event(rma, order, "RETURN_LABEL_ISSUED", actor, carrier=label.carrier,
                           tracking_number=label.tracking_number, amount=label.amount)
    return shipment


async def on_return_scan(shipment: Shipment, status: TrackingStatus, actor: str) -> None:
    """A carrier scan of a return's parcel (inside the tracking transaction, order locked):
    picked up → IN_TRANSIT; delivered to the warehouse → RECEIVED (units are counted by
    `receive_return`)."""
    rma = await ReturnAuthorization.select_for_update().get(id=shipment.return_id)
    order = await Order.get(id=rma.order_id)
    if status in (TrackingStatus.PICKED_UP, TrackingStatus.IN_TRANSIT) and rma.status is R.LABEL_ISSUED:
        rma.status = RETURN.target(rma, "PICKED_UP", INTERNAL)
        await rma.save(update_fields=["status", "updated_at"])
        await return_event(rma, order, "RETURN_IN_TRANSIT", actor, tracking_number=shipment.tracking_number)
    elif status is TrackingStatus.DELIVERED and rma.status in (R.LABEL_ISSUED, R.IN_TRANSIT):
        rma.status = RETURN.target(rma, "RECEIVE")
        rma.received_at = _now()
        await rma.save(update_fields=["status", "received_at", "updated_at"])
        await return_event(rma, order, "RETURN_ARRIVED", actor, tracking_number=shipment.tracking_number)
        await _overdue_resolved(rma, actor)


async def receive_return(rma_id: int, received: list[tuple[int, int]], actor: str) -> ReturnAuthorization:
    """Units counted at the dock, per return line; partial receipts add up."""
    async with transaction():
        rma, order = await _locked(rma_id)
        RETURN.target(rma, "RECEIVE")
        lines = {rl.id: rl for rl in await ReturnLine.filter(rma_id=rma.id)}
        problems = Problems()
        for i, (line_id, qty) in enumerate(received):
            rl = lines.get(line_id)
            if rl is None:
                problems.add(ErrorCode.NOT_FOUND, "no such line on this return", "lines", i, "returnLineId")
            elif qty < 1:
                problems.add(ErrorCode.INVALID_VALUE, "quantity must be at least 1", "lines", i, "quantity")
            elif rl.received_quantity + qty > rl.quantity:
                problems.add(ErrorCode.RECEIPT_EXCEEDS_EXPECTED,
                             f"only {rl.quantity - rl.received_quantity} more unit(s) of {rl.sku} are expected",
                             "lines", i, "quantity", expected=rl.quantity - rl.received_quantity)
            else:
                rl.received_quantity += qty
        if not received:
            problems.add(ErrorCode.REQUIRED, "at least one line", "lines")
        problems.raise_if_any()
        for rl in lines.values():
            await rl.save(update_fields=["received_quantity"])
        if rma.status is not R.RECEIVED:
            rma.status = RETURN.target(rma, "RECEIVE")
            rma.received_at = rma.received_at or _now()
            await rma.save(update_fields=["status", "received_at", "updated_at"])
            await _overdue_resolved(rma, actor)
        await return_event(rma, order, "RETURN_RECEIVED", actor,
                           lines=[{"sku": lines[lid].sku, "quantity": q} for lid, q in received])
    return rma


async def _overdue_resolved(rma: ReturnAuthorization, actor: str) -> None:
    from ordergraph.models.enums import ExceptionKind  # noqa: PLC0415
    from ordergraph.workflows.exceptions import resolve_cause  # noqa: PLC0415

    await resolve_cause(ExceptionKind.RETURN_OVERDUE, actor, "RECEIVED", "the parcel arrived", return_id=rma.id)


@dataclass
class InspectionSpec:
    return_line_id: int
    quantity: int
    condition: ItemCondition
    disposition: Disposition
    warehouse_code: str | None = None
    note: str = ""


async def inspect_return(rma_id: int, items: list[InspectionSpec], actor: str, *, complete: bool = False) -> ReturnAuthorization:
    """Record what the received units are and where they go. RESTOCK (resellable units only)
    puts them on hand in the chosen warehouse (RETURN movements) and may allocate waiting
    backorders. The return is INSPECTED when every expected unit is inspected, or when
    `complete` says the rest will not come."""
    from ordergraph.workflows.backorders import on_stock_increased  # noqa: PLC0415
    from ordergraph.workflows.stock import Change, level_for, move_many  # noqa: PLC0415

    restocked: set[int] = set()
    async with transaction():
        rma, order = await _locked(rma_id)
        target = RETURN.target(rma, "INSPECT")
        lines = {rl.id: rl for rl in await ReturnLine.filter(rma_id=rma.id)}
        codes = {s.warehouse_code for s in items if s.warehouse_code}
        warehouses = {w.code: w for w in await Warehouse.filter(code__in=list(codes))}
        problems = Problems()
        pending: dict[int, int] = defaultdict(int)
        for i, s in enumerate(items):
            rl = lines.get(s.return_line_id)
            if rl is None:
                problems.add(ErrorCode.NOT_FOUND, "no such line on this return", "items", i, "returnLineId")
                continue
            if s.quantity < 1:
                problems.add(ErrorCode.INVALID_VALUE, "quantity must be at least 1", "items", i, "quantity")
                continue
            pending[rl.id] += s.quantity
            if rl.inspected_quantity + pending[rl.id] > rl.received_quantity:
                problems.add(ErrorCode.INSPECTION_EXCEEDS_RECEIVED,
                             f"only {rl.received_quantity - rl.inspected_quantity} received unit(s) of {rl.sku} "
                             "are not inspected yet", "items", i, "quantity")
            if s.disposition is Disposition.RESTOCK and s.condition is not ItemCondition.RESELLABLE:
                problems.add(ErrorCode.DISPOSITION_NOT_ALLOWED, "only resellable units go back to stock", "items", i,
                             "disposition")
            if s.warehouse_code and s.warehouse_code not in warehouses:
                problems.add(ErrorCode.NOT_FOUND, f"no warehouse {s.warehouse_code!r}", "items", i, "warehouseCode")
        if not items:
            problems.add(ErrorCode.REQUIRED, "at least one item", "items")
        problems.raise_if_any()
        changes = []
        for s in items:
            rl = lines[s.return_line_id]
            wh_id = warehouses[s.warehouse_code].id if s.warehouse_code else rma.warehouse_id
            await ReturnInspection.create(line_id=rl.id, quantity=s.quantity, condition=s.condition,
                                          disposition=s.disposition, note=s.note[:1000], actor=actor,
                                          warehouse_id=wh_id if s.disposition is Disposition.RESTOCK else None)
            rl.inspected_quantity += s.quantity
            if s.disposition is Disposition.RESTOCK:
                level = await level_for(wh_id, rl.variant_id, create=True)
                changes.append(Change(level.id, MovementKind.RETURN, d_on_hand=s.quantity, reason=f"return {rma.number}",
                                      reference=rma.number, order_id=order.id))
                restocked.add(rl.variant_id)
        if changes:
            from ordergraph.models import InventoryLevel  # noqa: PLC0415

            await InventoryLevel.filter(id__in=[c.level_id for c in changes]).order_by("id").select_for_update()
            await move_many(sorted(changes, key=lambda c: c.level_id), actor=actor)
        for rl in lines.values():
            await rl.save(update_fields=["inspected_quantity"])
        await return_event(rma, order, "RETURN_INSPECTED", actor, items=[
            {"sku": lines[s.return_line_id].sku, "quantity": s.quantity, "condition": s.condition,
             "disposition": s.disposition} for s in items])
        done = all(rl.inspected_quantity == rl.quantity for rl in lines.values()) or (
            complete and all(rl.inspected_quantity == rl.received_quantity for rl in lines.values()))
        if done:
            rma.status = choose(target, R.INSPECTED)
            rma.inspected_at = _now()
            await rma.save(update_fields=["status", "inspected_at", "updated_at"])
    for variant_id in restocked:
        await on_stock_increased(variant_id, actor)
    return rma


@dataclass
class RefundQuote:
    lines: list[tuple[ReturnLine, int, Decimal]] = field(default_factory=list)  # line, units refunded, amount
    merchandise: Decimal = Decimal("0.00")
    restocking_fee: Decimal = Decimal("0.00")
    return_shipping_fee: Decimal = Decimal("0.00")
    refundable_left: Decimal = Decimal("0.00")  # captured minus refunded on the order's payment
    total: Decimal = Decimal("0.00")


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), ROUND_HALF_UP)


async def refund_quote(rma: ReturnAuthorization) -> RefundQuote:
    """What the return pays back: each refundable unit (inspected resellable, damaged or
    defective) at its price with its share of the order's adjustments (total / subtotal);
    minus a restocking fee and return shipping when the reason is the customer's (size, changed
    mind, other); never more than what was captured and not yet refunded."""
    from ordergraph.workflows.payments import primary_payment  # noqa: PLC0415

    order = await Order.get(id=rma.order_id)
    channel = await SalesChannel.get(id=rma.channel_id)
    factor = (order.total / order.subtotal) if order.subtotal else Decimal(1)
    quote = RefundQuote()
    customer_fault = Decimal(0)
    for rl in await ReturnLine.filter(rma_id=rma.id).order_by("id"):
        units = sum(i.quantity for i in await ReturnInspection.filter(line_id=rl.id) if i.condition in REFUNDABLE)
        amount = _cents(rl.unit_price * units * factor)
        quote.lines.append((rl, units, amount))
        quote.merchandise += amount
        if rl.reason not in MERCHANT_FAULT:
            customer_fault += amount
    if customer_fault > 0:
        quote.restocking_fee = _cents(customer_fault * channel.restocking_fee_percent / 100)
        quote.return_shipping_fee = min(channel.return_shipping_fee, customer_fault - quote.restocking_fee)
    payment = await primary_payment(order.id)
    quote.refundable_left = (payment.captured_amount - payment.refunded_amount) if payment else Decimal("0.00")
    quote.total = max(Decimal("0.00"), min(quote.merchandise - quote.restocking_fee - quote.return_shipping_fee,
                                           quote.refundable_left))
    return quote


async def _close(rma: ReturnAuthorization, order: Order, action: str, actor: str, **data) -> None:
    rma.status = RETURN.target(rma, action)
    rma.closed_at = _now()
    rma.processing_seconds = int((rma.closed_at - rma.requested_at).total_seconds())
    await rma.save(update_fields=["status", "closed_at", "processing_seconds", "refund_amount", "restocking_fee",
                                  "return_shipping_fee", "refund_error", "exchange_order_id", "updated_at"])
    await return_event(rma, order, f"RETURN_{rma.status}", actor, processing_seconds=rma.processing_seconds, **data)


async def refund_return(rma_id: int, actor: str) -> ReturnAuthorization:
    """Pay back what `refund_quote` computes through the payment integration (a partial
    refund of the order's payment); a refused refund leaves the return INSPECTED with its error."""
    from ordergraph.workflows import payments  # noqa: PLC0415

    rma = await ReturnAuthorization.get_or_none(id=rma_id)
    if rma is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such return", ["id"])
    RETURN.target(rma, "REFUND")
    quote = await refund_quote(rma)
    if quote.total <= 0:
        raise DomainError(ErrorCode.NOTHING_TO_REFUND, "nothing refundable: close the return instead", ["id"],
                          {"merchandise": str(quote.merchandise), "refundable_left": str(quote.refundable_left)})
    payment = await payments.primary_payment(rma.order_id)
    try:
        await payments.refund(payment.id, quote.total, actor, reason=f"return {rma.number}")
    except DomainError as exc:
        async with transaction():
            rma, order = await _locked(rma_id)
            rma.refund_error = f"{exc.code}: {exc.message}"[:500]
            await rma.save(update_fields=["refund_error", "updated_at"])
            await return_event(rma, order, "RETURN_REFUND_FAILED", actor, code=exc.code, amount=quote.total)
        raise
    async with transaction():
        rma, order = await _locked(rma_id)
        rma.refund_amount, rma.restocking_fee = quote.total, quote.restocking_fee
        rma.return_shipping_fee, rma.refund_error = quote.return_shipping_fee, ""
        for rl, units, _ in quote.lines:
            await ReturnLine.filter(id=rl.id).update(refunded_quantity=units)
        await _close(rma, order, "REFUND", actor, amount=quote.total, restocking_fee=quote.restocking_fee,
                     return_shipping_fee=quote.return_shipping_fee)
    return rma


async def close_return(rma_id: int, reason: str, actor: str) -> ReturnAuthorization:
    """Close an inspected return with no refund (for example: nothing refundable arrived)."""
    async with transaction():
        rma, order = await _locked(rma_id)
        await _close(rma, order, "CLOSE", actor, reason=reason)
    return rma


async def exchange_return(rma_id: int, lines: list[tuple[str, int]], actor: str, *, payment=None) -> ReturnAuthorization:
    """An inspected return becomes a linked replacement order (allocated like any order). The
    returned units' refund value (`refund_quote`) pays for it: the replacement carries no charge
    of its own; a difference in the customer's favour is refunded to the original payment; one in
    ours is authorized on `payment` (a PaymentCommand), required then."""
    from ordergraph.models import ProductVariant  # noqa: PLC0415
    from ordergraph.workflows import payments  # noqa: PLC0415
    from ordergraph.workflows.commands import Address, LineCommand, PlaceOrderCommand  # noqa: PLC0415
    from ordergraph.workflows.orders import cancel_order, place_order  # noqa: PLC0415

    rma = await ReturnAuthorization.get_or_none(id=rma_id)
    if rma is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such return", ["id"])
    RETURN.target(rma, "EXCHANGE")
    if not lines:
        raise DomainError(ErrorCode.REQUIRED, "what to send instead", ["lines"])
    order = await Order.get(id=rma.order_id)
    channel = await SalesChannel.get(id=order.channel_id)
    credit = (await refund_quote(rma)).total
    originals = {rl.sku: rl.unit_price for rl in await ReturnLine.filter(rma_id=rma.id)}
    variants = {v.sku: v for v in await ProductVariant.filter(sku__in=[s for s, _ in lines])}
    price = {s: originals.get(s, variants[s].price if s in variants else Decimal(0)) for s, _ in lines}
    value = sum((price[s] * q for s, q in lines), Decimal(0))
    difference = value - credit
    if difference > 0 and payment is None:
        raise DomainError(ErrorCode.REQUIRED, f"the replacement costs {difference} {order.currency} more: a payment is needed",
                          ["payment"], {"difference": str(difference)})
    replacement = await place_order(PlaceOrderCommand(
        channel_code=channel.code, customer_email=order.customer_email, customer_name=order.customer_name,
        customer_phone=order.customer_phone, service_level=order.service_level, notes=f"Exchange for {rma.number}",
        shipping_address=Address.from_stored(order.shipping_address),
        lines=[LineCommand(sku=s, quantity=q, unit_price=price[s] if channel.sets_prices else None) for s, q in lines],
        payment=None,
    ), actor)
    if difference > 0:
        auth = await payments.authorize(payment.gateway, difference, order.currency, payment.token)
        async with transaction():
            locked = await Order.select_for_update().get(id=replacement.id)
            await payments.record_authorization(locked, payment.gateway, payment.method, auth, actor, amount=difference)
        if not auth.approved:
            await cancel_order(replacement.id, f"exchange difference declined ({auth.decline_code})", actor)
            raise DomainError(ErrorCode.PAYMENT_DECLINED, "the price difference was declined", ["payment"],
                              {"decline_code": auth.decline_code})
    elif difference < 0:
        original = await payments.primary_payment(order.id)
        await payments.refund(original.id, -difference, actor, reason=f"exchange {rma.number}: difference")
    async with transaction():
        rma, locked = await _locked(rma_id)
        rma.exchange_order_id = replacement.id
        rma.refund_amount = max(Decimal(0), -difference)
        await _close(rma, locked, "EXCHANGE", actor, replacement=replacement.number, credit=credit,
                     difference=difference)
    return rma
