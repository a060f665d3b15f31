"""Shipping and tracking: rate shopping, labels, handing packages to the carrier, the tracking
timeline, delivery, and the customer notifications they cause.

Carriers are reached through `integrations.carriers` (a Protocol with built-in local
carriers). A carrier call never runs inside a database transaction: the label is bought
first (idempotent on a key derived from the package), then recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from tortoise.exceptions import IntegrityError

from ordergraph.db import transaction
from ordergraph.integrations.carriers import (
    Address,
    CarrierError,
    CarrierErrorCode,
    Parcel,
    RateQuote,
    ServiceLevel as CarrierLevel,
    TrackingUpdate,
    available_carriers,
    get_carrier,
    with_retries,
)
from ordergraph.integrations.carriers.registry import tracking_url
from ordergraph.models import (
    Allocation,
    FulfillmentLine,
    FulfillmentOrder,
    InventoryLevel,
    Order,
    OrderHold,
    OrderLine,
    Package,
    PackageItem,
    SalesChannel,
    Shipment,
    TrackingEvent,
    Warehouse,
)
from ordergraph.models.enums import (
    AllocationStatus,
    CaptureMode,
    CarrierSelection,
    FulfillmentStatus as F,
    HoldReason,
    MovementKind,
    OrderStatus,
    ServiceLevel,
    ShipmentDirection,
    ShipmentStatus as S,
    TrackingSource,
    TrackingStatus as T,
)
from ordergraph.workflows import notifications
from ordergraph.workflows.errors import DomainError, ErrorCode
from ordergraph.workflows.events import order_event, order_part_event
from ordergraph.workflows.fulfillment import FULFILLMENT, fo_event, sync_order_status
from ordergraph.workflows.orders import locked_order
from ordergraph.workflows.order_lifecycle import ORDER, PAYMENT, WORKFLOW, choose
from ordergraph.workflows.stock import Change, move_many

# How fast each of our service levels must be, on the carriers' scale.
_REQUIRED: dict[ServiceLevel, CarrierLevel] = {
    ServiceLevel.STANDARD: CarrierLevel.STANDARD,
    ServiceLevel.EXPRESS: CarrierLevel.EXPRESS,
    ServiceLevel.NEXT_DAY: CarrierLevel.OVERNIGHT,
}
_RANK = {CarrierLevel.ECONOMY: 0, CarrierLevel.STANDARD: 1, CarrierLevel.EXPRESS: 2, CarrierLevel.OVERNIGHT: 3}

# A tracking status and the shipment status it leads to.
_SHIPMENT_STATUS = {
    T.PICKED_UP: S.IN_TRANSIT, T.IN_TRANSIT: S.IN_TRANSIT, T.OUT_FOR_DELIVERY: S.OUT_FOR_DELIVERY,
    T.DELIVERED: S.DELIVERED, T.DELAYED: S.DELAYED, T.FAILED_ATTEMPT: S.FAILED_ATTEMPT, T.EXCEPTION: S.EXCEPTION,
    T.RETURNED_TO_SENDER: S.RETURNED_TO_SENDER,
}
FINAL = (S.DELIVERED, S.RETURNED_TO_SENDER, S.VOIDED)
# The customer hears about these, once per shipment (DELAYED once per carrier event).
_NOTIFY = {T.OUT_FOR_DELIVERY: "OUT_FOR_DELIVERY", T.DELIVERED: "DELIVERED", T.DELAYED: "DELAYED"}

_CARRIER_CODES = {
    CarrierErrorCode.ADDRESS_UNSERVICEABLE: ErrorCode.ADDRESS_UNSERVICEABLE,
    CarrierErrorCode.ADDRESS_INVALID: ErrorCode.ADDRESS_UNSERVICEABLE,
    CarrierErrorCode.PARCEL_TOO_HEAVY: ErrorCode.PARCEL_TOO_HEAVY,
    CarrierErrorCode.PARCEL_INVALID: ErrorCode.INVALID_VALUE,
    CarrierErrorCode.SERVICE_UNAVAILABLE: ErrorCode.SERVICE_UNAVAILABLE,
    CarrierErrorCode.CURRENCY_UNSUPPORTED: ErrorCode.SERVICE_UNAVAILABLE,
    CarrierErrorCode.CARRIER_UNAVAILABLE: ErrorCode.CARRIER_UNAVAILABLE,
    CarrierErrorCode.CARRIER_MISCONFIGURED: ErrorCode.UNKNOWN_CARRIER,
    CarrierErrorCode.LABEL_ALREADY_USED: ErrorCode.LABEL_ALREADY_USED,
    CarrierErrorCode.UNKNOWN_TRACKING_NUMBER: ErrorCode.UNKNOWN_TRACKING_NUMBER,
}


def carrier_failure(exc: CarrierError, field: str = "carrier") -> DomainError:
    return DomainError(_CARRIER_CODES.get(exc.code, ErrorCode.CARRIER_UNAVAILABLE), exc.message, [field],
                       {"carrier_code": str(exc.code), "retryable": exc.retryable})


def _now() -> datetime:
    return datetime.now(UTC)


def _address(data: dict, fallback_name: str = "") -> Address:
    return Address(
        name=data.get("name") or fallback_name or "Recipient", company=data.get("company") or None,
        line1=data.get("line1", ""), line2=data.get("line2") or None, city=data.get("city", ""),
        region=data.get("region") or None, postal_code=data.get("postal_code", ""), country=data.get("country", ""),
        phone=data.get("phone") or None, email=data.get("email") or None,
    )


async def _ends(fo: FulfillmentOrder, order: Order) -> tuple[Address, Address]:
    wh = await Warehouse.get(id=fo.warehouse_id)
    return _address(wh.address, wh.name), _address(order.shipping_address, order.customer_name)


async def _parcels(fo: FulfillmentOrder, package: Package | None = None) -> list[Parcel]:
    """The packages still to ship (or the one given); before packing, one parcel of the
    units' weight, so rates can be shown early."""
    if package is not None:
        packages = [package]
    else:
        shipped = await Shipment.filter(fulfillment_order_id=fo.id).exclude(status=S.VOIDED).values_list("package_id", flat=True)
        packages = [p for p in await Package.filter(fulfillment_order_id=fo.id).order_by("id") if p.id not in set(shipped)]
    if packages:
        return [Parcel(weight_grams=p.weight_grams, length_cm=p.length_cm, width_cm=p.width_cm, height_cm=p.height_cm)
                for p in packages]
    from ordergraph.models import ProductVariant  # noqa: PLC0415

    lines = await FulfillmentLine.filter(fulfillment_order_id=fo.id)
    weights = {v.id: v.weight_grams for v in await ProductVariant.filter(id__in=[fl.variant_id for fl in lines])}
    grams = sum(weights.get(fl.variant_id, 0) * fl.quantity for fl in lines)
    return [Parcel(weight_grams=max(grams, 100), length_cm=30, width_cm=20, height_cm=15)]


