"""Warehouses, sales channels and partners as GraphQL types, and who may read them.

Staff (any scope) read the whole network; a partner reads its own channels and the
warehouses they ship from; customers, guests and anonymous viewers read nothing.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import strawberry
from strawberry import relay
from strawberry.dataloader import DataLoader
from strawberry.types import Info
from tortoise.expressions import Q, Subquery

from ordergraph.auth.viewer import Viewer
from ordergraph.models import ChannelWarehouse, Partner, SalesChannel, Warehouse
from ordergraph.schema.enums import AllocationStrategy, CaptureMode, CarrierSelection, ChannelKind, StockPolicy

NOTHING = Q(id=-1)


def readable_channel_ids(viewer: Viewer) -> frozenset[int] | None:
    """None: every channel (staff); otherwise only these ids (empty: none)."""
    if viewer.is_staff:
        return None
    if viewer.is_partner:
        return viewer.channel_ids
    return frozenset()


def channel_filter(viewer: Viewer, field: str = "id") -> Q:
    """A filter on `field` (a sales channel id) selecting what the viewer may read."""
    ids = readable_channel_ids(viewer)
    if ids is None:
        return Q()
    return Q(**{f"{field}__in": list(ids)}) if ids else NOTHING


def warehouse_filter(viewer: Viewer, field: str = "id") -> Q:
    """A filter on `field` (a warehouse id): a partner reads its channels' warehouses."""
    ids = readable_channel_ids(viewer)
    if ids is None:
        return Q()
    if not ids:
        return NOTHING
    linked = ChannelWarehouse.filter(channel_id__in=list(ids)).values("warehouse_id")
    return Q(**{f"{field}__in": Subquery(linked)})


def rows_by_id(info: Info, model) -> DataLoader:
    """A request-scoped loader of `model` rows by primary key (None when missing)."""

    async def load(ids: list[int]) -> list[Any]:
        rows = {r.pk: r for r in await model.filter(pk__in=ids)}
        return [rows.get(i) for i in ids]

    return info.context.loader(f"{model.__name__}:by_id", lambda: DataLoader(load_fn=load))


def from_models(node_type):
    """A `paginate` callback turning a page of rows into `node_type` objects."""

    async def convert(rows: list[Any]) -> list[Any]:
        return [node_type.from_model(r) for r in rows]

    return convert


async def readable_rows(model, node_ids, scope: Q | None) -> list[Any]:
    """The rows for Relay node ids, None where missing or unreadable (`scope` None: none readable)."""
    ids = [int(i) for i in node_ids]
    rows = {} if scope is None else {r.id: r for r in await model.filter(scope, id__in=ids)}
    return [rows.get(i) for i in ids]


@strawberry.type
class WarehouseAddress:
    line1: str
    line2: str | None
    city: str
    region: str | None
    postal_code: str
    country: str

    @classmethod
    def from_dict(cls, a: dict[str, Any]) -> WarehouseAddress:
        return cls(
            line1=a.get("line1", ""),
            line2=a.get("line2"),
            city=a.get("city", ""),
            region=a.get("region"),
            postal_code=a.get("postal_code", ""),
            country=a.get("country", ""),
        )


@strawberry.type(name="Warehouse")
class WarehouseType(relay.Node):
    id: relay.NodeID[int]
    code: str
    name: str
    address: WarehouseAddress
    latitude: float | None
    longitude: float | None
    priority: int
    active: bool
    ship_countries: list[str]

    @classmethod
    def from_model(cls, w: Warehouse) -> WarehouseType:
        return cls(
            id=w.id,
            code=w.code,
            name=w.name,
            address=WarehouseAddress.from_dict(w.address or {}),
            latitude=w.latitude,
            longitude=w.longitude,
            priority=w.priority,
            active=w.active,
            ship_countries=list(w.ship_countries or []),
        )

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids, required: bool = False):
        rows = await readable_rows(Warehouse, node_ids, warehouse_filter(info.context.viewer))
        return [cls.from_model(w) if w else None for w in rows]


def _channel_warehouses(info: Info) -> DataLoader:
    async def load(channel_ids: list[int]) -> list[list[Warehouse]]:
        links = await ChannelWarehouse.filter(channel_id__in=channel_ids).prefetch_related("warehouse")
        by_channel: dict[int, list[Warehouse]] = defaultdict(list)
        for link in links:
            by_channel[link.channel_id].append(link.warehouse)
        return [sorted(by_channel[c], key=lambda w: (w.priority, w.id)) for c in channel_ids]

    return info.context.loader("SalesChannel:warehouses", lambda: DataLoader(load_fn=load))


@strawberry.type(name="SalesChannel")
class SalesChannelType(relay.Node):
    id: relay.NodeID[int]
    code: str
    name: str
    kind: ChannelKind
    currency: str
    allocation_strategy: AllocationStrategy
    stock_policy: StockPolicy
    capture_mode: CaptureMode
    sets_prices: bool
    active: bool
    carrier_selection: CarrierSelection
    preferred_carrier: str | None

    @classmethod
    def from_model(cls, c: SalesChannel) -> SalesChannelType:
        return cls(
            id=c.id,
            code=c.code,
            name=c.name,
            kind=c.kind,
            currency=c.currency,
            allocation_strategy=c.allocation_strategy,
            stock_policy=c.stock_policy,
            capture_mode=c.capture_mode,
            sets_prices=c.sets_prices,
            active=c.active,
            carrier_selection=c.carrier_selection,
            preferred_carrier=c.preferred_carrier,
        )

    @strawberry.field(description="The warehouses this channel ships from, in priority order.")
    async def warehouses(self, info: Info) -> list[WarehouseType]:
        return [WarehouseType.from_model(w) for w in await _channel_warehouses(info).load(self.id)]

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids, required: bool = False):
        rows = await readable_rows(SalesChannel, node_ids, channel_filter(info.context.viewer))
        return [cls.from_model(c) if c else None for c in rows]


def _partner_filter(viewer: Viewer) -> Q:
    if viewer.is_staff:
        return Q()
    if viewer.is_partner and viewer.partner_id is not None:
        return Q(id=viewer.partner_id)
    return NOTHING


@strawberry.type(name="Partner")
class PartnerType(relay.Node):
    id: relay.NodeID[int]
    code: str
    name: str
    active: bool
    channel_ids: strawberry.Private[list[int]]

    @classmethod
    def from_model(cls, p: Partner) -> PartnerType:
        return cls(id=p.id, code=p.code, name=p.name, active=p.active, channel_ids=list(p.channel_ids))

    @strawberry.field(description="The sales channels this partner may act on.")
    async def channels(self, info: Info) -> list[SalesChannelType]:
        rows = await rows_by_id(info, SalesChannel).load_many(self.channel_ids)
        return [SalesChannelType.from_model(c) for c in rows if c is not None]

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids, required: bool = False):
        rows = await readable_rows(Partner, node_ids, _partner_filter(info.context.viewer))
        return [cls.from_model(p) if p else None for p in rows]
