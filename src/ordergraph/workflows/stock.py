"""The only way any stock quantity changes: one atomic conditional UPDATE plus a ledger row.

`move` changes on_hand / allocated / reserved of one (warehouse, variant) level by signed
deltas; `move_many` applies several such changes in as few statements. The UPDATE's WHERE
clause re-checks the invariants in the database, so concurrent callers can never drive a
level below zero or commit more than is on hand; the CHECK constraints on the table are the
last line. A refused change raises `StockConflict` and writes nothing. Every change records
a STOCK_CHANGED event; crossing the reorder point downwards also records a LOW_STOCK event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ordergraph.db import Params, dialect, execute, fetch, insert_rows, model_rows, placeholders
from ordergraph.models import Event, InventoryLevel, StockMovement
from ordergraph.models.enums import MovementKind
from ordergraph.workflows.events import (
    NewEvent,
    deferred_as_cte,
    new_event,
    record_events,
    record_events_with,
    written_by_caller,
)


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


@dataclass(frozen=True)
class Change:
    """One signed change of one level, with what its ledger row and events say (see `move`)."""

    level_id: int
    kind: MovementKind
    d_on_hand: int = 0
    d_allocated: int = 0
    d_reserved: int = 0
    respect_safety_stock: bool = True
    reason: str = ""
    reference: str = ""
    order_id: int | None = None
    quantity: int | None = None
    available_before: int | None = None


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
    change = Change(
        level_id, kind, d_on_hand, d_allocated, d_reserved, respect_safety_stock, reason, reference, order_id,
        quantity, available_before,
    )
    return (await move_many([change], actor=actor))[0]


async def move_many(
    changes: Sequence[Change], *, actor: str, locked: Mapping[int, LevelState] | None = None
) -> list[LevelState]:
    """Apply several changes as `move` would one after the other, in fewer statements.

    One conditional UPDATE per round (a round holds each level at most once, so a level that
    appears twice is changed twice, in order), one INSERT for every ledger row, one INSERT for
    every change's events (in order; see `events.record_events`). All or nothing: when a change is refused, what its round
    and the earlier rounds applied is put back, nothing else is written and StockConflict is
    raised. Returns each change's level after it.

    One UPDATE locks its rows in no fixed order: to change more than one level, the caller
    holds their row locks already, taken in id order (as allocation does), or deadlocks may
    follow between concurrent callers.

    `locked`: the current state of every level changed, read by the caller under the row locks
    it holds until its transaction ends. Each change is then checked here first (a refused one
    raises StockConflict with nothing written), and on PostgreSQL the stock UPDATE, the ledger
    and the events (with those the transaction holds back, see `events.deferred`) go in one
    statement. Should the database still refuse a change, StockConflict is raised after that
    statement and the caller's transaction must roll back.
    """
    if not changes:
        return []
    if locked is not None and dialect() == "postgres":
        return await _move_locked(changes, actor, locked)
    after: list[LevelState | None] = [None] * len(changes)
    applied: list[Change] = []
    for round_ in _rounds(changes):
        p = Params()
        rows = await fetch(_update_sql([changes[i] for i in round_], p), p.values)
        by_id = {r["id"]: LevelState(**r) for r in rows}
        applied.extend(changes[i] for i in round_ if changes[i].level_id in by_id)
        refused = [changes[i].level_id for i in round_ if changes[i].level_id not in by_id]
        if refused:
            if applied:
                await execute(_undo_sql(applied))
            current = await get_level(refused[0])
            raise StockConflict(refused[0], current.available if current else 0)
        for i in round_:
            after[i] = by_id[changes[i].level_id]
    states = [a for a in after if a is not None]
    await insert_rows(StockMovement, _ledger_rows(changes, states, actor))
    await record_events([e for c, a in zip(changes, states, strict=True) for e in _events(c, a, actor)])
    return states


def _apply(c: Change, s: LevelState) -> LevelState | None:
    """The level after `c`, or None when the conditional UPDATE would refuse it."""
    on_hand, allocated, reserved = s.on_hand + c.d_on_hand, s.allocated + c.d_allocated, s.reserved + c.d_reserved
    after = replace(s, on_hand=on_hand, allocated=allocated, reserved=reserved)
    if min(on_hand, allocated, reserved) < 0 or allocated + reserved > on_hand:
        return None
    if c.respect_safety_stock and (c.d_allocated > 0 or c.d_reserved > 0) and after.available < 0:
        return None
    return after


async def _move_locked(changes: Sequence[Change], actor: str, locked: Mapping[int, LevelState]) -> list[LevelState]:
    current = dict(locked)
    states = []
    for c in changes:
        after = _apply(c, current[c.level_id])
        if after is None:
            raise StockConflict(c.level_id, locked[c.level_id].available)  # as `move_many` reports it
        current[c.level_id] = after
        states.append(after)
    totals: dict[int, Change] = {}
    for c in changes:
        t = totals.get(c.level_id)
        totals[c.level_id] = c if t is None else replace(
            t, d_on_hand=t.d_on_hand + c.d_on_hand, d_allocated=t.d_allocated + c.d_allocated,
            d_reserved=t.d_reserved + c.d_reserved, respect_safety_stock=t.respect_safety_stock or c.respect_safety_stock,
        )
    columns, ledger = model_rows(StockMovement, _ledger_rows(changes, states, actor))

    def before(p: Params) -> str:
        values = ", ".join("(" + ", ".join(p(v) for v in row) + ")" for row in ledger)
        return (
            f"WITH _stock AS ({_update_sql(list(totals.values()), p, returning='id')}),"
            f" _ledger AS (INSERT INTO stock_movements ({', '.join(columns)}) VALUES {values})"
        )

    events = [e for c, a in zip(changes, states, strict=True) for e in _events(c, a, actor)]
    row = await record_events_with(before, events, returning="(SELECT count(*) FROM _stock) AS _changed")
    if row["_changed"] != len(totals):  # never while the caller holds the locks it says it holds
        raise StockConflict(changes[0].level_id, -1)
    return states


def fits_in_one_statement(changes: Sequence[Change]) -> bool:
    """Whether `move_fitting` can apply `changes`: PostgreSQL, each level once, no
    `available_before` of the caller's."""
    return (dialect() == "postgres" and bool(changes) and len({c.level_id for c in changes}) == len(changes)
            and all(c.available_before is None for c in changes))


