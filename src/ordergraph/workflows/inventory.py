"""Inventory use cases: receipts, adjustments, transfers and stock policy.

Every quantity changes through `stock.move` (one conditional UPDATE plus a ledger row) inside
one transaction; the rows involved are locked in id order first, like allocation does, so
concurrent callers never deadlock. A refused change writes nothing. After a change that makes
a variant more available commits, backordered orders get their chance (`on_stock_increased`).

Stock policy (safety stock, reorder point) is not a quantity: `set_stock_policy` sets the two
columns and writes a POLICY ledger row with quantity 0 (the row's *_after columns snapshot the
level), plus a STOCK_POLICY_CHANGED event, and LOW_STOCK when the new policy crosses the
reorder point.

"Available" is what may still be promised: on_hand − allocated − reserved − safety_stock.
A transfer may only move available units (it never dips into safety stock); an adjustment
may lower on_hand into safety stock but never below allocated + reserved.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from ordergraph.db import transaction
from ordergraph.models import InventoryLevel, ProductVariant, StockMovement, Warehouse
from ordergraph.models.enums import MovementKind
from ordergraph.workflows.allocation import lock_levels
from ordergraph.workflows.backorders import on_stock_increased
from ordergraph.workflows.errors import DomainError, ErrorCode, Problems
from ordergraph.workflows.events import record_event
from ordergraph.workflows.stock import StockConflict, level_for, move

MAX_QUANTITY = 1_000_000
MAX_REASON = 500


@dataclass
class Target:
    warehouse: Warehouse
    variant: ProductVariant


async def _warehouse(code: str, problems: Problems, field: str = "warehouse") -> Warehouse | None:
    w = await Warehouse.get_or_none(code=code)
    if w is None:
        problems.add(ErrorCode.NOT_FOUND, f"no warehouse with code {code}", field)
    return w


async def _variant(sku: str, problems: Problems) -> ProductVariant | None:
    v = await ProductVariant.get_or_none(sku=sku)
    if v is None:
        problems.add(ErrorCode.UNKNOWN_SKU, f"no variant with SKU {sku}", "sku")
    return v


def _check_quantity(value: int, problems: Problems, field: str, *, allow_negative: bool = False) -> None:
    low = -MAX_QUANTITY if allow_negative else 1
    if not low <= value <= MAX_QUANTITY or value == 0:
        what = f"a non-zero whole number between {low} and {MAX_QUANTITY}" if allow_negative else f"between 1 and {MAX_QUANTITY}"
        problems.add(ErrorCode.QUANTITY_OUT_OF_RANGE, f"{field} must be {what}", field)


def _check_reason(reason: str, problems: Problems, *, required: bool) -> None:
    if required and not reason.strip():
        problems.add(ErrorCode.REQUIRED, "a reason is required", "reason")
    if len(reason) > MAX_REASON:
        problems.add(ErrorCode.INVALID_VALUE, f"reason is longer than {MAX_REASON}", "reason")


async def _target(warehouse_code: str, sku: str, problems: Problems) -> Target | None:
    w = await _warehouse(warehouse_code, problems)
    v = await _variant(sku, problems)
    return Target(w, v) if w and v else None


async def _locked(warehouse_ids: list[int], variant_id: int, create: bool) -> dict[int, InventoryLevel]:
    """The levels of `variant_id` in these warehouses, locked in id order (created if asked)."""
    if create:
        for wid in warehouse_ids:
            await level_for(wid, variant_id, create=True)
    levels = await lock_levels(warehouse_ids, [variant_id])
    return {wid: lvl for (wid, _), lvl in levels.items()}


async def receive_stock(
    warehouse_code: str, sku: str, quantity: int, reason: str, reference: str, actor: str
) -> tuple[StockMovement]:
    """Units arrived in a warehouse (creates the level if missing): one RECEIPT row."""
    problems = Problems()
    target = await _target(warehouse_code, sku, problems)
    _check_quantity(quantity, problems, "quantity")
    _check_reason(reason, problems, required=False)
    if len(reference) > 100:
        problems.add(ErrorCode.INVALID_VALUE, "reference is longer than 100", "reference")
    problems.raise_if_any()
    async with transaction():
        level = (await _locked([target.warehouse.id], target.variant.id, create=True))[target.warehouse.id]
        await move(level.id, MovementKind.RECEIPT, actor=actor, d_on_hand=quantity, reason=reason, reference=reference)
        movement = await _last_movement(level)
    await on_stock_increased(target.variant.id, actor)
    return (movement,)


async def adjust_stock(warehouse_code: str, sku: str, delta: int, reason: str, actor: str) -> tuple[StockMovement]:
    """A counted correction of on_hand (signed); it may never go below allocated + reserved."""
    problems = Problems()
    target = await _target(warehouse_code, sku, problems)
    _check_quantity(delta, problems, "delta", allow_negative=True)
    _check_reason(reason, problems, required=True)
    problems.raise_if_any()
    async with transaction():
        levels = await _locked([target.warehouse.id], target.variant.id, create=delta > 0)
        level = levels.get(target.warehouse.id)
        committed = (level.allocated + level.reserved) if level else 0
        if level is None or level.on_hand + delta < committed:
            on_hand = level.on_hand if level else 0
            raise DomainError(
                ErrorCode.NEGATIVE_STOCK,
                f"{sku} in {warehouse_code}: on hand {on_hand} {delta:+d} would fall below the {committed} "
                "units allocated or reserved",
                ["delta"],
                {"on_hand": on_hand, "committed": committed},
            )
        await move(level.id, MovementKind.ADJUSTMENT, actor=actor, d_on_hand=delta, reason=reason.strip())
        movement = await _last_movement(level)
    if delta > 0:
        await on_stock_increased(target.variant.id, actor)
    return (movement,)


async def transfer_stock(
    from_code: str, to_code: str, sku: str, quantity: int, reason: str, actor: str
) -> tuple[StockMovement, StockMovement]:
    """Move available units between warehouses: TRANSFER_OUT + TRANSFER_IN, one reference TRF-…."""
    if from_code == to_code:
        raise DomainError(ErrorCode.SAME_WAREHOUSE, "a transfer needs two different warehouses", ["toWarehouse"])
    problems = Problems()
    source = await _warehouse(from_code, problems, "fromWarehouse")
    dest = await _warehouse(to_code, problems, "toWarehouse")
    variant = await _variant(sku, problems)
    _check_quantity(quantity, problems, "quantity")
    _check_reason(reason, problems, required=False)
    problems.raise_if_any()
    reference = "TRF-" + secrets.token_hex(6).upper()
    async with transaction():
        levels = await _locked([source.id, dest.id], variant.id, create=False)
        out = levels.get(source.id)
        available = out.available if out else 0
        if available < quantity:
            raise _insufficient(sku, quantity, available)
        into = levels.get(dest.id) or await level_for(dest.id, variant.id, create=True)
        try:
            await move(out.id, MovementKind.TRANSFER_OUT, actor=actor, d_on_hand=-quantity, quantity=-quantity,
                       reason=reason, reference=reference)
        except StockConflict as exc:  # cannot happen under the lock; the database re-checks anyway
            raise _insufficient(sku, quantity, exc.available) from None
        await move(into.id, MovementKind.TRANSFER_IN, actor=actor, d_on_hand=quantity, reason=reason, reference=reference)
        movements = tuple(await StockMovement.filter(reference=reference).order_by("id"))
    await on_stock_increased(variant.id, actor)
    return movements


def _insufficient(sku: str, requested: int, available: int) -> DomainError:
    return DomainError(
        ErrorCode.INSUFFICIENT_STOCK,
        f"only {max(available, 0)} of {sku} available, {requested} requested",
        ["quantity"],
        {"shortages": [{"sku": sku, "requested": requested, "available": max(available, 0)}]},
    )


async def set_stock_policy(
    warehouse_code: str, sku: str, safety_stock: int, reorder_point: int, actor: str, *, bin_location: str | None = None,
) -> tuple[StockMovement]:
    """Set safety stock, reorder point and (when given) bin location of a level (created if missing)."""
    problems = Problems()
    target = await _target(warehouse_code, sku, problems)
    for field, value in (("safetyStock", safety_stock), ("reorderPoint", reorder_point)):
        if not 0 <= value <= MAX_QUANTITY:
            problems.add(ErrorCode.INVALID_VALUE, f"{field} must be between 0 and {MAX_QUANTITY}", field)
    if bin_location is not None and (len(bin_location.strip()) > 32 or not bin_location.strip().isprintable()):
        problems.add(ErrorCode.INVALID_VALUE, "binLocation is at most 32 printable characters", "binLocation")
    problems.raise_if_any()
    async with transaction():
        level = (await _locked([target.warehouse.id], target.variant.id, create=True))[target.warehouse.id]
        before = {"safety_stock": level.safety_stock, "reorder_point": level.reorder_point}
        after = {"safety_stock": safety_stock, "reorder_point": reorder_point}
        if bin_location is not None:
            before["bin_location"] = level.bin_location
            after["bin_location"] = bin_location.strip()
        await InventoryLevel.filter(id=level.id).update(**after)
        reason = "; ".join(f"{k} {before[k]}→{after[k]}" for k in after)
        await record_event(
            "InventoryLevel", level.id, "STOCK_POLICY_CHANGED", actor,
            {"warehouse": warehouse_code, "sku": sku, "before": before, "after": after},
        )
        await move(level.id, MovementKind.POLICY, actor=actor, quantity=0, reason=reason, available_before=level.available)
        movement = await _last_movement(level)
    if safety_stock < before["safety_stock"]:
        await on_stock_increased(target.variant.id, actor)
    return (movement,)


async def _last_movement(level: InventoryLevel) -> StockMovement:
    return await StockMovement.filter(warehouse_id=level.warehouse_id, variant_id=level.variant_id).order_by("-id").first()
