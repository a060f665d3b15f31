"""Network use cases: warehouses, sales channels and partners.

Validation reports every bad field at once and nothing is written when it fails. Each
change records one event ("Warehouse", "SalesChannel" or "Partner") in its transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tortoise.exceptions import IntegrityError

from ordergraph.db import transaction
from ordergraph.models import ChannelWarehouse, Partner, SalesChannel, Warehouse
from ordergraph.models.enums import AllocationStrategy, CaptureMode, CarrierSelection, ChannelKind, StockPolicy
from ordergraph.workflows.errors import DomainError, ErrorCode, Problems, ValidationFailed
from ordergraph.workflows.events import record_event
from ordergraph.workflows.validation import COUNTRIES, CURRENCIES

CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
# Partner codes are slugs that also name the partner's principal ("partner:acme-market").
PARTNER_CODE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$|^[A-Z0-9][A-Z0-9_-]{0,31}$")
ADDRESS_FIELDS = ("line1", "line2", "city", "region", "postal_code", "country")
WAREHOUSE_ADDRESS_REQUIRED = ("line1", "city", "postal_code", "country")
_CAMEL = {"postal_code": "postalCode"}


@dataclass
class WarehouseSpec:
    code: str
    name: str
    address: dict[str, str]
    latitude: float | None = None
    longitude: float | None = None
    priority: int = 100
    active: bool = True
    ship_countries: list[str] = field(default_factory=list)


@dataclass
class ChannelSpec:
    code: str
    name: str
    kind: ChannelKind
    currency: str
    allocation_strategy: AllocationStrategy = AllocationStrategy.PRIORITY
    stock_policy: StockPolicy = StockPolicy.REJECT
    capture_mode: CaptureMode = CaptureMode.ON_SHIPMENT
    sets_prices: bool = False
    active: bool = True
    warehouse_codes: list[str] = field(default_factory=list)
    carrier_selection: CarrierSelection = CarrierSelection.CHEAPEST
    preferred_carrier: str | None = None


def _check_code(code: str, problems: Problems, pattern: re.Pattern = CODE_PATTERN) -> None:
    if not pattern.match(code):
        letters = "a-z or A-Z (not mixed)" if pattern is PARTNER_CODE_PATTERN else "A-Z"
        problems.add(
            ErrorCode.INVALID_VALUE, f"code must be 1 to 32 of {letters}, 0-9, '_' and '-'", "code"
        )


def _check_name(name: str, problems: Problems) -> None:
    if not name.strip() or len(name) > 200:
        problems.add(ErrorCode.REQUIRED, "name is required (at most 200 characters)", "name")


def _check_warehouse(spec: WarehouseSpec, problems: Problems) -> None:
    _check_name(spec.name, problems)
    unknown = sorted(set(spec.address) - set(ADDRESS_FIELDS))
    if unknown:
        problems.add(ErrorCode.INVALID_VALUE, f"unknown address fields: {', '.join(unknown)}", "address")
    for key in WAREHOUSE_ADDRESS_REQUIRED:
        if not str(spec.address.get(key) or "").strip():
            problems.add(ErrorCode.INCOMPLETE_ADDRESS, f"address {key} is required", "address", _CAMEL.get(key, key))
    country = spec.address.get("country")
    if country and country not in COUNTRIES:
        problems.add(ErrorCode.UNKNOWN_COUNTRY, f"unknown country {country}", "address", "country")
    if spec.latitude is not None and not -90 <= spec.latitude <= 90:
        problems.add(ErrorCode.INVALID_VALUE, "latitude must be between -90 and 90", "latitude")
    if spec.longitude is not None and not -180 <= spec.longitude <= 180:
        problems.add(ErrorCode.INVALID_VALUE, "longitude must be between -180 and 180", "longitude")
    if (spec.latitude is None) != (spec.longitude is None):
        problems.add(ErrorCode.INVALID_VALUE, "give both latitude and longitude, or neither", "latitude")
    if not 0 <= spec.priority <= 1_000_000:
        problems.add(ErrorCode.INVALID_VALUE, "priority must be between 0 and 1000000", "priority")
    for i, c in enumerate(spec.ship_countries):
        if c not in COUNTRIES:
            problems.add(ErrorCode.UNKNOWN_COUNTRY, f"unknown country {c}", "shipCountries", i)
    if len(set(spec.ship_countries)) != len(spec.ship_countries):
        problems.add(ErrorCode.INVALID_VALUE, "ship countries repeat", "shipCountries")


async def _check_unique_code(model, code: str, problems: Problems, exclude_id: int | None = None) -> None:
    qs = model.filter(code=code)
    if exclude_id is not None:
        qs = qs.exclude(id=exclude_id)
    if await qs.exists():
        problems.add(ErrorCode.ALREADY_EXISTS, f"code {code} already exists", "code")


def _code_taken(code: str) -> ValidationFailed:
    """A concurrent create won the unique code between our check and our insert."""
    return ValidationFailed([DomainError(ErrorCode.ALREADY_EXISTS, f"code {code} already exists", ["code"])])


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in after.items() if before.get(k) != v}


def _values(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in fields}


async def _by_code(model, code: str, label: str):
    row = await model.get_or_none(code=code)
    if row is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no {label} with code {code}", ["code"])
    return row


def _merged(row: Any, spec_cls, fields: tuple[str, ...], changes: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The row's current values, and a spec of the row with `changes` applied (for validation)."""
    before = _values(row, fields)
    return before, spec_cls(code=row.code, **{**before, **{k: v for k, v in changes.items() if k in fields}})