async def move_fitting(changes: Sequence[Change], *, actor: str) -> list[LevelState] | None:
    """`move_many` for changes planned from levels read without locks, in one statement that
    locks the levels (in id order, as `lock_levels` does), applies the changes if each still fits
    (the same conditional UPDATE), and writes the ledger, the changes' events and the events the
    transaction holds back (`events.deferred`). The row locks are then held until the COMMIT that
    follows, with no round trip to the app in between: under contention that stretch is what
    limits how many orders a second can take the same stock.

    The events' sequences are read inside the statement, once its locks are held, by the
    VOLATILE function og_last_sequence (migration 0006): it sees what the transaction that held
    a lock before committed. Their data is built by the statement as `_events` builds it (and
    checked against it here). Requires `fits_in_one_statement(changes)`.

    Returns each change's level after it, or None when some change no longer fits: what did
    fit has then been written, and the caller's transaction must roll back."""
    if not fits_in_one_statement(changes):
        raise ValueError("move_fitting: PostgreSQL only, each level at most once")
    now = datetime.now(UTC)
    p = Params()
    ids = p(sorted(c.level_id for c in changes))
    update = _update_sql(list(changes), p, gate="(SELECT count(*) FROM _lk) > 0")
    arrays = {
        "lid": ("int", [c.level_id for c in changes]), "pos": ("int", list(range(len(changes)))),
        "kind": ("text", [str(MovementKind(c.kind).value) for c in changes]),
        "qty": ("int", [_quantity(c) for c in changes]), "ref": ("text", [c.reference for c in changes]),
        "oid": ("int", [c.order_id for c in changes]), "reason": ("text", [c.reason for c in changes]),
        "dh": ("int", [c.d_on_hand for c in changes]), "da": ("int", [c.d_allocated for c in changes]),
        "dr": ("int", [c.d_reserved for c in changes]),
    }
    unnest = ", ".join(f"{p(values)}::{t}[]" for t, values in arrays.values())
    actor_p, now_p = p(actor), p(now)
    deferred = deferred_as_cte(p)
    level = ("jsonb_build_object('warehouse_id', warehouse_id, 'variant_id', variant_id, 'on_hand', on_hand,"
             " 'allocated', allocated, 'reserved', reserved, 'safety_stock', safety_stock, 'available', available,"
             " 'reorder_point', reorder_point)")
    sql = (
        f"WITH _lk AS (SELECT id FROM inventory_levels WHERE id = ANY({ids}::int[]) ORDER BY id FOR UPDATE),"
        f" _stock AS ({update}),"
        f" _c({', '.join(arrays)}) AS (SELECT * FROM unnest({unnest})),"
        " _a AS (SELECT s.*, _c.*, s.on_hand - s.allocated - s.reserved - s.safety_stock AS available,"
        " s.on_hand - s.allocated - s.reserved - s.safety_stock + _c.da + _c.dr - _c.dh AS available_before,"
        " og_last_sequence('InventoryLevel', s.id) AS last FROM _stock s JOIN _c ON _c.lid = s.id),"
        " _ledger AS (INSERT INTO stock_movements (warehouse_id, variant_id, kind, quantity, on_hand_after,"
        " allocated_after, reserved_after, reason, reference, order_id, actor, created_at)"
        f" SELECT warehouse_id, variant_id, kind, qty, on_hand, allocated, reserved, reason, ref, oid, {actor_p},"
        f" {now_p} FROM _a ORDER BY pos),"
        f" _lv AS (SELECT _a.*, {level} AS level FROM _a),"
        " _sev AS (INSERT INTO events (aggregate_type, aggregate_id, sequence, order_id, type, data, actor, created_at)"
        f" SELECT 'InventoryLevel', id, last + n, NULL, type, data, {actor_p}, {now_p} FROM ("
        " SELECT id, pos, last, 1 AS n, 'STOCK_CHANGED' AS type,"
        " level || jsonb_build_object('kind', kind, 'quantity', qty, 'reference', ref) AS data FROM _lv"
        " UNION ALL SELECT id, pos, last, 2, 'LOW_STOCK', level FROM _lv"
        " WHERE reorder_point > 0 AND available_before > reorder_point AND reorder_point >= available"
        " ) e ORDER BY pos, n RETURNING id)"
        + (f", {deferred[0]}" if deferred else "")
        + f" SELECT {_COLUMNS}, last, (SELECT count(*) FROM _stock) AS _changed,"
        " ARRAY(SELECT id FROM _sev ORDER BY id) AS _event_ids"
        + (", ARRAY(SELECT id FROM _ev ORDER BY id) AS _deferred_ids" if deferred else "")
        + " FROM _a ORDER BY pos"
    )
    rows = await fetch(sql, p.values)
    if len(rows) != len(changes) or rows[0]["_changed"] != len(changes):
        return None
    states = [LevelState(**{k: r[k] for k in _COLUMNS.split(", ")}) for r in rows]
    written: list[tuple[Event, dict]] = []
    for c, after, row in zip(changes, states, rows, strict=True):
        for n, e in enumerate(_events(c, after, actor), start=1):
            written.append((new_event(e, row["last"] + n, now), e.routing or {}))
    event_ids = rows[0]["_event_ids"]
    if len(event_ids) != len(written):  # the statement's LOW_STOCK rule and `_events` disagree
        raise RuntimeError(f"move_fitting wrote {len(event_ids)} events where {len(written)} were expected")
    for (event, _), id_ in zip(written, event_ids, strict=True):
        event.id = id_
    if deferred:
        deferred[1](rows[0]["_deferred_ids"])
    written_by_caller(written)
    return states


