"""Network queries and mutations: warehouses, sales channels, partners (catalog:write changes them)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from ordergraph.models import SalesChannel, Warehouse
from ordergraph.resolvers.mutation import run_mutation
from ordergraph.schema.common import Connection, paginate
from ordergraph.schema.enums import AllocationStrategy, CaptureMode, CarrierSelection, ChannelKind, StockPolicy
from ordergraph.schema.errors import (
    IdempotencyKeyReusedError,
    InvalidInputError,
    NotAuthorizedError,
    NotFoundError,
    OperationError,
)
from ordergraph.schema.network import (
    PartnerType,
    SalesChannelType,
    WarehouseType,
    channel_filter,
    from_models,
    warehouse_filter,
)
from ordergraph.workflows import network as wf

SCOPE = "catalog:write"


@strawberry.input
class WarehouseAddressInput:
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None
    region: str | None = None


@strawberry.input
class CreateWarehouseInput:
    code: str
    name: str
    address: WarehouseAddressInput
    latitude: float | None = None
    longitude: float | None = None
    priority: int = 100
    active: bool = True
    ship_countries: list[str] = strawberry.field(default_factory=list)


@strawberry.input
class UpdateWarehouseInput:
    name: str | None = None
    address: WarehouseAddressInput | None = None
    latitude: float | None = strawberry.UNSET
    longitude: float | None = strawberry.UNSET
    priority: int | None = None
    active: bool | None = None
    ship_countries: list[str] | None = None


@strawberry.input
class CreateSalesChannelInput:
    code: str
    name: str
    kind: ChannelKind
    currency: str
    allocation_strategy: AllocationStrategy = AllocationStrategy.PRIORITY
    stock_policy: StockPolicy = StockPolicy.REJECT
    capture_mode: CaptureMode = CaptureMode.ON_SHIPMENT
    sets_prices: bool = False
    active: bool = True
    warehouses: list[str] = strawberry.field(default_factory=list, description="warehouse codes")
    carrier_selection: CarrierSelection = CarrierSelection.CHEAPEST
    preferred_carrier: str | None = None


@strawberry.input
class UpdateSalesChannelInput:
    name: str | None = None
    kind: ChannelKind | None = None
    currency: str | None = None
    allocation_strategy: AllocationStrategy | None = None
    stock_policy: StockPolicy | None = None
    capture_mode: CaptureMode | None = None
    sets_prices: bool | None = None
    active: bool | None = None
    warehouses: list[str] | None = strawberry.field(default=None, description="replaces the links")
    carrier_selection: CarrierSelection | None = None
    preferred_carrier: str | None = None


@strawberry.input
class CreatePartnerInput:
    code: str
    name: str
    channels: list[str] = strawberry.field(default_factory=list, description="sales channel codes")


@strawberry.type
class WarehousePayload:
    warehouse: WarehouseType


@strawberry.type
class SalesChannelPayload:
    sales_channel: SalesChannelType


@strawberry.type
class PartnerPayload:
    partner: PartnerType


_ERRORS = InvalidInputError | NotFoundError | NotAuthorizedError | IdempotencyKeyReusedError | OperationError
WarehouseResult = Annotated[WarehousePayload | _ERRORS, strawberry.union("WarehouseResult")]
SalesChannelResult = Annotated[SalesChannelPayload | _ERRORS, strawberry.union("SalesChannelResult")]
PartnerResult = Annotated[PartnerPayload | _ERRORS, strawberry.union("PartnerResult")]


def _address(a: WarehouseAddressInput) -> dict[str, Any]:
    return {k: v for k, v in vars(a).items() if v is not None}


def _set_fields(input: Any, renames: dict[str, str] | None = None) -> dict[str, Any]:
    """The fields a client set. None means "leave as is", except on fields whose default is
    UNSET (nullable columns), where an explicit null clears the value."""
    renames = renames or {}
    fields = type(input).__dataclass_fields__
    out = {}
    for k, v in vars(input).items():
        if v is strawberry.UNSET or (v is None and fields[k].default is not strawberry.UNSET):
            continue
        out[renames.get(k, k)] = v
    return out


@strawberry.type
class NetworkQuery:
    @strawberry.field
    async def warehouses(
        self, info: Info, first: int | None = None, after: str | None = None, active: bool | None = None
    ) -> Connection[WarehouseType]:
        qs = Warehouse.filter(warehouse_filter(info.context.viewer)).order_by("priority", "id")
        if active is not None:
            qs = qs.filter(active=active)
        return await paginate(info, qs, first, after, from_models(WarehouseType))

    @strawberry.field
    async def warehouse(self, info: Info, code: str) -> WarehouseType | None:
        w = await Warehouse.filter(warehouse_filter(info.context.viewer), code=code).first()
        return WarehouseType.from_model(w) if w else None

    @strawberry.field
    async def sales_channels(
        self, info: Info, first: int | None = None, after: str | None = None, active: bool | None = None
    ) -> Connection[SalesChannelType]:
        qs = SalesChannel.filter(channel_filter(info.context.viewer)).order_by("id")
        if active is not None:
            qs = qs.filter(active=active)
        return await paginate(info, qs, first, after, from_models(SalesChannelType))

    @strawberry.field
    async def sales_channel(self, info: Info, code: str) -> SalesChannelType | None:
        c = await SalesChannel.filter(channel_filter(info.context.viewer), code=code).first()
        return SalesChannelType.from_model(c) if c else None


@strawberry.type
class NetworkMutation:
    @strawberry.mutation
    async def create_warehouse(
        self, info: Info, input: CreateWarehouseInput, idempotency_key: str | None = None
    ) -> WarehouseResult:
        spec = wf.WarehouseSpec(**{**vars(input), "address": _address(input.address)})
        return await run_mutation(
            info, "createWarehouse", idempotency_key, {"input": input},
            lambda: wf.create_warehouse(spec, info.context.viewer.actor),
            lambda w: WarehousePayload(warehouse=WarehouseType.from_model(w)),
            scope=SCOPE,
        )

    @strawberry.mutation
    async def update_warehouse(
        self, info: Info, code: str, input: UpdateWarehouseInput, idempotency_key: str | None = None
    ) -> WarehouseResult:
        changes = _set_fields(input)
        if input.address is not None:
            changes["address"] = _address(input.address)
        return await run_mutation(
            info, "updateWarehouse", idempotency_key, {"code": code, "input": input},
            lambda: wf.update_warehouse(code, changes, info.context.viewer.actor),
            lambda w: WarehousePayload(warehouse=WarehouseType.from_model(w)),
            scope=SCOPE,
        )

    @strawberry.mutation
    async def create_sales_channel(
        self, info: Info, input: CreateSalesChannelInput, idempotency_key: str | None = None
    ) -> SalesChannelResult:
        spec = wf.ChannelSpec(**_set_fields(input, {"warehouses": "warehouse_codes"}))
        return await run_mutation(
            info, "createSalesChannel", idempotency_key, {"input": input},
            lambda: wf.create_channel(spec, info.context.viewer.actor),
            lambda c: SalesChannelPayload(sales_channel=SalesChannelType.from_model(c)),
            scope=SCOPE,
        )

    @strawberry.mutation
    async def update_sales_channel(
        self, info: Info, code: str, input: UpdateSalesChannelInput, idempotency_key: str | None = None
    ) -> SalesChannelResult:
        changes = _set_fields(input, {"warehouses": "warehouse_codes"})
        return await run_mutation(
            info, "updateSalesChannel", idempotency_key, {"code": code, "input": input},
            lambda: wf.update_channel(code, changes, info.context.viewer.actor),
            lambda c: SalesChannelPayload(sales_channel=SalesChannelType.from_model(c)),
            scope=SCOPE,
        )

    @strawberry.mutation
    async def create_partner(
        self, info: Info, input: CreatePartnerInput, idempotency_key: str | None = None
    ) -> PartnerResult:
        return await run_mutation(
            info, "createPartner", idempotency_key, {"input": input},
            lambda: wf.create_partner(input.code, input.name, input.channels, info.context.viewer.actor),
            lambda p: PartnerPayload(partner=PartnerType.from_model(p)),
            scope=SCOPE,
        )