# ---------------------------------------------------------------- warehouses

WAREHOUSE_FIELDS = ("name", "address", "latitude", "longitude", "priority", "active", "ship_countries")


async def create_warehouse(spec: WarehouseSpec, actor: str) -> Warehouse:
    spec.address = {k: v for k, v in spec.address.items() if v is not None}
    problems = Problems()
    _check_code(spec.code, problems)
    _check_warehouse(spec, problems)
    await _check_unique_code(Warehouse, spec.code, problems)
    problems.raise_if_any()
    values = _values(spec, WAREHOUSE_FIELDS)
    values["name"] = spec.name.strip()
    try:
        async with transaction():
            w = await Warehouse.create(code=spec.code, **values)
            await record_event("Warehouse", w.id, "WAREHOUSE_CREATED", actor, {"code": w.code, **values})
    except IntegrityError:
        raise _code_taken(spec.code) from None
    return w


async def update_warehouse(code: str, changes: dict[str, Any], actor: str) -> Warehouse:
    """`changes` holds the fields to set (see WAREHOUSE_FIELDS); `address` replaces the whole address."""
    w = await _by_code(Warehouse, code, "warehouse")
    before, merged = _merged(w, WarehouseSpec, WAREHOUSE_FIELDS, changes)
    merged.address = {k: v for k, v in merged.address.items() if v is not None}
    problems = Problems()
    _check_warehouse(merged, problems)
    problems.raise_if_any()
    after = _values(merged, WAREHOUSE_FIELDS)
    after["name"] = merged.name.strip()
    diff = _changed(before, after)
    if not diff:
        return w
    async with transaction():
        await Warehouse.filter(id=w.id).update(**diff)
        await record_event("Warehouse", w.id, "WAREHOUSE_UPDATED", actor, {"code": code, **diff})
    await w.refresh_from_db()
    return w


# ---------------------------------------------------------------- sales channels

CHANNEL_FIELDS = ("name", "kind", "currency", "allocation_strategy", "stock_policy", "capture_mode", "sets_prices", "active",
                  "carrier_selection", "preferred_carrier")


async def _warehouse_ids(codes: list[str], problems: Problems) -> list[int]:
    found = {w.code: w.id for w in await Warehouse.filter(code__in=codes)}
    for i, c in enumerate(codes):
        if c not in found:
            problems.add(ErrorCode.NOT_FOUND, f"no warehouse with code {c}", "warehouses", i)
    if len(set(codes)) != len(codes):
        problems.add(ErrorCode.INVALID_VALUE, "warehouse codes repeat", "warehouses")
    return [found[c] for c in dict.fromkeys(codes) if c in found]


def _check_channel(spec: ChannelSpec, problems: Problems) -> None:
    _check_name(spec.name, problems)
    if spec.currency not in CURRENCIES:
        problems.add(ErrorCode.INVALID_VALUE, f"unknown currency {spec.currency}", "currency")
    if spec.preferred_carrier is not None:
        from ordergraph.integrations.carriers import available_carriers  # noqa: PLC0415

        codes = sorted(c.code for c in available_carriers())
        if spec.preferred_carrier not in codes:
            problems.add(ErrorCode.UNKNOWN_CARRIER, f"no carrier {spec.preferred_carrier!r}; offered: {', '.join(codes)}",
                         "preferredCarrier")
    if spec.carrier_selection is CarrierSelection.PREFERRED and not spec.preferred_carrier:
        problems.add(ErrorCode.REQUIRED, "carrier selection PREFERRED needs a preferred carrier", "preferredCarrier")


