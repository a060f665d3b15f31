"""Inventory queries and mutations: levels, the ledger, stock changes and reservations.

Reads need inventory:read (a partner's are limited to its channels). Stock changes need
inventory:write; reservations need orders:write, and a partner may only use its channels.
"""

from __future__ import annotations

from typing import Annotated

import strawberry
from graphql import GraphQLError
from strawberry.types import Info
from tortoise.expressions import F, Q

from ordergraph.models import InventoryLevel, Reservation, StockMovement
from ordergraph.resolvers.mutation import run_mutation
from ordergraph.schema.common import Connection, paginate
from ordergraph.schema.enums import MovementKind, ReservationStatus
from ordergraph.schema.errors import (
    IdempotencyKeyReusedError,
    InsufficientStockError,
    InvalidInputError,
    InvalidTransitionError,
    NotAuthorizedError,
    OperationError,
)
from ordergraph.schema.inventory import (
    InventoryLevelType,
    ReservationType,
    StockMovementType,
    inventory_filter,
    movement_types,
    reservation_filter,
)
from ordergraph.schema.network import from_models
from ordergraph.workflows import inventory as wf
from ordergraph.workflows import reservations as rwf

WRITE = "inventory:write"


@strawberry.input
class ReceiveStockInput:
    warehouse: str
    sku: str
    quantity: int
    reason: str = ""
    reference: str = ""


@strawberry.input
class AdjustStockInput:
    warehouse: str
    sku: str
    delta: int = strawberry.field(description="Signed change of on hand (counted correction).")
    reason: str


@strawberry.input
class TransferStockInput:
    from_warehouse: str
    to_warehouse: str
    sku: str
    quantity: int
    reason: str = ""


@strawberry.input
class StockPolicyInput:
    warehouse: str
    sku: str
    safety_stock: int
    reorder_point: int
    bin_location: str | None = strawberry.field(default=None, description="Unchanged when not given.")


@strawberry.input
class ReserveLineInput:
    sku: str
    quantity: int


@strawberry.input
class ReserveStockInput:
    channel: str
    lines: list[ReserveLineInput]
    cart_reference: str = ""
    ttl_seconds: int | None = strawberry.field(default=None, description="Default: the server's reservation TTL.")


@strawberry.type
class StockChangePayload:
    movements: list[StockMovementType] = strawberry.field(description="The ledger rows written.")
    levels: list[InventoryLevelType] = strawberry.field(description="The levels changed, as they are now.")


@strawberry.type
class ReservationPayload:
    reservation: ReservationType


_COMMON = InvalidInputError | InsufficientStockError | NotAuthorizedError | IdempotencyKeyReusedError | OperationError
StockChangeResult = Annotated[StockChangePayload | _COMMON, strawberry.union("StockChangeResult")]
ReservationResult = Annotated[
    ReservationPayload | InvalidTransitionError | _COMMON, strawberry.union("ReservationResult")
]


def _readable(info: Info, scope: Q | None) -> Q:
    if scope is None:
        raise GraphQLError("this field needs the inventory:read scope", extensions={"code": "FORBIDDEN"})
    return scope


async def _stock_change(info: Info, movements) -> StockChangePayload:
    keys = list(dict.fromkeys((m.warehouse_id, m.variant_id) for m in movements))
    where = Q(*(Q(warehouse_id=w, variant_id=v) for w, v in keys), join_type=Q.OR)
    levels = {(lvl.warehouse_id, lvl.variant_id): lvl for lvl in await InventoryLevel.filter(where)}
    return StockChangePayload(
        movements=await movement_types(info, list(movements)),
        levels=[InventoryLevelType.from_model(levels[k]) for k in keys],
    )


def _channels_for(info: Info) -> frozenset[int] | None:
    """Staff may reserve on any channel; a partner only on its own."""
    viewer = info.context.viewer
    return None if viewer.is_staff else viewer.channel_ids