@dataclass
class Quote:
    quote: RateQuote
    meets_service_level: bool
    recommended: bool = False


@dataclass
class RateShop:
    quotes: list[Quote]
    unavailable: list[tuple[str, CarrierError]]  # carriers that could not quote, and why


def _meets(quote: RateQuote, level: ServiceLevel) -> bool:
    return _RANK[quote.service_level] >= _RANK[_REQUIRED[level]]


def choose_quote(quotes: list[RateQuote], channel: SalesChannel, level: ServiceLevel) -> RateQuote | None:
    """The channel's rule: the cheapest quote that meets the order's service level, from the
    preferred carrier when the channel has one and it can; otherwise from any carrier."""
    fitting = sorted((q for q in quotes if _meets(q, level)), key=lambda q: (q.amount, q.transit_days, q.carrier))
    if channel.carrier_selection is CarrierSelection.PREFERRED and channel.preferred_carrier:
        preferred = [q for q in fitting if q.carrier == channel.preferred_carrier]
        if preferred:
            return preferred[0]
    return fitting[0] if fitting else None


async def _rate_shop(fo: FulfillmentOrder, order: Order, package: Package | None = None) -> RateShop:
    ship_from, ship_to = await _ends(fo, order)
    parcels = await _parcels(fo, package)
    quotes: list[RateQuote] = []
    unavailable: list[tuple[str, CarrierError]] = []
    for carrier in available_carriers():
        try:
            quotes.extend(await with_retries(lambda c=carrier: c.rates(ship_from, ship_to, parcels, order.currency)))
        except CarrierError as exc:
            unavailable.append((carrier.code, exc))
    channel = await SalesChannel.get(id=order.channel_id)
    best = choose_quote(quotes, channel, fo.service_level)
    return RateShop(
        [Quote(q, _meets(q, fo.service_level), q is best) for q in sorted(quotes, key=lambda q: (q.amount, q.carrier))],
        unavailable,
    )


