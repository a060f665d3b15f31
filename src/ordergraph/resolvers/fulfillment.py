"""Fulfillment, shipping and tracking: queries and mutations (thin: decode, check, call one
workflow function, map the result)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry import relay
from strawberry.types import Info

from ordergraph.auth.permissions import can_read_order, can_write_order, order_scope
from ordergraph.models import FulfillmentOrder, Order, Package, PickList, Shipment, Warehouse
from ordergraph.resolvers.mutation import run_mutation
from ordergraph.schema.common import Connection, node_pk, paginate, readable_by_order, require_scope
from ordergraph.schema.enums import FulfillmentStatus, PickListStatus, ServiceLevel, TrackingStatus
from ordergraph.schema.errors import (
    CarrierFailure,
    IdempotencyKeyReusedError,
    InvalidInputError,
    InvalidTransitionError,
    NotAuthorizedError,
    NotFoundError,
    OperationError,
    PickError,
)
from ordergraph.schema.fulfillment import (
    FulfillmentOrderType,
    PickListType,
    ShipmentType,
    ShippingRates,
    shipping_rates_type,
)
from ordergraph.schema.orders import OrderType
from ordergraph.workflows import fulfillment, shipping
from ordergraph.workflows.errors import DomainError, ErrorCode
from ordergraph.workflows.fulfillment import PackageSpec

WRITE = "fulfillment:write"

_ERRORS = (
    InvalidInputError | NotFoundError | NotAuthorizedError | InvalidTransitionError | IdempotencyKeyReusedError
    | OperationError
)


@strawberry.type
class PickListPayload:
    pick_list: PickListType


@strawberry.type
class PickPayload:
    pick_list: PickListType
    fulfillment_orders: list[FulfillmentOrderType] = strawberry.field(
        description="The fulfillment orders the scan or short pick touched, as they are now.")
    orders: list[OrderType] = strawberry.field(description="Their orders, as they are now (status, allocations).")


@strawberry.type
class FulfillmentOrderPayload:
    fulfillment_order: FulfillmentOrderType


@strawberry.type
class ShipmentPayload:
    shipment: ShipmentType
    order: OrderType


@strawberry.type
class TrackingEventPayload:
    shipment: ShipmentType
    applied: bool = strawberry.field(description="False when this scan (its event id) was recorded before.")


PickListResult = Annotated[PickListPayload | _ERRORS, strawberry.union("PickListResult")]
PickResult = Annotated[PickPayload | PickError | _ERRORS, strawberry.union("PickResult")]
FulfillmentOrderResult = Annotated[FulfillmentOrderPayload | _ERRORS, strawberry.union("FulfillmentOrderResult")]
ShipmentResult = Annotated[ShipmentPayload | CarrierFailure | _ERRORS, strawberry.union("ShipmentResult")]
TrackingEventResult = Annotated[TrackingEventPayload | _ERRORS, strawberry.union("TrackingEventResult")]


@strawberry.input
class PackageItemInput:
    sku: str = strawberry.field(description="SKU or barcode.")
    quantity: int


@strawberry.input
class PackageInput:
    weight_grams: int
    length_cm: Decimal
    width_cm: Decimal
    height_cm: Decimal
    items: list[PackageItemInput]


@strawberry.input
class FulfillmentOrderFilter:
    warehouse: str | None = None
    status: list[FulfillmentStatus] | None = None
    order_number: str | None = None


def _missing(what: str, field: str) -> DomainError:
    return DomainError(ErrorCode.NOT_FOUND, f"no such {what}", [field])


def _id(gid: relay.GlobalID, type_name: str, field: str) -> int:
    pk = node_pk(gid, type_name)
    if pk is None:
        raise _missing(type_name, field)
    return pk


async def _staff_only(info: Info) -> None:
    """Warehouse work across orders (pick lists, waves) is for staff."""
    if not info.context.viewer.is_staff:
        raise DomainError(ErrorCode.FORBIDDEN, "warehouse operations need a staff key with fulfillment:write")


async def _writable_fo(info: Info, gid: relay.GlobalID, field: str = "id") -> int:
    fo_id = _id(gid, "FulfillmentOrder", field)
    fo = await FulfillmentOrder.get_or_none(id=fo_id)
    order = await Order.get_or_none(id=fo.order_id) if fo else None
    if order is None or not can_write_order(info.context.viewer, order):
        raise _missing("fulfillment order", field)
    return fo_id


async def _writable_shipment(info: Info, *, gid: relay.GlobalID | None = None, tracking_number: str | None = None,
                             field: str = "id") -> Shipment:
    if gid is not None:
        shipment = await Shipment.get_or_none(id=_id(gid, "Shipment", field))
    else:
        shipment = await Shipment.get_or_none(tracking_number=tracking_number)
    order = await Order.get_or_none(id=shipment.order_id) if shipment else None
    if order is None or not can_write_order(info.context.viewer, order):
        if gid is None:
            raise DomainError(ErrorCode.UNKNOWN_TRACKING_NUMBER, f"no shipment {tracking_number}", [field])
        raise _missing("shipment", field)
    return shipment


async def _warehouse_id(code: str) -> int:
    wh = await Warehouse.get_or_none(code=code)
    if wh is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no warehouse {code!r}", ["warehouse"])
    return wh.id


async def _pick_payload(result) -> PickPayload:
    pl, *orders = result
    orders = [o for o in orders if isinstance(o, Order)]
    fos = await FulfillmentOrder.filter(order_id__in=[o.id for o in orders]).order_by("id")
    return PickPayload(pick_list=PickListType.from_model(await PickList.get(id=pl.id)),
                       fulfillment_orders=[FulfillmentOrderType.from_model(f) for f in fos],
                       orders=[OrderType.from_model(o) for o in await Order.filter(id__in=[o.id for o in orders]).order_by("id")])


async def _shipment_payload(s: Shipment) -> ShipmentPayload:
    s = await Shipment.get(id=s.id)
    return ShipmentPayload(shipment=ShipmentType.from_model(s), order=OrderType.from_model(await Order.get(id=s.order_id)))


async def _orders_of(fo_ids) -> tuple[Order, ...]:
    ids = await FulfillmentOrder.filter(id__in=list(fo_ids)).values_list("order_id", flat=True)
    return tuple(await Order.filter(id__in=list(set(ids))).order_by("id"))


@strawberry.type
class FulfillmentQuery:
    @strawberry.field(description="One fulfillment order by global id or number; null when missing or not yours.")
    async def fulfillment_order(self, info: Info, id: relay.GlobalID | None = None,
                                number: str | None = None) -> FulfillmentOrderType | None:
        fo = await readable_by_order(info, FulfillmentOrder, "FulfillmentOrder", id, number)
        if fo is None:
            return None
        return FulfillmentOrderType.from_model(fo)

    @strawberry.field(description="Fulfillment orders the viewer may read, oldest first; filter by warehouse, status, order.")
    async def fulfillment_orders(self, info: Info, filter: FulfillmentOrderFilter | None = None, first: int | None = None,
                                 after: str | None = None) -> Connection[FulfillmentOrderType]:
        require_scope(info, "orders:read")
        order_ids = Order.filter(order_scope(info.context.viewer)).values_list("id", flat=True)
        qs = FulfillmentOrder.filter(order_id__in=await order_ids) if not info.context.viewer.is_staff else FulfillmentOrder.all()
        if filter is not None:
            if filter.warehouse:
                qs = qs.filter(warehouse__code=filter.warehouse)
            if filter.status:
                qs = qs.filter(status__in=[s.value for s in filter.status])
            if filter.order_number:
                qs = qs.filter(order__number=filter.order_number)

        async def nodes(rows):
            return [FulfillmentOrderType.from_model(f) for f in rows]

        return await paginate(info, qs.order_by("created_at", "id"), first, after, nodes)

    @strawberry.field(description="A pick list by global id or number (staff).")
    async def pick_list(self, info: Info, id: relay.GlobalID | None = None, number: str | None = None) -> PickListType | None:
        if not info.context.viewer.is_staff:
            return None
        require_scope(info, "orders:read")
        if id is not None:
            if id.type_name != "PickList" or not id.node_id.isdigit():
                return None
            pl = await PickList.get_or_none(id=int(id.node_id))
        elif number is not None:
            pl = await PickList.get_or_none(number=number)
        else:
            return None
        return PickListType.from_model(pl) if pl else None

    @strawberry.field(description="Pick lists (staff), newest first.")
    async def pick_lists(self, info: Info, warehouse: str | None = None, status: PickListStatus | None = None,
                         first: int | None = None, after: str | None = None) -> Connection[PickListType]:
        require_scope(info, "orders:read")
        qs = PickList.all() if info.context.viewer.is_staff else PickList.filter(id=-1)
        if warehouse:
            qs = qs.filter(warehouse__code=warehouse)
        if status:
            qs = qs.filter(status=status.value)

        async def nodes(rows):
            return [PickListType.from_model(p) for p in rows]

        return await paginate(info, qs.order_by("-id"), first, after, nodes)

    @strawberry.field(description="A shipment by tracking number; null when missing or not yours.")
    async def shipment(self, info: Info, tracking_number: str) -> ShipmentType | None:
        s = await Shipment.get_or_none(tracking_number=tracking_number)
        order = await Order.get_or_none(id=s.order_id) if s else None
        if order is None or not can_read_order(info.context.viewer, order) or info.context.viewer.kind.value == "GUEST":
            return None
        return ShipmentType.from_model(s)

    @strawberry.field(description="Every carrier's quotes for what the fulfillment order still ships; `recommended` "
                                  "is the channel's choice.")
    async def shipping_rates(self, info: Info, fulfillment_order_id: relay.GlobalID) -> ShippingRates | None:
        if not (info.context.viewer.is_staff or info.context.viewer.is_partner):
            return None
        try:
            fo_id = await _writable_fo(info, fulfillment_order_id, "fulfillmentOrderId")
        except DomainError:
            return None
        return shipping_rates_type(await shipping.shipping_rates(fo_id))


@strawberry.type
class FulfillmentMutation:
    @strawberry.mutation(description="Batch picking: one pick list for many OPEN fulfillment orders of a warehouse (the "
                                     "given ones, or the oldest up to `limit`).")
    async def create_pick_list(self, info: Info, warehouse: str, fulfillment_order_ids: list[relay.GlobalID] | None = None,
                               limit: int = 50, idempotency_key: str | None = None) -> PickListResult:
        async def action():
            await _staff_only(info)
            ids = [_id(g, "FulfillmentOrder", "fulfillmentOrderIds") for g in fulfillment_order_ids or []]
            return await fulfillment.create_batch_pick_list(await _warehouse_id(warehouse), info.context.viewer.actor,
                                                            fulfillment_order_ids=ids or None, limit=limit)

        return await run_mutation(info, "createPickList", idempotency_key,
                                  {"warehouse": warehouse, "ids": [str(g) for g in fulfillment_order_ids or []],
                                   "limit": limit}, action, lambda pl: PickListPayload(pick_list=PickListType.from_model(pl)),
                                  scope=WRITE)

    @strawberry.mutation(description="Wave picking: release every OPEN fulfillment order of a warehouse placed by the "
                                     "cut-off, optionally one service level or the orders of channels preferring a carrier.")
    async def release_wave(self, info: Info, warehouse: str, cutoff: datetime, service_level: ServiceLevel | None = None,
                           carrier: str | None = None, limit: int = 200,
                           idempotency_key: str | None = None) -> PickListResult:
        async def action():
            await _staff_only(info)
            return await fulfillment.release_wave(await _warehouse_id(warehouse), info.context.viewer.actor, cutoff=cutoff,
                                                  service_level=service_level, carrier=carrier, limit=limit)

        return await run_mutation(info, "releaseWave", idempotency_key,
                                  {"warehouse": warehouse, "cutoff": cutoff, "service_level": service_level,
                                   "carrier": carrier, "limit": limit},
                                  action, lambda pl: PickListPayload(pick_list=PickListType.from_model(pl)), scope=WRITE)

    @strawberry.mutation(description="A scan confirms units: a code not on the list is a MISPICK, more than still needed "
                                     "an OVERPICK; neither changes anything.")
    async def confirm_pick(self, info: Info, pick_list_id: relay.GlobalID, scan: str, quantity: int = 1,
                           fulfillment_order_id: relay.GlobalID | None = None,
                           idempotency_key: str | None = None) -> PickResult:
        async def action():
            await _staff_only(info)
            fo_id = _id(fulfillment_order_id, "FulfillmentOrder", "fulfillmentOrderId") if fulfillment_order_id else None
            r = await fulfillment.confirm_pick(_id(pick_list_id, "PickList", "pickListId"), scan, quantity,
                                               info.context.viewer.actor, fulfillment_order_id=fo_id)
            return (r.pick_list, *await _orders_of({i.fulfillment_order_id for i, _ in r.picked}))

        return await run_mutation(info, "confirmPick", idempotency_key,
                                  {"pick_list": str(pick_list_id), "scan": scan, "quantity": quantity,
                                   "fo": str(fulfillment_order_id) if fulfillment_order_id else None},
                                  action, _pick_payload, scope=WRITE)

    @strawberry.mutation(description="The bin had fewer units than the list asks: they leave the warehouse's stock, and "
                                     "the order is allocated again elsewhere or backordered.")
    async def report_short_pick(self, info: Info, pick_list_id: relay.GlobalID, scan: str, missing: int, reason: str = "",
                                fulfillment_order_id: relay.GlobalID | None = None,
                                idempotency_key: str | None = None) -> PickResult:
        async def action():
            await _staff_only(info)
            fo_id = _id(fulfillment_order_id, "FulfillmentOrder", "fulfillmentOrderId") if fulfillment_order_id else None
            r = await fulfillment.report_short_pick(_id(pick_list_id, "PickList", "pickListId"), scan, missing,
                                                    info.context.viewer.actor, fulfillment_order_id=fo_id, reason=reason)
            return (r.pick_list, *await _orders_of({i.fulfillment_order_id for i, _ in r.short}))

        return await run_mutation(info, "reportShortPick", idempotency_key,
                                  {"pick_list": str(pick_list_id), "scan": scan, "missing": missing, "reason": reason,
                                   "fo": str(fulfillment_order_id) if fulfillment_order_id else None},
                                  action, _pick_payload, scope=WRITE)

    @strawberry.mutation(description="Put picked units into packages; PACKED once every picked unit is in one.")
    async def pack_fulfillment_order(self, info: Info, id: relay.GlobalID, packages: list[PackageInput],
                                     idempotency_key: str | None = None) -> FulfillmentOrderResult:
        async def action():
            fo_id = await _writable_fo(info, id)
            await fulfillment.pack(fo_id, [
                PackageSpec(p.weight_grams, p.length_cm, p.width_cm, p.height_cm, [(i.sku, i.quantity) for i in p.items])
                for p in packages
            ], info.context.viewer.actor)
            return await FulfillmentOrder.get(id=fo_id)

        return await run_mutation(info, "packFulfillmentOrder", idempotency_key, {"id": str(id), "packages": packages},
                                  action, _fo_payload, scope=WRITE)

    @strawberry.mutation(description="Buy a package's label: the given carrier and service, or the channel's rule.")
    async def buy_shipping_label(self, info: Info, package_number: str, carrier: str | None = None,
                                 service: str | None = None, idempotency_key: str | None = None) -> ShipmentResult:
        async def action():
            package = await Package.get_or_none(number=package_number)
            fo = await FulfillmentOrder.get_or_none(id=package.fulfillment_order_id) if package else None
            order = await Order.get_or_none(id=fo.order_id) if fo else None
            if order is None or not can_write_order(info.context.viewer, order):
                raise _missing("package", "packageNumber")
            return await shipping.buy_label(package.id, info.context.viewer.actor, carrier=carrier, service=service)

        return await run_mutation(info, "buyShippingLabel", idempotency_key,
                                  {"package": package_number, "carrier": carrier, "service": service},
                                  action, _shipment_payload, scope=WRITE)

    @strawberry.mutation(description="Void a label not handed to the carrier yet.")
    async def void_shipping_label(self, info: Info, shipment_id: relay.GlobalID,
                                  idempotency_key: str | None = None) -> ShipmentResult:
        async def action():
            s = await _writable_shipment(info, gid=shipment_id, field="shipmentId")
            return await shipping.void_label(s.id, info.context.viewer.actor)

        return await run_mutation(info, "voidShippingLabel", idempotency_key, {"shipment": str(shipment_id)},
                                  action, _shipment_payload, scope=WRITE)

    @strawberry.mutation(description="The package left with the carrier: stock, lines and order status move, and a "
                                     "channel that captures on shipment captures the shipped share.")
    async def ship_package(self, info: Info, shipment_id: relay.GlobalID,
                           idempotency_key: str | None = None) -> ShipmentResult:
        async def action():
            s = await _writable_shipment(info, gid=shipment_id, field="shipmentId")
            return await shipping.ship(s.id, info.context.viewer.actor)

        return await run_mutation(info, "shipPackage", idempotency_key, {"shipment": str(shipment_id)},
                                  action, _shipment_payload, scope=WRITE)

    @strawberry.mutation(description="A tracking scan entered by staff or a 3PL partner; the same event id twice is "
                                     "recorded once.")
    async def record_tracking_event(self, info: Info, tracking_number: str, status: TrackingStatus, occurred_at: datetime,
                                    location: str = "", description: str = "", event_id: str | None = None,
                                    estimated_delivery: date | None = None,
                                    idempotency_key: str | None = None) -> TrackingEventResult:
        outcome: dict = {}

        async def action():
            s = await _writable_shipment(info, tracking_number=tracking_number, field="trackingNumber")
            out = await shipping.record_tracking_event(
                s.tracking_number, status, occurred_at, info.context.viewer.actor, location=location,
                description=description, event_id=event_id, estimated_delivery=estimated_delivery)
            outcome["applied"] = out.applied
            return out.shipment

        async def payload(s):
            return TrackingEventPayload(shipment=ShipmentType.from_model(await Shipment.get(id=s.id)),
                                        applied=outcome.get("applied", False))

        return await run_mutation(info, "recordTrackingEvent", idempotency_key,
                                  {"tn": tracking_number, "status": status, "at": occurred_at, "location": location,
                                   "description": description, "event_id": event_id, "eta": estimated_delivery},
                                  action, payload, scope=WRITE)

    @strawberry.mutation
    async def hold_fulfillment_order(self, info: Info, id: relay.GlobalID, reason: str,
                                     idempotency_key: str | None = None) -> FulfillmentOrderResult:
        async def action():
            return await fulfillment.hold(await _writable_fo(info, id), reason, info.context.viewer.actor)

        return await run_mutation(info, "holdFulfillmentOrder", idempotency_key, {"id": str(id), "reason": reason},
                                  action, _fo_payload, scope=WRITE)

    @strawberry.mutation
    async def release_fulfillment_order(self, info: Info, id: relay.GlobalID,
                                        idempotency_key: str | None = None) -> FulfillmentOrderResult:
        async def action():
            return await fulfillment.release(await _writable_fo(info, id), info.context.viewer.actor)

        return await run_mutation(info, "releaseFulfillmentOrder", idempotency_key, {"id": str(id)},
                                  action, _fo_payload, scope=WRITE)

    @strawberry.mutation(description="Cancel what one warehouse was to ship; the units are allocated again elsewhere "
                                     "or backordered by the next allocation run.")
    async def cancel_fulfillment_order(self, info: Info, id: relay.GlobalID, reason: str,
                                       idempotency_key: str | None = None) -> FulfillmentOrderResult:
        async def action():
            return await fulfillment.cancel(await _writable_fo(info, id), reason, info.context.viewer.actor)

        return await run_mutation(info, "cancelFulfillmentOrder", idempotency_key, {"id": str(id), "reason": reason},
                                  action, _fo_payload, scope=WRITE)


async def _fo_payload(fo: FulfillmentOrder) -> FulfillmentOrderPayload:
    return FulfillmentOrderPayload(fulfillment_order=FulfillmentOrderType.from_model(await FulfillmentOrder.get(id=fo.id)))