@strawberry.type
class InventoryQuery:
    @strawberry.field
    async def inventory_levels(
        self,
        info: Info,
        sku: str | None = None,
        warehouse: str | None = None,
        below_reorder_point: bool | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[InventoryLevelType]:
        qs = InventoryLevel.filter(_readable(info, inventory_filter(info.context.viewer))).order_by("id")
        if sku is not None:
            qs = qs.filter(variant__sku=sku)
        if warehouse is not None:
            qs = qs.filter(warehouse__code=warehouse)
        if below_reorder_point is not None:
            qs = qs.annotate(avail=F("on_hand") - F("allocated") - F("reserved") - F("safety_stock"))
            low = Q(reorder_point__gt=0, avail__lte=F("reorder_point"))
            qs = qs.filter(low if below_reorder_point else Q(reorder_point=0) | Q(avail__gt=F("reorder_point")))
        return await paginate(info, qs, first, after, from_models(InventoryLevelType))

    @strawberry.field(description="The inventory ledger, newest first.")
    async def stock_movements(
        self,
        info: Info,
        sku: str | None = None,
        warehouse: str | None = None,
        kind: MovementKind | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[StockMovementType]:
        qs = StockMovement.filter(_readable(info, inventory_filter(info.context.viewer))).order_by("-id")
        if sku is not None:
            qs = qs.filter(variant__sku=sku)
        if warehouse is not None:
            qs = qs.filter(warehouse__code=warehouse)
        if kind is not None:
            qs = qs.filter(kind=kind)
        return await paginate(info, qs, first, after, lambda rows: movement_types(info, rows))

    @strawberry.field(description="Checkout reservations, newest first.")
    async def reservations(
        self, info: Info, status: ReservationStatus | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[ReservationType]:
        qs = Reservation.filter(_readable(info, reservation_filter(info.context.viewer))).order_by("-id")
        if status is not None:
            qs = qs.filter(status=status)
        return await paginate(info, qs, first, after, from_models(ReservationType))

    @strawberry.field
    async def reservation(self, info: Info, token: str) -> ReservationType | None:
        r = await Reservation.filter(_readable(info, reservation_filter(info.context.viewer)), token=token).first()
        return ReservationType.from_model(r) if r else None


async def _change_stock(info: Info, operation: str, key: str | None, input, action) -> StockChangeResult:
    return await run_mutation(
        info, operation, key, {"input": input}, action, lambda rows: _stock_change(info, rows), scope=WRITE
    )


@strawberry.type
class InventoryMutation:
    @strawberry.mutation
    async def receive_stock(
        self, info: Info, input: ReceiveStockInput, idempotency_key: str | None = None
    ) -> StockChangeResult:
        i, actor = input, info.context.viewer.actor
        return await _change_stock(info, "receiveStock", idempotency_key, i, lambda: wf.receive_stock(
            i.warehouse, i.sku, i.quantity, i.reason, i.reference, actor))

    @strawberry.mutation
    async def adjust_stock(
        self, info: Info, input: AdjustStockInput, idempotency_key: str | None = None
    ) -> StockChangeResult:
        i, actor = input, info.context.viewer.actor
        return await _change_stock(info, "adjustStock", idempotency_key, i, lambda: wf.adjust_stock(
            i.warehouse, i.sku, i.delta, i.reason, actor))

    @strawberry.mutation
    async def transfer_stock(
        self, info: Info, input: TransferStockInput, idempotency_key: str | None = None
    ) -> StockChangeResult:
        i, actor = input, info.context.viewer.actor
        return await _change_stock(info, "transferStock", idempotency_key, i, lambda: wf.transfer_stock(
            i.from_warehouse, i.to_warehouse, i.sku, i.quantity, i.reason, actor))

    @strawberry.mutation
    async def set_stock_policy(
        self, info: Info, input: StockPolicyInput, idempotency_key: str | None = None
    ) -> StockChangeResult:
        i, actor = input, info.context.viewer.actor
        return await _change_stock(info, "setStockPolicy", idempotency_key, i, lambda: wf.set_stock_policy(
            i.warehouse, i.sku, i.safety_stock, i.reorder_point, actor, bin_location=i.bin_location))

    @strawberry.mutation
    async def reserve_stock(
        self, info: Info, input: ReserveStockInput, idempotency_key: str | None = None
    ) -> ReservationResult:
        i, viewer = input, info.context.viewer
        ttl = i.ttl_seconds if i.ttl_seconds is not None else info.context.settings.reservation_ttl_seconds
        return await run_mutation(
            info, "reserveStock", idempotency_key, {"input": i},
            lambda: rwf.reserve_stock(
                i.channel, [(ln.sku, ln.quantity) for ln in i.lines], i.cart_reference,
                owner=viewer.principal, actor=viewer.actor, ttl_seconds=ttl, allowed_channel_ids=_channels_for(info),
            ),
            lambda r: ReservationPayload(reservation=ReservationType.from_model(r)),
            scope="orders:write",
        )

    @strawberry.mutation
    async def release_reservation(
        self, info: Info, token: str, idempotency_key: str | None = None
    ) -> ReservationResult:
        actor = info.context.viewer.actor
        return await run_mutation(
            info, "releaseReservation", idempotency_key, {"token": token},
            lambda: rwf.release_reservation(token, actor, allowed_channel_ids=_channels_for(info)),
            lambda r: ReservationPayload(reservation=ReservationType.from_model(r)),
            scope="orders:write",
        )