async def shipping_rates(fo_id: int) -> RateShop:
    """`shippingRates`: every carrier's quotes for what the fulfillment order still has to ship."""
    fo = await FulfillmentOrder.get_or_none(id=fo_id)
    if fo is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such fulfillment order", ["fulfillmentOrderId"])
    order = await Order.get(id=fo.order_id)
    return await _rate_shop(fo, order)


# --- labels --------------------------------------------------------------------------------------


async def buy_label(package_id: int, actor: str, *, carrier: str | None = None, service: str | None = None) -> Shipment:
    """Buy the label of one package: the given carrier and service, or the channel's choice.
    The carrier is asked with a key derived from the package, so a retry after a crash gets
    the same label back instead of paying twice."""
    package = await Package.get_or_none(id=package_id)
    if package is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such package", ["packageId"])
    fo = await FulfillmentOrder.get(id=package.fulfillment_order_id)
    order = await Order.get(id=fo.order_id)
    if fo.status not in (F.PICKED, F.PACKED):
        raise DomainError(ErrorCode.INVALID_TRANSITION, f"{fo.number} is {fo.status}: labels are bought once packed",
                          ["packageId"])
    if await Shipment.filter(package_id=package.id).exclude(status=S.VOIDED).exists():
        raise DomainError(ErrorCode.ALREADY_EXISTS, f"package {package.number} already has a label", ["packageId"])
    if (carrier is None) != (service is None):
        raise DomainError(ErrorCode.REQUIRED, "carrier and service go together", ["carrier" if carrier is None else "service"])
    if carrier is None:
        shop = await _rate_shop(fo, order, package)
        best = next((q.quote for q in shop.quotes if q.recommended), None)
        if best is None:
            raise DomainError(ErrorCode.NO_RATES, "no carrier can ship this package at the order's service level",
                              ["packageId"], {"unavailable": [{"carrier": c, "code": str(e.code)} for c, e in shop.unavailable]})
        carrier, service = best.carrier, best.service
    try:
        chosen = get_carrier(carrier)
    except CarrierError as exc:
        raise carrier_failure(exc) from None
    ship_from, ship_to = await _ends(fo, order)
    attempt = await Shipment.filter(package_id=package.id, status=S.VOIDED).count()
    key = f"label-{package.number}-{attempt}"
    parcels = await _parcels(fo, package)
    try:
        label = await with_retries(lambda: chosen.buy_label(ship_from, ship_to, parcels, service, order.number, key))
    except CarrierError as exc:
        if exc.code in (CarrierErrorCode.ADDRESS_INVALID, CarrierErrorCode.ADDRESS_UNSERVICEABLE):
            await _address_refused(order, chosen.code, exc, actor)
        raise carrier_failure(exc, "service" if exc.code is CarrierErrorCode.SERVICE_UNAVAILABLE else "carrier") from None
    try:
        async with transaction():
            order = await locked_order(order.id)
            existing = await Shipment.filter(package_id=package.id).exclude(status=S.VOIDED).first()
            if existing is not None:
                if existing.tracking_number == label.tracking_number:
                    return existing  # a concurrent call recorded the same label
                raise DomainError(ErrorCode.ALREADY_EXISTS, f"package {package.number} already has a label", ["packageId"])
            shipment = await Shipment.create(
                order_id=order.id, fulfillment_order_id=fo.id, package_id=package.id, carrier=label.carrier,
                service=label.service, service_level=str(label.service_level), tracking_number=label.tracking_number,
                label_amount=label.amount, currency=label.currency, label_format=label.format,
                label_document=label.document, estimated_delivery=label.estimated_delivery, created_by=actor,
            )
            await TrackingEvent.create(
                shipment_id=shipment.id, carrier=label.carrier, carrier_event_id=f"label-{label.tracking_number}",
                status=T.LABEL_CREATED, occurred_at=label.created_at, location="", description="label created",
                estimated_delivery=label.estimated_delivery, source=TrackingSource.CARRIER, actor=actor,
            )
            await shipment_event(shipment, order, "LABEL_CREATED", actor, new=True, package=package.number,
                                 service=label.service, amount=label.amount, currency=label.currency,
                                 estimated_delivery=label.estimated_delivery)
    except IntegrityError:
        # the same tracking number recorded by a concurrent call in the meantime
        shipment = await Shipment.get_or_none(tracking_number=label.tracking_number)
        if shipment is None:
            raise
    return shipment


