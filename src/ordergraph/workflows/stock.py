"""The only way any stock quantity changes: one atomic conditional UPDATE plus a ledger row.

`move` changes on_hand / allocated / reserved of one (warehouse, variant) level by signed
deltas. The UPDATE's WHERE clause re-checks the invariants in the database, so concurrent
callers can never drive a level below zero or commit more than is on hand; the CHECK
constraints on the table are the last line. A refused change raises `StockConflict`
and writes nothing. Crossing the reorder point downwards records a LOW_STOCK event.
"""

from __future__ import annotations

from dataclasses import dataclass

from ordergraph.db import fetch, placeholders
from ordergraph.models import InventoryLevel, StockMovement
from ordergraph.models.enums import MovementKind
from ordergraph.workflows.events import record_event


class StockConflict(Exception):
    """The change would break an invariant given the level's current quantities."""

    def __init__(self, level_id: int, available: int) -> None:
        super().__init__(f"inventory level {level_id}: only {available} available")
        self.level_id = level_id
        self.available = available


@dataclass
class LevelState:
    id: int
    warehouse_id: int
    variant_id: int
    on_hand: int
    allocated: int
    reserved: int
    safety_stock: int
    reorder_point: int

    @property
    def available(self) -> int:
        return self.on_hand - self.allocated - self.reserved - self.safety_stock


_COLUMNS = "id, warehouse_id, variant_id, on_hand, allocated, reserved, safety_stock, reorder_point"


async def move(
    level_id: int,
    kind: MovementKind,
    *,
    actor: str,
    d_on_hand: int = 0,
    d_allocated: int = 0,
    d_reserved: int = 0,
    respect_safety_stock: bool = True,
    reason: str = "",
    reference: str = "",
    order_id: int | None = None,
    quantity: int | None = None,
    available_before: int | None = None,
) -> LevelState:
    """Apply the deltas atomically or raise StockConflict; returns the level after the change.

    Increases of allocated/reserved must fit in what is available (counting safety stock
    unless `respect_safety_stock` is False); decreases may never go below zero.
    """
    # Every value is an int (cast here), so inlining them is safe and keeps one SQL text for
    # both dialects (SQLite's positional `?` cannot be reused within a statement).
    p = [str(int(d_on_hand)), str(int(d_allocated)), str(int(d_reserved)), str(int(level_id))]
    conditions = [
        f"on_hand + {p[0]} >= 0",
        f"allocated + {p[1]} >= 0",
        f"reserved + {p[2]} >= 0",
        f"allocated + {p[1]} + reserved + {p[2]} <= on_hand + {p[0]}",
    ]
    if respect_safety_stock and (d_allocated > 0 or d_reserved > 0):
        conditions.append(
            f"on_hand + {p[0]} - allocated - {p[1]} - reserved - {p[2]} - safety_stock >= 0"
        )
    sql = (
        f"UPDATE inventory_levels SET on_hand = on_hand + {p[0]}, allocated = allocated + {p[1]}, "
        f"reserved = reserved + {p[2]}, updated_at = CURRENT_TIMESTAMP "
        f"WHERE id = {p[3]} AND " + " AND ".join(conditions) + f" RETURNING {_COLUMNS}"
    )
    rows = await fetch(sql)
    if not rows:
        current = await get_level(level_id)
        raise StockConflict(level_id, current.available if current else 0)
    after = LevelState(**rows[0])
    if quantity is None:
        quantity = d_on_hand or d_allocated or d_reserved
    await StockMovement.create(
        warehouse_id=after.warehouse_id,
        variant_id=after.variant_id,
        kind=kind,
        quantity=quantity,
        on_hand_after=after.on_hand,
        allocated_after=after.allocated,
        reserved_after=after.reserved,
        reason=reason,
        reference=reference,
        order_id=order_id,
        actor=actor,
    )
    level = {
        "warehouse_id": after.warehouse_id,
        "variant_id": after.variant_id,
        "on_hand": after.on_hand,
        "allocated": after.allocated,
        "reserved": after.reserved,
        "safety_stock": after.safety_stock,
        "available": after.available,
        "reorder_point": after.reorder_point,
    }
    routing = {"inventory": {"warehouse_id": after.warehouse_id, "variant_id": after.variant_id}}
    await record_event(
        "InventoryLevel", after.id, "STOCK_CHANGED", actor,
        {**level, "kind": kind, "quantity": quantity, "reference": reference}, routing=routing,
    )
    # `available_before`: for callers that changed safety stock / reorder point just before.
    before_available = (
        available_before if available_before is not None else after.available + d_allocated + d_reserved - d_on_hand
    )
    if after.reorder_point > 0 and before_available > after.reorder_point >= after.available:
        await record_event("InventoryLevel", after.id, "LOW_STOCK", actor, level, routing=routing)
    return after


async def get_level(level_id: int) -> LevelState | None:
    rows = await fetch(
        f"SELECT {_COLUMNS} FROM inventory_levels WHERE id = {placeholders(1)[0]}", [level_id]
    )
    return LevelState(**rows[0]) if rows else None


async def level_for(warehouse_id: int, variant_id: int, create: bool = False) -> InventoryLevel | None:
    level = await InventoryLevel.get_or_none(warehouse_id=warehouse_id, variant_id=variant_id)
    if level is None and create:
        level, _ = await InventoryLevel.get_or_create(warehouse_id=warehouse_id, variant_id=variant_id)
    return level
