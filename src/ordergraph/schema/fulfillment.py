"""Fulfillment orders, pick lists, packages, shipments with their tracking timeline, rate quotes;
and the guest's view of a shipment."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import strawberry
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.types import Info

from ordergraph.auth.permissions import can_read_order
from ordergraph.integrations.carriers.registry import tracking_url
from ordergraph.models import FulfillmentOrder, Order, PickList, Shipment, TrackingEvent
from ordergraph.resolvers.fulfillment_loaders import floader
from ordergraph.schema.common import Money, money
from ordergraph.schema.enums import (
    FulfillmentStatus,
    PickListKind,
    PickListStatus,
    ServiceLevel,
    ShipmentDirection,
    ShipmentStatus,
    TrackingSource,
    TrackingStatus,
)
from ordergraph.workflows.fulfillment import available_actions


@strawberry.type(name="FulfillmentLine")
class FulfillmentLineType:
    sku: str
    quantity: int = strawberry.field(description="Units this warehouse ships (short-picked units excluded).")
    picked_quantity: int
    packed_quantity: int
    shipped_quantity: int
    short_quantity: int


def _fline(fl) -> FulfillmentLineType:
    return FulfillmentLineType(sku=fl.sku, quantity=fl.quantity, picked_quantity=fl.picked_quantity,
                               packed_quantity=fl.packed_quantity, shipped_quantity=fl.shipped_quantity,
                               short_quantity=fl.short_quantity)


@strawberry.type
class PackageContent:
    sku: str
    quantity: int


@strawberry.type(name="Package")
class PackageType:
    number: str
    weight_grams: int
    length_cm: Decimal
    width_cm: Decimal
    height_cm: Decimal
    created_at: datetime
    package_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, p) -> PackageType:
        return cls(number=p.number, weight_grams=p.weight_grams, length_cm=p.length_cm, width_cm=p.width_cm,
                   height_cm=p.height_cm, created_at=p.created_at, package_id=p.id)

    @strawberry.field
    async def items(self, info: Info) -> list[PackageContent]:
        items = await floader(info, "package_items_by_package").load(self.package_id)
        lines = await floader(info, "fline").load_many([i.fulfillment_line_id for i in items])
        return [PackageContent(sku=fl.sku, quantity=i.quantity) for i, fl in zip(items, lines, strict=True)]

    @strawberry.field(description="The package's live shipment (its label), if one was bought.")
    async def shipment(self, info: Info) -> ShipmentType | None:
        rows = [s for s in await floader(info, "shipments_by_package").load(self.package_id) if s.status != "VOIDED"]
        return ShipmentType.from_model(rows[-1]) if rows else None


@strawberry.type(name="TrackingEvent")
class TrackingEventType:
    status: TrackingStatus
    occurred_at: datetime
    location: str
    description: str
    estimated_delivery: date | None
    source: TrackingSource


def _tracking(t) -> TrackingEventType:
    return TrackingEventType(status=t.status, occurred_at=t.occurred_at, location=t.location, description=t.description,
                             estimated_delivery=t.estimated_delivery, source=t.source)


@strawberry.type(name="Shipment")
class ShipmentType(relay.Node):
    id: relay.NodeID[int]
    tracking_number: str
    carrier: str
    service: str
    service_level: str
    direction: ShipmentDirection
    status: ShipmentStatus
    label_cost: Money
    estimated_delivery: date | None
    created_at: datetime
    shipped_at: datetime | None
    delivered_at: datetime | None
    voided_at: datetime | None
    last_scan_at: datetime | None
    order_id: strawberry.Private[int]
    fo_id: strawberry.Private[int | None]
    package_id: strawberry.Private[int | None]

    @classmethod
    def from_model(cls, s: Shipment) -> ShipmentType:
        return cls(id=s.id, tracking_number=s.tracking_number, carrier=s.carrier, service=s.service,
                   service_level=s.service_level, direction=s.direction, status=s.status, label_cost=money(s.label_amount, s.currency),
                   estimated_delivery=s.estimated_delivery, created_at=s.created_at, shipped_at=s.shipped_at,
                   delivered_at=s.delivered_at, voided_at=s.voided_at, last_scan_at=s.last_scan_at,
                   order_id=s.order_id, fo_id=s.fulfillment_order_id, package_id=s.package_id)

    @strawberry.field
    def tracking_url(self) -> str:
        return tracking_url(self.carrier, self.tracking_number)

    @strawberry.field(description="Where the label PDF downloads (staff or the channel's partner, with an API key).")
    def label_url(self) -> str:
        return f"/documents/labels/{self.tracking_number}"

    @strawberry.field(description="The carrier's scans, oldest first.")
    async def timeline(self, info: Info) -> list[TrackingEventType]:
        return [_tracking(t) for t in await floader(info, "tracking_by_shipment").load(self.id)]

    @strawberry.field(description="The fulfillment order it carries (outbound shipments).")
    async def fulfillment_order_number(self, info: Info) -> str | None:
        return (await floader(info, "fo").load(self.fo_id)).number if self.fo_id else None

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids, required: bool = False):
        rows = {s.id: s for s in await Shipment.filter(id__in=[int(i) for i in node_ids])}
        orders = {o.id: o for o in await Order.filter(id__in=[s.order_id for s in rows.values()])}
        viewer = info.context.viewer
        return [ShipmentType.from_model(rows[int(i)])
                if int(i) in rows and can_read_order(viewer, orders[rows[int(i)].order_id]) else None
                for i in node_ids]


@strawberry.type(name="FulfillmentOrder")
class FulfillmentOrderType(relay.Node):
    id: relay.NodeID[int]
    number: str
    status: FulfillmentStatus
    service_level: ServiceLevel
    hold_reason: str | None
    created_at: datetime
    updated_at: datetime
    picked_at: datetime | None
    packed_at: datetime | None
    shipped_at: datetime | None
    cancelled_at: datetime | None
    model: strawberry.Private[FulfillmentOrder]

    @classmethod
    def from_model(cls, fo: FulfillmentOrder) -> FulfillmentOrderType:
        return cls(id=fo.id, number=fo.number, status=fo.status, service_level=fo.service_level,
                   hold_reason=fo.hold_reason or None, created_at=fo.created_at, updated_at=fo.updated_at,
                   picked_at=fo.picked_at, packed_at=fo.packed_at, shipped_at=fo.shipped_at,
                   cancelled_at=fo.cancelled_at, model=fo)

    @strawberry.field
    async def warehouse_code(self, info: Info) -> str:
        return (await floader(info, "warehouse").load(self.model.warehouse_id)).code

    @strawberry.field
    async def order_number(self, info: Info) -> str:
        from ordergraph.resolvers.orders import order_row  # noqa: PLC0415

        return (await order_row("id", self.model.order_id)).number

    @strawberry.field
    async def lines(self, info: Info) -> list[FulfillmentLineType]:
        return [_fline(fl) for fl in await floader(info, "flines_by_fo").load(self.id)]

    @strawberry.field
    async def packages(self, info: Info) -> list[PackageType]:
        return [PackageType.from_model(p) for p in await floader(info, "packages_by_fo").load(self.id)]

    @strawberry.field
    async def shipments(self, info: Info) -> list[ShipmentType]:
        return [ShipmentType.from_model(s) for s in await floader(info, "shipments_by_fo").load(self.id)]

    @strawberry.field
    async def pick_list_number(self, info: Info) -> str | None:
        if self.model.pick_list_id is None:
            return None
        pl = await PickList.get_or_none(id=self.model.pick_list_id)
        return pl.number if pl else None

    @strawberry.field(description="Actions a client may take now (HOLD, RELEASE, CANCEL, START_PICKING, PACK, SHIP…).")
    def available_actions(self) -> list[str]:
        return available_actions(self.model)

    @strawberry.field(description="Where the packing slip PDF downloads (staff or the channel's partner).")
    def packing_slip_url(self) -> str:
        return f"/documents/packing-slips/{self.number}"

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids, required: bool = False):
        rows = {f.id: f for f in await FulfillmentOrder.filter(id__in=[int(i) for i in node_ids])}
        orders = {o.id: o for o in await Order.filter(id__in=[f.order_id for f in rows.values()])}
        viewer = info.context.viewer
        return [cls.from_model(rows[int(i)])
                if int(i) in rows and can_read_order(viewer, orders[rows[int(i)].order_id]) else None
                for i in node_ids]


@strawberry.type
class PickListItemType:
    bin_location: str
    sku: str
    barcode: str | None
    quantity: int
    picked_quantity: int
    short_quantity: int
    remaining: int
    fulfillment_order_id: strawberry.Private[int]

    @strawberry.field
    async def fulfillment_order_number(self, info: Info) -> str:
        return (await floader(info, "fo").load(self.fulfillment_order_id)).number


@strawberry.type(description="One stop of the picker's walk: a bin and a SKU, with the units every order needs from it.")
class PickStop:
    bin_location: str
    sku: str
    barcode: str | None
    quantity: int
    picked_quantity: int
    short_quantity: int
    remaining: int
    orders: int


@strawberry.type(name="PickList")
class PickListType(relay.Node):
    id: relay.NodeID[int]
    number: str
    kind: PickListKind
    status: PickListStatus
    criteria: JSON
    created_by: str
    created_at: datetime
    completed_at: datetime | None
    warehouse_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, pl: PickList) -> PickListType:
        return cls(id=pl.id, number=pl.number, kind=pl.kind, status=pl.status, criteria=pl.criteria,
                   created_by=pl.created_by, created_at=pl.created_at, completed_at=pl.completed_at,
                   warehouse_id=pl.warehouse_id)

    @strawberry.field
    async def warehouse_code(self, info: Info) -> str:
        return (await floader(info, "warehouse").load(self.warehouse_id)).code

    @strawberry.field(description="Each fulfillment order's units, in walking order (bin, then SKU).")
    async def items(self, info: Info) -> list[PickListItemType]:
        return [
            PickListItemType(bin_location=i.bin_location, sku=i.sku, barcode=i.barcode, quantity=i.quantity,
                             picked_quantity=i.picked_quantity, short_quantity=i.short_quantity,
                             remaining=i.quantity - i.picked_quantity - i.short_quantity,
                             fulfillment_order_id=i.fulfillment_order_id)
            for i in await floader(info, "pick_items_by_list").load(self.id)
        ]

    @strawberry.field(description="Batch picking: the items grouped by bin and SKU, in walking order.")
    async def stops(self, info: Info) -> list[PickStop]:
        stops: dict[tuple[str, str], PickStop] = {}
        for i in await floader(info, "pick_items_by_list").load(self.id):
            s = stops.get((i.bin_location, i.sku))
            if s is None:
                s = stops[(i.bin_location, i.sku)] = PickStop(bin_location=i.bin_location, sku=i.sku, barcode=i.barcode,
                                                             quantity=0, picked_quantity=0, short_quantity=0,
                                                             remaining=0, orders=0)
            s.quantity += i.quantity
            s.picked_quantity += i.picked_quantity
            s.short_quantity += i.short_quantity
            s.remaining += i.quantity - i.picked_quantity - i.short_quantity
            s.orders += 1
        return list(stops.values())

    @strawberry.field
    async def fulfillment_orders(self, info: Info) -> list[FulfillmentOrderType]:
        return [FulfillmentOrderType.from_model(f) for f in await floader(info, "fos_by_pick_list").load(self.id)]

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids, required: bool = False):
        if not info.context.viewer.is_staff or not info.context.viewer.has_scope("orders:read"):
            return [None for _ in node_ids]
        rows = {p.id: p for p in await PickList.filter(id__in=[int(i) for i in node_ids])}
        return [cls.from_model(rows[int(i)]) if int(i) in rows else None for i in node_ids]


@strawberry.type
class RateQuoteType:
    carrier: str
    service: str
    service_level: str
    amount: Money
    transit_days: int
    estimated_delivery: date
    meets_service_level: bool = strawberry.field(description="Fast enough for the order's service level.")
    recommended: bool = strawberry.field(description="What the channel's carrier rule picks (cheapest that meets the "
                                                     "service level, or the preferred carrier's).")


@strawberry.type
class CarrierProblem:
    carrier: str
    code: str
    message: str


@strawberry.type
class ShippingRates:
    quotes: list[RateQuoteType]
    unavailable: list[CarrierProblem]


def shipping_rates_type(shop) -> ShippingRates:
    return ShippingRates(
        quotes=[RateQuoteType(carrier=q.quote.carrier, service=q.quote.service, service_level=str(q.quote.service_level),
                              amount=money(q.quote.amount, q.quote.currency), transit_days=q.quote.transit_days,
                              estimated_delivery=q.quote.estimated_delivery, meets_service_level=q.meets_service_level,
                              recommended=q.recommended) for q in shop.quotes],
        unavailable=[CarrierProblem(carrier=c, code=str(e.code), message=e.message) for c, e in shop.unavailable],
    )


@strawberry.type(description="What a guest may see of a shipment: no costs, no label.")
class TrackedShipment:
    carrier: str
    tracking_number: str
    direction: ShipmentDirection = strawberry.field(description="OUTBOUND to the customer, RETURN back to us.")
    status: ShipmentStatus
    estimated_delivery: date | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    timeline: list[TrackingEventType]

    @strawberry.field
    def tracking_url(self) -> str:
        return tracking_url(self.carrier, self.tracking_number)


async def tracked_shipments(info: Info, order_id: int) -> list[TrackedShipment]:
    """Read afresh each time (two statements), not through the request's loaders: a live
    `orderTracking` subscription resolves this again after every event on one context."""
    shipments = await Shipment.filter(order_id=order_id).exclude(status="VOIDED").order_by("id")
    scans: dict[int, list] = {s.id: [] for s in shipments}
    for t in await TrackingEvent.filter(shipment_id__in=list(scans)).order_by("occurred_at", "id"):
        scans[t.shipment_id].append(_tracking(t))
    return [
        TrackedShipment(carrier=s.carrier, tracking_number=s.tracking_number, direction=s.direction, status=s.status,
                        estimated_delivery=s.estimated_delivery, shipped_at=s.shipped_at, delivered_at=s.delivered_at,
                        timeline=scans[s.id])
        for s in shipments
    ]