async def _link_warehouses(channel: SalesChannel, warehouse_ids: list[int]) -> None:
    await ChannelWarehouse.filter(channel_id=channel.id).exclude(warehouse_id__in=warehouse_ids).delete()
    linked = set(await ChannelWarehouse.filter(channel_id=channel.id).values_list("warehouse_id", flat=True))
    for wid in warehouse_ids:
        if wid not in linked:
            await ChannelWarehouse.create(channel_id=channel.id, warehouse_id=wid)


async def channel_warehouse_codes(channel_id: int) -> list[str]:
    """The codes of the warehouses a channel ships from, in allocation priority order."""
    rows = await Warehouse.filter(channel_links__channel_id=channel_id).order_by("priority", "id")
    return [w.code for w in rows]


async def create_channel(spec: ChannelSpec, actor: str) -> SalesChannel:
    problems = Problems()
    _check_code(spec.code, problems)
    _check_channel(spec, problems)
    await _check_unique_code(SalesChannel, spec.code, problems)
    warehouse_ids = await _warehouse_ids(spec.warehouse_codes, problems)
    problems.raise_if_any()
    values = _values(spec, CHANNEL_FIELDS)
    values["name"] = spec.name.strip()
    try:
        async with transaction():
            channel = await SalesChannel.create(code=spec.code, **values)
            await _link_warehouses(channel, warehouse_ids)
            await record_event(
                "SalesChannel", channel.id, "SALES_CHANNEL_CREATED", actor,
                {"code": channel.code, **values, "warehouses": list(dict.fromkeys(spec.warehouse_codes))},
            )
    except IntegrityError:
        raise _code_taken(spec.code) from None
    return channel


async def update_channel(code: str, changes: dict[str, Any], actor: str) -> SalesChannel:
    """`changes` holds fields of CHANNEL_FIELDS and optionally `warehouse_codes` (replaces the links)."""
    channel = await _by_code(SalesChannel, code, "sales channel")
    before, merged = _merged(channel, ChannelSpec, CHANNEL_FIELDS, changes)
    problems = Problems()
    _check_channel(merged, problems)
    codes = changes.get("warehouse_codes")
    warehouse_ids = await _warehouse_ids(codes, problems) if codes is not None else None
    problems.raise_if_any()
    after = _values(merged, CHANNEL_FIELDS)
    after["name"] = merged.name.strip()
    diff = _changed(before, after)
    old_codes = await channel_warehouse_codes(channel.id)
    if codes is not None and sorted(set(codes)) != sorted(old_codes):
        diff["warehouses"] = list(dict.fromkeys(codes))
    if not diff:
        return channel
    async with transaction():
        columns = {k: v for k, v in diff.items() if k in CHANNEL_FIELDS}
        if columns:
            await SalesChannel.filter(id=channel.id).update(**columns)
        if warehouse_ids is not None:
            await _link_warehouses(channel, warehouse_ids)
        await record_event("SalesChannel", channel.id, "SALES_CHANNEL_UPDATED", actor, {"code": code, **diff})
    await channel.refresh_from_db()
    return channel


# ---------------------------------------------------------------- partners


async def create_partner(code: str, name: str, channel_codes: list[str], actor: str) -> Partner:
    problems = Problems()
    _check_code(code, problems, PARTNER_CODE_PATTERN)
    _check_name(name, problems)
    await _check_unique_code(Partner, code, problems)
    found = {c.code: c.id for c in await SalesChannel.filter(code__in=channel_codes)}
    for i, c in enumerate(channel_codes):
        if c not in found:
            problems.add(ErrorCode.UNKNOWN_CHANNEL, f"no sales channel with code {c}", "channels", i)
    problems.raise_if_any()
    channel_ids = sorted({found[c] for c in channel_codes})
    try:
        async with transaction():
            partner = await Partner.create(code=code, name=name.strip(), channel_ids=channel_ids)
            await record_event(
                "Partner", partner.id, "PARTNER_CREATED", actor,
                {"code": code, "name": partner.name, "channels": sorted(set(channel_codes))},
            )
    except IntegrityError:
        raise _code_taken(code) from None
    return partner