async def _address_refused(order: Order, carrier: str, exc: CarrierError, actor: str) -> None:
    """A carrier that cannot verify or serve the address: an ADDRESS_INVALID exception (once per
    order and carrier), in its own transaction; the label purchase itself fails."""
    from ordergraph.models.enums import ExceptionKind  # noqa: PLC0415
    from ordergraph.workflows.exceptions import raise_exception  # noqa: PLC0415

    async with transaction():
        await raise_exception(ExceptionKind.ADDRESS_INVALID, f"ADDRESS_INVALID:{order.id}:{carrier}",
                              f"{carrier} refused the address of {order.number}: {exc.message}", actor,
                              order_id=order.id, details={"carrier": carrier, "code": str(exc.code)})


async def shipment_event(shipment: Shipment, order: Order, type_: str, actor: str, *, new: bool = False, **data):
    return await order_part_event("Shipment", shipment.id, order, type_, actor,
                                  {"tracking_number": shipment.tracking_number, "carrier": shipment.carrier, **data}, new=new)


async def void_label(shipment_id: int, actor: str) -> Shipment:
    """Void a label not yet handed over; the carrier refuses once it scanned the parcel."""
    shipment = await Shipment.get_or_none(id=shipment_id)
    if shipment is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such shipment", ["id"])
    if shipment.status is not S.LABEL_CREATED:
        raise DomainError(ErrorCode.INVALID_TRANSITION, f"shipment {shipment.tracking_number} is {shipment.status}", ["id"])
    try:
        await with_retries(lambda: get_carrier(shipment.carrier).void_label(shipment.tracking_number))
    except CarrierError as exc:
        raise carrier_failure(exc, "id") from None
    async with transaction():
        order = await locked_order(shipment.order_id)
        shipment = await Shipment.select_for_update().get(id=shipment_id)
        if shipment.status is not S.LABEL_CREATED:
            raise DomainError(ErrorCode.INVALID_TRANSITION, f"shipment {shipment.tracking_number} is {shipment.status}", ["id"])
        shipment.status = S.VOIDED
        shipment.voided_at = _now()
        await shipment.save(update_fields=["status", "voided_at"])
        await shipment_event(shipment, order, "LABEL_VOIDED", actor)
    return shipment


# --- handing over ------------------------------------------------------------------------------


@dataclass
class Shipped:
    shipment: Shipment
    order: Order
    value: Decimal  # the price of the units that left


async def ship(shipment_id: int, actor: str) -> Shipment:
    """The package left with the carrier: stock leaves the building (on hand and allocated go
    down, SHIPMENT movements), the lines count it shipped, the order moves to PARTIALLY_SHIPPED
    or SHIPPED, the customer is told, and a channel that captures on shipment captures the
    price of what left."""
    async with transaction():
        shipment = await Shipment.get_or_none(id=shipment_id)
        if shipment is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such shipment", ["id"])
        order = await locked_order(shipment.order_id)
        shipment = await Shipment.select_for_update().get(id=shipment_id)
        done = await _ship(shipment, order, actor)
    await _capture_for(done, actor)
    return done.shipment