def _ledger_rows(changes: Sequence[Change], states: Sequence[LevelState], actor: str) -> list[dict]:
    return [
        {"warehouse_id": a.warehouse_id, "variant_id": a.variant_id, "kind": c.kind, "quantity": _quantity(c),
         "on_hand_after": a.on_hand, "allocated_after": a.allocated, "reserved_after": a.reserved, "reason": c.reason,
         "reference": c.reference, "order_id": c.order_id, "actor": actor}
        for c, a in zip(changes, states, strict=True)
    ]


def _quantity(c: Change) -> int:
    return c.quantity if c.quantity is not None else (c.d_on_hand or c.d_allocated or c.d_reserved)


def _rounds(changes: Sequence[Change]) -> list[list[int]]:
    """Indexes of `changes` in rounds: the n-th change of a level goes in round n."""
    rounds: list[list[int]] = []
    seen: dict[int, int] = {}
    for i, c in enumerate(changes):
        n = seen.get(c.level_id, 0)
        seen[c.level_id] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(i)
    return rounds


def _values(rows: list[tuple[int, ...]]) -> str:
    # Every value is an int (cast here), so inlining them is safe and keeps one SQL text for
    # both dialects (SQLite's positional `?` cannot be reused within a statement).
    return ", ".join("(" + ", ".join(str(int(v)) for v in row) + ")" for row in rows)


