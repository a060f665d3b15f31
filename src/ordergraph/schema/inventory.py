"""Inventory levels, the stock ledger and reservations as GraphQL types.

Readers need the inventory:read scope: staff see everything, a partner sees the levels and
movements of its channels' warehouses and the reservations on its channels.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.dataloader import DataLoader
from strawberry.types import Info
from tortoise.expressions import Q

from ordergraph.auth.viewer import Viewer
from ordergraph.models import (
    InventoryLevel,
    ProductVariant,
    Reservation,
    ReservationLine,
    SalesChannel,
    StockMovement,
    Warehouse,
)
from ordergraph.schema.catalog import ProductVariantType
from ordergraph.schema.enums import MovementKind, ReservationStatus
from ordergraph.schema.network import (
    SalesChannelType,
    WarehouseType,
    channel_filter,
    readable_rows,
    rows_by_id,
    warehouse_filter,
)

READ_SCOPE = "inventory:read"


def inventory_filter(viewer: Viewer, warehouse_field: str = "warehouse_id") -> Q | None:
    """Rows of inventory the viewer may read, or None when it may read none at all."""
    if not (viewer.is_staff or viewer.is_partner) or not viewer.has_scope(READ_SCOPE):
        return None
    return warehouse_filter(viewer, warehouse_field)


def reservation_filter(viewer: Viewer) -> Q | None:
    if not (viewer.is_staff or viewer.is_partner) or not viewer.has_scope(READ_SCOPE):
        return None
    return channel_filter(viewer, "channel_id")


@strawberry.type(name="InventoryLevel")
class InventoryLevelType(relay.Node):
    id: relay.NodeID[int]
    on_hand: int
    allocated: int
    reserved: int
    safety_stock: int
    reorder_point: int
    bin_location: str = strawberry.field(description="Where pickers find it (aisle-rack-shelf); pick lists walk in this order.")
    available: int = strawberry.field(description="What may still be promised: onHand − allocated − reserved − safetyStock.")
    below_reorder_point: bool = strawberry.field(description="A reorder point is set and available has reached it.")
    updated_at: datetime
    warehouse_id: strawberry.Private[int]
    variant_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, lvl: InventoryLevel) -> InventoryLevelType:
        return cls(
            id=lvl.id,
            on_hand=lvl.on_hand,
            allocated=lvl.allocated,
            reserved=lvl.reserved,
            safety_stock=lvl.safety_stock,
            reorder_point=lvl.reorder_point,
            bin_location=lvl.bin_location,
            available=lvl.available,
            below_reorder_point=lvl.reorder_point > 0 and lvl.available <= lvl.reorder_point,
            updated_at=lvl.updated_at,
            warehouse_id=lvl.warehouse_id,
            variant_id=lvl.variant_id,
        )

    @strawberry.field
    async def warehouse(self, info: Info) -> WarehouseType:
        return WarehouseType.from_model(await rows_by_id(info, Warehouse).load(self.warehouse_id))

    @strawberry.field
    async def variant(self, info: Info) -> ProductVariantType:
        return ProductVariantType.from_model(await rows_by_id(info, ProductVariant).load(self.variant_id))

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids, required: bool = False):
        rows = await readable_rows(InventoryLevel, node_ids, inventory_filter(info.context.viewer))
        return [cls.from_model(r) if r else None for r in rows]


@strawberry.type(name="StockMovement", description="One row of the inventory ledger.")
class StockMovementType:
    id: strawberry.ID
    kind: MovementKind
    quantity: int
    on_hand_after: int
    allocated_after: int
    reserved_after: int
    reason: str
    reference: str
    actor: str
    created_at: datetime
    warehouse_code: str
    sku: str


async def movement_types(info: Info, rows: list[StockMovement]) -> list[StockMovementType]:
    """Ledger rows with their warehouse codes and SKUs (one query each, whatever the count)."""
    warehouses = await rows_by_id(info, Warehouse).load_many([m.warehouse_id for m in rows])
    variants = await rows_by_id(info, ProductVariant).load_many([m.variant_id for m in rows])
    return [
        StockMovementType(
            id=strawberry.ID(str(m.id)),
            kind=m.kind,
            quantity=m.quantity,
            on_hand_after=m.on_hand_after,
            allocated_after=m.allocated_after,
            reserved_after=m.reserved_after,
            reason=m.reason,
            reference=m.reference,
            actor=m.actor,
            created_at=m.created_at,
            warehouse_code=w.code,
            sku=v.sku,
        )
        for m, w, v in zip(rows, warehouses, variants, strict=True)
    ]


@strawberry.type(name="ReservationLine")
class ReservationLineType:
    warehouse_code: str
    sku: str
    quantity: int


def _reservation_lines(info: Info) -> DataLoader:
    async def load(reservation_ids: list[int]) -> list[list[ReservationLineType]]:
        rows = await ReservationLine.filter(reservation_id__in=reservation_ids).order_by("id").values(
            "reservation_id", "quantity", warehouse_code="warehouse__code", sku="variant__sku"
        )
        by_reservation = defaultdict(list)
        for r in rows:
            by_reservation[r["reservation_id"]].append(
                ReservationLineType(warehouse_code=r["warehouse_code"], sku=r["sku"], quantity=r["quantity"])
            )
        return [by_reservation[i] for i in reservation_ids]

    return info.context.loader("Reservation:lines", lambda: DataLoader(load_fn=load))


@strawberry.type(name="Reservation", description="Stock held for a cart until it expires or an order consumes it.")
class ReservationType(relay.Node):
    id: relay.NodeID[int]
    token: str
    status: ReservationStatus
    expires_at: datetime
    cart_reference: str
    created_at: datetime
    channel_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, r: Reservation) -> ReservationType:
        return cls(
            id=r.id,
            token=r.token,
            status=r.status,
            expires_at=r.expires_at,
            cart_reference=r.cart_reference,
            created_at=r.created_at,
            channel_id=r.channel_id,
        )

    @strawberry.field
    async def channel(self, info: Info) -> SalesChannelType:
        return SalesChannelType.from_model(await rows_by_id(info, SalesChannel).load(self.channel_id))

    @strawberry.field
    async def lines(self, info: Info) -> list[ReservationLineType]:
        return await _reservation_lines(info).load(self.id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids, required: bool = False):
        rows = await readable_rows(Reservation, node_ids, reservation_filter(info.context.viewer))
        return [cls.from_model(r) if r else None for r in rows]