async def _ship(shipment: Shipment, order: Order, actor: str) -> Shipped:
    """Inside the caller's transaction, with the order and the shipment locked."""
    if shipment.direction is not ShipmentDirection.OUTBOUND:
        raise DomainError(ErrorCode.INVALID_TRANSITION, "a return's parcel ships when the carrier picks it up", ["id"])
    if shipment.status is not S.LABEL_CREATED:
        raise DomainError(ErrorCode.INVALID_TRANSITION,
                          f"shipment {shipment.tracking_number} is {shipment.status}, not LABEL_CREATED", ["id"])
    if await OrderHold.filter(order_id=order.id, released_at__isnull=True).exists():
        raise DomainError(ErrorCode.ORDER_ON_HOLD, f"order {order.number} is on hold", ["id"])
    fo = await FulfillmentOrder.select_for_update().get(id=shipment.fulfillment_order_id)
    target = FULFILLMENT.target(fo, "SHIP")
    items = await PackageItem.filter(package_id=shipment.package_id)
    fls = {fl.id: fl for fl in await FulfillmentLine.filter(fulfillment_order_id=fo.id)}
    lines = {ln.id: ln for ln in await OrderLine.filter(order_id=order.id)}
    units: dict[int, int] = {}
    for it in items:
        units[it.fulfillment_line_id] = units.get(it.fulfillment_line_id, 0) + it.quantity
    levels = {lv.variant_id: lv for lv in await InventoryLevel.filter(
        warehouse_id=fo.warehouse_id, variant_id__in=[fls[i].variant_id for i in units],
    ).order_by("id").select_for_update()}
    await move_many(sorted(
        (Change(levels[fls[i].variant_id].id, MovementKind.SHIPMENT, d_on_hand=-q, d_allocated=-q,
                respect_safety_stock=False, reason=f"shipped {shipment.tracking_number}", reference=fo.number,
                order_id=order.id, quantity=-q)
         for i, q in units.items()),
        key=lambda c: c.level_id,
    ), actor=actor)
    value = Decimal("0")
    for fl_id, q in units.items():
        fl = fls[fl_id]
        fl.shipped_quantity += q
        await fl.save(update_fields=["shipped_quantity"])
        ln = lines[fl.order_line_id]
        ln.shipped_quantity += q
        ln.allocated_quantity -= q
        await ln.save(update_fields=["shipped_quantity", "allocated_quantity"])
        value += ln.unit_price * q
        await _consume_allocations(fo.id, ln.id, q)
    shipment.status = S.SHIPPED
    shipment.shipped_at = _now()
    await shipment.save(update_fields=["status", "shipped_at"])
    await shipment_event(shipment, order, "SHIPMENT_SHIPPED", actor,
                         items=[{"sku": fls[i].sku, "quantity": q} for i, q in units.items()])
    all_shipped = all(fl.shipped_quantity == fl.quantity for fl in fls.values())
    fo.status = choose(target, F.SHIPPED if all_shipped else F.PACKED)
    if all_shipped:
        fo.shipped_at = shipment.shipped_at
        await fo.save(update_fields=["status", "shipped_at", "updated_at"])
        await fo_event(fo, order, "FULFILLMENT_SHIPPED", actor)
    await sync_order_status(order, actor, "package shipped")
    if order.status is OrderStatus.SHIPPED:
        from ordergraph.models.enums import ExceptionKind  # noqa: PLC0415
        from ordergraph.workflows.exceptions import resolve_cause  # noqa: PLC0415

        await resolve_cause(ExceptionKind.SHIP_SLA_BREACH, actor, "SHIPPED", "the order shipped", order_id=order.id)
    await notifications.queue(
        f"ORDER_SHIPPED:{shipment.id}", "ORDER_SHIPPED", order.customer_email,
        await _mail_context(order, shipment), order_id=order.id,
    )
    return Shipped(shipment, order, value)