def _update_sql(changes: list[Change], p: Params, returning: str = _COLUMNS, gate: str = "") -> str:
    """One conditional UPDATE of distinct levels; a level is changed only if its own change fits.

    On PostgreSQL the changes are five array parameters (`p`), so the text is the same whatever
    the levels and quantities and asyncpg prepares it once per connection (with the values
    inlined, each order's allocation was a new text: one more round trip, under the row locks).
    SQLite has no arrays: the values (ints) are inlined. `gate`: a condition without columns of
    the table (evaluated once, before any row is changed)."""
    rows = [
        (c.level_id, c.d_on_hand, c.d_allocated, c.d_reserved,
         1 if c.respect_safety_stock and (c.d_allocated > 0 or c.d_reserved > 0) else 0)
        for c in changes
    ]
    if dialect() == "postgres":
        arrays = ", ".join(f"{p([int(row[i]) for row in rows])}::int[]" for i in range(5))
        source = f"SELECT * FROM unnest({arrays})"
    else:
        source = f"VALUES {_values(rows)}"
    return (
        f"WITH v(lid, dh, da, dr, strict) AS ({source}) "
        "UPDATE inventory_levels SET on_hand = on_hand + v.dh, allocated = allocated + v.da, "
        "reserved = reserved + v.dr, updated_at = CURRENT_TIMESTAMP "
        "FROM v WHERE inventory_levels.id = v.lid "
        "AND on_hand + v.dh >= 0 AND allocated + v.da >= 0 AND reserved + v.dr >= 0 "
        "AND allocated + v.da + reserved + v.dr <= on_hand + v.dh "
        "AND (v.strict = 0 OR on_hand + v.dh - allocated - v.da - reserved - v.dr - safety_stock >= 0) "
        f"{'AND ' + gate + ' ' if gate else ''}RETURNING {returning}"
    )


def _undo_sql(applied: list[Change]) -> str:
    """Put back what `applied` changed (rows this transaction has just changed, so locked)."""
    totals: dict[int, list[int]] = {}
    for c in applied:
        t = totals.setdefault(c.level_id, [0, 0, 0])
        t[0] += c.d_on_hand
        t[1] += c.d_allocated
        t[2] += c.d_reserved
    return (
        f"WITH v(lid, dh, da, dr) AS (VALUES {_values([(k, *t) for k, t in totals.items()])}) "
        "UPDATE inventory_levels SET on_hand = on_hand - v.dh, allocated = allocated - v.da, "
        "reserved = reserved - v.dr FROM v WHERE inventory_levels.id = v.lid"
    )


def _events(c: Change, after: LevelState, actor: str) -> list[NewEvent]:
    """The change's STOCK_CHANGED event, and LOW_STOCK when it crossed the reorder point downwards."""
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
    events = [NewEvent(
        "InventoryLevel", after.id, "STOCK_CHANGED", actor,
        {**level, "kind": c.kind, "quantity": _quantity(c), "reference": c.reference}, routing=routing,
    )]
    # `available_before`: for callers that changed safety stock / reorder point just before.
    before_available = (
        c.available_before if c.available_before is not None
        else after.available + c.d_allocated + c.d_reserved - c.d_on_hand
    )
    if after.reorder_point > 0 and before_available > after.reorder_point >= after.available:
        events.append(NewEvent("InventoryLevel", after.id, "LOW_STOCK", actor, level, routing=routing))
    return events


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