async def _consume_allocations(fo_id: int, line_id: int, qty: int) -> None:
    """The shipped units' allocations become SHIPPED (an allocation shipped in part is split)."""
    left = qty
    for a in await Allocation.filter(fulfillment_order_id=fo_id, line_id=line_id, status=AllocationStatus.ACTIVE).order_by("id"):
        if left == 0:
            break
        if a.quantity <= left:
            a.status = AllocationStatus.SHIPPED
            await a.save(update_fields=["status"])
            left -= a.quantity
        else:
            a.quantity -= left
            await a.save(update_fields=["quantity"])
            await Allocation.create(line_id=line_id, order_id=a.order_id, warehouse_id=a.warehouse_id, quantity=left,
                                    status=AllocationStatus.SHIPPED, fulfillment_order_id=fo_id)
            left = 0


async def _capture_for(done: Shipped, actor: str) -> None:
    """Capture on shipment: the shipped units' share of the order total; the last shipment
    captures whatever is left of the authorization."""
    from ordergraph.workflows import orders, payments  # noqa: PLC0415

    channel = await SalesChannel.get(id=done.order.channel_id)
    if channel.capture_mode is not CaptureMode.ON_SHIPMENT:
        return
    payment = await payments.primary_payment(done.order.id)
    if payment is None or "CAPTURE" not in PAYMENT.available(payment):
        return
    order = await Order.get(id=done.order.id)
    if order.status is OrderStatus.SHIPPED or not order.subtotal:
        amount = None
    else:
        share = (order.total * done.value / order.subtotal).quantize(Decimal("0.01"), ROUND_HALF_UP)
        amount = min(share, payment.authorized_amount - payment.captured_amount)
        if amount <= 0:
            return
    try:
        await payments.capture(payment.id, amount, actor)
    except DomainError as exc:
        try:
            await orders.place_hold(order.id, HoldReason.PAYMENT, f"capture on shipment failed: {exc.code}", actor)
        except DomainError:
            pass  # already on a payment hold


# --- tracking ----------------------------------------------------------------------------------


@dataclass
class TrackingOutcome:
    update: TrackingUpdate
    shipment: Shipment
    applied: bool  # False: a redelivery of an event already recorded


async def record_tracking(carrier: str, updates: list[TrackingUpdate], source: TrackingSource, actor: str) -> list[TrackingOutcome]:
    """Apply a carrier's tracking events, all or none: every tracking number must be one of
    ours (UNKNOWN_TRACKING_NUMBER otherwise, nothing written). An event already recorded (the
    carrier's event id) is a redelivery and changes nothing; concurrent deliveries of the same
    event apply it once (the unique key decides, the loser retries and sees it)."""
    numbers = {u.tracking_number for u in updates}
    known = {s.tracking_number: s for s in await Shipment.filter(tracking_number__in=list(numbers), carrier=carrier)}
    unknown = sorted(numbers - set(known))
    if unknown:
        raise DomainError(ErrorCode.UNKNOWN_TRACKING_NUMBER, f"no {carrier} shipment {', '.join(unknown)}",
                          ["trackingNumber"], {"tracking_numbers": unknown})
    for attempt in range(3):
        try:
            return await _record_tracking(carrier, updates, source, actor)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _record_tracking(carrier: str, updates: list[TrackingUpdate], source: TrackingSource, actor: str) -> list[TrackingOutcome]:
    outcomes: list[TrackingOutcome] = []
    captures: list[Shipped] = []
    async with transaction():
        # every order of the batch locked first, in id order: concurrent batches never deadlock
        order_ids = sorted(set(await Shipment.filter(tracking_number__in=[u.tracking_number for u in updates])
                               .values_list("order_id", flat=True)))
        orders = {o.id: o for o in await Order.filter(id__in=order_ids).order_by("id").select_for_update()}
        for u in sorted(updates, key=lambda u: u.occurred_at):
            shipment = await Shipment.select_for_update().get(tracking_number=u.tracking_number)
            order = orders[shipment.order_id]
            if await TrackingEvent.filter(carrier=carrier, carrier_event_id=u.carrier_event_id).exists():
                outcomes.append(TrackingOutcome(u, shipment, False))
                continue
            await TrackingEvent.create(
                shipment_id=shipment.id, carrier=carrier, carrier_event_id=u.carrier_event_id, status=T(str(u.status)),
                occurred_at=u.occurred_at, location=u.location or "", description=u.description or "",
                estimated_delivery=u.estimated_delivery, source=source, actor=actor,
            )
            if T(str(u.status)) is not T.LABEL_CREATED and shipment.status is S.LABEL_CREATED:
                # any scan of the parcel means the carrier has it: it shipped
                if shipment.direction is ShipmentDirection.OUTBOUND:
                    captures.append(await _ship(shipment, order, actor))
                else:
                    shipment.shipped_at = u.occurred_at
            await _apply(shipment, order, u, actor)
            outcomes.append(TrackingOutcome(u, shipment, True))
    for done in captures:
        await _capture_for(done, actor)
    return outcomes


async def _apply(shipment: Shipment, order: Order, u: TrackingUpdate, actor: str) -> None:
    status = T(str(u.status))
    newest = shipment.last_scan_at is None or u.occurred_at >= shipment.last_scan_at
    before = shipment.status
    changed = ["last_scan_at"]
    if newest:
        shipment.last_scan_at = u.occurred_at
    if u.estimated_delivery and newest:
        shipment.estimated_delivery = u.estimated_delivery
        changed.append("estimated_delivery")
    if status in _SHIPMENT_STATUS and shipment.status not in FINAL and (newest or status is T.DELIVERED):
        shipment.status = _SHIPMENT_STATUS[status]
        changed.append("status")
    if status is T.DELIVERED and shipment.delivered_at is None:
        shipment.delivered_at = u.occurred_at
        changed.append("delivered_at")
    await shipment.save(update_fields=changed)
    await shipment_event(shipment, order, "TRACKING_UPDATED", actor, status=status, location=u.location,
                         occurred_at=u.occurred_at, estimated_delivery=shipment.estimated_delivery,
                         shipment_status={"from": before, "to": shipment.status}, event_id=u.carrier_event_id)
    await _exceptions_for_scan(shipment, order, status, u, actor)
    if shipment.direction is ShipmentDirection.RETURN:
        from ordergraph.workflows.returns import on_return_scan  # noqa: PLC0415

        if "shipped_at" not in changed and shipment.shipped_at is not None:
            await shipment.save(update_fields=["shipped_at"])
        await on_return_scan(shipment, status, actor)
        return
    if status in _NOTIFY and shipment.status is not S.VOIDED and (newest or status is T.DELIVERED) and (
            status is T.DELIVERED or before is not S.DELIVERED):  # a late, older scan tells the customer nothing
        key = f"{_NOTIFY[status]}:{shipment.id}" + (f":{u.carrier_event_id}" if status is T.DELAYED else "")
        await notifications.queue(key, _NOTIFY[status], order.customer_email,
                                  await _mail_context(order, shipment), order_id=order.id)
    if shipment.status is S.DELIVERED and before is not S.DELIVERED:
        await _maybe_delivered(order, actor)


_SCAN_PROBLEMS = {T.DELAYED: "CARRIER_DELAY", T.FAILED_ATTEMPT: "DELIVERY_FAILED", T.EXCEPTION: "DELIVERY_FAILED",
                  T.RETURNED_TO_SENDER: "DELIVERY_FAILED"}


async def _exceptions_for_scan(shipment: Shipment, order: Order, status: T, u: TrackingUpdate, actor: str) -> None:
    """A carrier's bad news raises one exception per shipment and kind; good news resolves them."""
    from ordergraph.models.enums import ExceptionKind  # noqa: PLC0415
    from ordergraph.workflows.exceptions import raise_exception, resolve_cause  # noqa: PLC0415

    await resolve_cause(ExceptionKind.MISSED_PICKUP, actor, "PICKED_UP", f"scanned {status}", shipment_id=shipment.id)
    if status in _SCAN_PROBLEMS:
        kind = ExceptionKind(_SCAN_PROBLEMS[status])
        where = f" at {u.location}" if u.location else ""
        await raise_exception(kind, f"{kind}:{shipment.id}", f"{shipment.carrier} {shipment.tracking_number}: {status}{where}",
                              actor, order_id=order.id, shipment_id=shipment.id,
                              return_id=shipment.return_id, details={"status": status, "event_id": u.carrier_event_id,
                                                                     "description": u.description})
    if status is T.DELIVERED:
        for kind in (ExceptionKind.CARRIER_DELAY, ExceptionKind.DELIVERY_FAILED, ExceptionKind.LOST_IN_TRANSIT):
            await resolve_cause(kind, actor, "DELIVERED", "the carrier delivered the parcel", shipment_id=shipment.id)


async def _maybe_delivered(order: Order, actor: str) -> None:
    """The order is DELIVERED when it shipped everything and every shipment arrived."""
    if order.status is not OrderStatus.SHIPPED:
        return
    pending = await Shipment.filter(order_id=order.id, direction=ShipmentDirection.OUTBOUND).exclude(
        status__in=[S.VOIDED, S.DELIVERED]).exists()
    if pending:
        return
    before = order.status
    order.status = ORDER.target(order, "DELIVER", WORKFLOW)
    await order.save(update_fields=["status", "updated_at"])
    await order_event(order, "ORDER_DELIVERED", actor, status={"from": before, "to": order.status})


async def _mail_context(order: Order, shipment: Shipment) -> dict:
    items = await PackageItem.filter(package_id=shipment.package_id).prefetch_related("fulfillment_line__order_line")
    eta: date | None = shipment.estimated_delivery
    return {
        "order_number": order.number, "customer_name": order.customer_name, "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number, "tracking_url": tracking_url(shipment.carrier, shipment.tracking_number),
        "eta": eta.isoformat() if eta else None,
        "items": [{"sku": it.fulfillment_line.sku, "name": it.fulfillment_line.order_line.name, "quantity": it.quantity}
                  for it in items],
    }


async def record_tracking_event(tracking_number: str, status: T, occurred_at: datetime, actor: str, *,
                                location: str = "", description: str = "", event_id: str | None = None,
                                estimated_delivery: date | None = None) -> TrackingOutcome:
    """`recordTrackingEvent`: staff or a 3PL enters a scan by hand (or from its own system)."""
    shipment = await Shipment.get_or_none(tracking_number=tracking_number)
    if shipment is None:
        raise DomainError(ErrorCode.UNKNOWN_TRACKING_NUMBER, f"no shipment {tracking_number}", ["trackingNumber"])
    if occurred_at.tzinfo is None:
        raise DomainError(ErrorCode.INVALID_VALUE, "occurredAt needs a time zone", ["occurredAt"])
    if status is T.LABEL_CREATED:
        raise DomainError(ErrorCode.INVALID_VALUE, "LABEL_CREATED is recorded when the label is bought", ["status"])
    update = TrackingUpdate(
        carrier_event_id=event_id or f"manual-{tracking_number}-{status}-{occurred_at.astimezone(UTC).isoformat()}",
        tracking_number=tracking_number, status=status, occurred_at=occurred_at.astimezone(UTC),
        location=location or None, description=description or None, estimated_delivery=estimated_delivery,
    )
    [outcome] = await record_tracking(shipment.carrier, [update], TrackingSource.API, actor)
    return outcome


async def packing_slip(fo_id: int) -> bytes:
    """The packing slip of a fulfillment order: its lines, and its packages with their labels."""
    from ordergraph.integrations.carriers.documents import SlipPackage, render_packing_slip  # noqa: PLC0415
    from ordergraph.models import ProductVariant  # noqa: PLC0415

    fo = await FulfillmentOrder.get_or_none(id=fo_id)
    if fo is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such fulfillment order", ["id"])
    order = await Order.get(id=fo.order_id)
    ship_from, ship_to = await _ends(fo, order)
    lines = await FulfillmentLine.filter(fulfillment_order_id=fo.id).order_by("id")
    names = {v.id: v.name for v in await ProductVariant.filter(id__in=[fl.variant_id for fl in lines])}
    packages = []
    for p in await Package.filter(fulfillment_order_id=fo.id).order_by("id"):
        s = await Shipment.filter(package_id=p.id).exclude(status=S.VOIDED).first()
        packages.append(SlipPackage(s.carrier if s else "", s.service if s else None, s.tracking_number if s else None,
                                    p.weight_grams))
    return render_packing_slip(fo.number, ship_from, ship_to,
                               [(fl.sku, names.get(fl.variant_id, fl.sku), fl.quantity) for fl in lines if fl.quantity],
                               packages)
