"""Allocation and routing: which warehouse ships which unit of each line.

The channel's strategy orders the candidate warehouses (active, linked to the channel,
shipping to the destination country); lines split across warehouses when needed. The
inventory rows involved are locked in id order before planning (no deadlocks between
concurrent orders), and every unit is committed through `stock.move_many`, whose
conditional UPDATE and the table's CHECK constraints guarantee nothing is ever oversold.
Under those locks the work is batched: one UPDATE for all the stock changes, one INSERT each
for their ledger rows and for the allocations, one UPDATE for the lines.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from ordergraph.db import Params, Raw, Writes, dialect, fetch, insert_sql, model_rows, transaction, update_sql
from ordergraph.models import (
    Allocation,
    InventoryLevel,
    Order,
    OrderHold,
    OrderLine,
    ProductVariant,
    SalesChannel,
    Warehouse,
)
from ordergraph.models.enums import (
    AllocationStatus,
    AllocationStrategy,
    BackorderPolicy,
    MovementKind,
    OrderStatus,
    StockPolicy,
)
from ordergraph.observability import ALLOCATION_FAILURES
from ordergraph.workflows.errors import DomainError, ErrorCode
from ordergraph.workflows.events import order_event
from ordergraph.workflows.order_lifecycle import ORDER, OrderContext, choose
from ordergraph.workflows.stock import Change, LevelState, fits_in_one_statement, move_fitting, move_many


ALLOCATED_STATES = (OrderStatus.ALLOCATED, OrderStatus.PARTIALLY_ALLOCATED, OrderStatus.BACKORDERED)
NEW_ORDER_STATES = (OrderStatus.PENDING, OrderStatus.CONFIRMED)  # nothing allocated or fulfilled yet
FO_CTE = "f"  # the CTE inserting a new order's fulfillment orders (fulfillment._first_fulfillment_orders_pg)


@dataclass
class Plan:
    takes: list[tuple[OrderLine, InventoryLevel, int]] = field(default_factory=list)
    short: dict[int, int] = field(default_factory=dict)  # line id -> units not allocatable
    warehouses: list[Warehouse] = field(default_factory=list)  # the candidates considered


def _distance_km(lat1, lon1, lat2, lon2) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371 * 2 * math.asin(math.sqrt(a))


async def candidate_warehouses(channel: SalesChannel, country: str) -> list[Warehouse]:
    p = Params()
    rows = await fetch(
        "SELECT w.* FROM warehouses w JOIN channel_warehouses l ON l.warehouse_id = w.id"
        f" WHERE l.channel_id = {p(channel.id)} AND w.active = {p(True)} ORDER BY w.priority, w.code",
        p.values,
    )
    return shipping_to([Warehouse._init_from_db(**r) for r in rows], country)


def shipping_to(warehouses: list[Warehouse], country: str) -> list[Warehouse]:
    """Those of `warehouses` that ship to `country` (no list: everywhere)."""
    return [w for w in warehouses if not w.ship_countries or country in w.ship_countries]


def _order_by_strategy(strategy, warehouses: list[Warehouse], address: dict) -> list[Warehouse]:
    if strategy is AllocationStrategy.PROXIMITY:
        lat, lon = address.get("latitude"), address.get("longitude")
        if lat is not None and lon is not None:
            def key(w):
                if w.latitude is None or w.longitude is None:
                    return (float("inf"), w.priority)
                return (_distance_km(lat, lon, w.latitude, w.longitude), w.priority)
            return sorted(warehouses, key=key)
        # No coordinates: a warehouse in the destination country first, then priority.
        country = address.get("country")
        return sorted(warehouses, key=lambda w: (w.address.get("country") != country, w.priority, w.code))
    return list(warehouses)  # PRIORITY (already by priority) and the per-line strategies


def plan_allocation(
    strategy: AllocationStrategy,
    warehouses: list[Warehouse],
    needs: list[tuple[OrderLine, int]],
    levels: dict[tuple[int, int], InventoryLevel],
    address: dict,
) -> Plan:
    free = {k: max(0, lvl.available) for k, lvl in levels.items()}
    ordered = _order_by_strategy(strategy, warehouses, address)
    if strategy is AllocationStrategy.FEWEST_SHIPMENTS:
        ordered = _fewest_shipments_order(ordered, needs, free)
    plan = Plan()
    for line, need in needs:
        candidates = ordered
        if strategy is AllocationStrategy.HIGHEST_STOCK:
            candidates = sorted(ordered, key=lambda w: -free.get((w.id, line.variant_id), 0))
        for w in candidates:
            if need == 0:
                break
            key = (w.id, line.variant_id)
            take = min(need, free.get(key, 0))
            if take > 0:
                plan.takes.append((line, levels[key], take))
                free[key] -= take
                need -= take
        if need:
            plan.short[line.id] = need
    return plan


def _fewest_shipments_order(warehouses, needs, free) -> list[Warehouse]:
    """Greedy set cover: the warehouse covering the most remaining units first."""
    remaining = defaultdict(int)
    for line, need in needs:
        remaining[line.variant_id] += need
    stock = dict(free)
    chosen: list[Warehouse] = []
    pool = list(warehouses)
    while pool and any(remaining.values()):
        def coverage(w):
            return sum(min(q, stock.get((w.id, v), 0)) for v, q in remaining.items())
        best = max(pool, key=lambda w: (coverage(w), -pool.index(w)))
        if coverage(best) == 0:
            break
        for v, q in list(remaining.items()):
            take = min(q, stock.get((best.id, v), 0))
            remaining[v] -= take
            stock[(best.id, v)] = stock.get((best.id, v), 0) - take
        chosen.append(best)
        pool.remove(best)
    return chosen + pool


async def _levels(warehouse_ids: list[int], variant_ids: list[int], lock: bool) -> dict[tuple[int, int], InventoryLevel]:
    if not warehouse_ids or not variant_ids:
        return {}
    p = Params()
    sql = (
        f"SELECT * FROM inventory_levels WHERE warehouse_id IN ({', '.join(p(int(w)) for w in warehouse_ids)})"
        f" AND variant_id IN ({', '.join(p(int(v)) for v in variant_ids)}) ORDER BY id"
    )
    if lock and dialect() == "postgres":
        sql += " FOR UPDATE"  # SQLite: the transaction holds the whole database's write lock
    rows = [InventoryLevel._init_from_db(**r) for r in await fetch(sql, p.values)]
    return {(r.warehouse_id, r.variant_id): r for r in rows}


async def lock_levels(warehouse_ids: list[int], variant_ids: list[int]) -> dict[tuple[int, int], InventoryLevel]:
    """Lock the inventory rows involved, always in id order, and return them."""
    return await _levels(warehouse_ids, variant_ids, lock=True)


async def read_levels(warehouse_ids: list[int], variant_ids: list[int]) -> dict[tuple[int, int], InventoryLevel]:
    """The same rows as `lock_levels`, read without locking them."""
    return await _levels(warehouse_ids, variant_ids, lock=False)


class PlanChanged(Exception):
    """The plan made before locking differs from the plan under the locks: roll back, redo."""


def _needs(lines: list[OrderLine]) -> list[tuple[OrderLine, int]]:
    needs = [(ln, ln.quantity - ln.allocated_quantity - ln.shipped_quantity - ln.cancelled_quantity) for ln in lines]
    return [(ln, n) for ln, n in needs if n > 0]


def _plan(channel: SalesChannel, order: Order, warehouses: list[Warehouse], needs, levels) -> Plan:
    plan = plan_allocation(channel.allocation_strategy, warehouses, needs, levels, order.shipping_address)
    plan.warehouses = warehouses
    return plan


def _same(a: Plan, b: Plan) -> bool:
    def takes(p: Plan):
        return [(ln.id, lvl.id, q) for ln, lvl, q in p.takes]

    return takes(a) == takes(b) and a.short == b.short


async def _check_short(order_channel: SalesChannel, needs, plan: Plan, levels, warehouses, variants, reject_short: bool):
    if not plan.short:
        return
    if variants is None:
        variants = {v.id: v for v in await ProductVariant.filter(id__in=[ln.variant_id for ln, _ in needs])}
    backorderable = order_channel.stock_policy is StockPolicy.ACCEPT
    refused = [
        ln for ln, _ in needs
        if ln.id in plan.short and not backorderable and variants[ln.variant_id].backorder_policy is not BackorderPolicy.ALLOW
    ]
    if refused and reject_short:
        ALLOCATION_FAILURES.labels(order_channel.code, "rejected").inc()
        raise insufficient_stock(refused, plan, levels, warehouses)


def _changes(order: Order, plan: Plan) -> list[Change]:
    return [
        Change(level.id, MovementKind.ALLOCATION, d_allocated=qty, reference=order.number, order_id=order.id,
               reason="order allocation")
        for _, level, qty in plan.takes
    ]


async def _move_stock(order: Order, plan: Plan, actor: str, locked: dict | None = None) -> None:
    """Under the row locks: every take in one stock UPDATE, one ledger INSERT, the events.

    `locked`: the levels as just read under their locks (see `stock.move_many`): on PostgreSQL
    the three writes (and the events held back) then go in one statement.
    """
    await move_many(_changes(order, plan), actor=actor,
                    locked=None if locked is None else {lvl.id: _state(lvl) for lvl in locked.values()})


def _state(lvl: InventoryLevel) -> LevelState:
    return LevelState(lvl.id, lvl.warehouse_id, lvl.variant_id, lvl.on_hand, lvl.allocated, lvl.reserved,
                      lvl.safety_stock, lvl.reorder_point)


async def _record_allocations(
    order: Order, channel: SalesChannel, needs, plan: Plan, writes: Writes | None = None, *, fo_cte: str | None = None,
) -> None:
    """The order's side of a plan: its allocation rows and its lines' quantities. `writes`: add
    them there (the caller runs them) instead of writing them now. `fo_cte`: the name of a CTE
    of the same statement inserting the order's fulfillment orders (`id`, `warehouse_id`); each
    allocation is linked to its warehouse's one as it is written (PostgreSQL)."""
    run = writes is None
    writes = writes or Writes()
    if plan.takes:
        columns, rows = model_rows(Allocation, [
            {"line_id": line.id, "order_id": order.id, "warehouse_id": level.warehouse_id, "quantity": qty}
            | ({"fulfillment_order_id": Raw(f"(SELECT id FROM {fo_cte} WHERE warehouse_id = {{}})", level.warehouse_id)}
               if fo_cte else {})
            for line, level, qty in plan.takes
        ])
        writes.add(lambda p: insert_sql("allocations", columns, rows, params=p)[0])
    allocated: dict[int, int] = defaultdict(int)
    for line, _, qty in plan.takes:
        allocated[line.id] += qty
    for line, _ in needs:
        line.allocated_quantity += allocated[line.id]
        line.backordered_quantity = plan.short.get(line.id, 0)
    if needs:
        needed = [line for line, _ in needs]
        writes.add(lambda p: _lines_sql(needed, p))
    if run:
        await writes.run()
    if plan.short:
        ALLOCATION_FAILURES.labels(channel.code, "backordered").inc()


def _lines_sql(lines: list[OrderLine], p: Params) -> str:
    """One UPDATE of the lines' allocated and backordered quantities. On PostgreSQL the values
    are three array parameters, so the statement's text is the same for every order and asyncpg
    reuses its prepared statement (inlined values made a new text, one more round trip, each
    time); SQLite has no arrays (ints only, inlined)."""
    if dialect() == "postgres":
        ids = p([int(ln.id) for ln in lines])
        allocated = p([int(ln.allocated_quantity) for ln in lines])
        backordered = p([int(ln.backordered_quantity) for ln in lines])
        return (
            "UPDATE order_lines SET allocated_quantity = v.a, backordered_quantity = v.b"
            f" FROM unnest({ids}::int[], {allocated}::int[], {backordered}::int[]) AS v(lid, a, b)"
            " WHERE order_lines.id = v.lid"
        )
    values = ", ".join(
        f"({int(ln.id)}, {int(ln.allocated_quantity)}, {int(ln.backordered_quantity)})" for ln in lines
    )
    return (
        f"WITH v(lid, a, b) AS (VALUES {values}) UPDATE order_lines SET allocated_quantity = v.a,"
        " backordered_quantity = v.b FROM v WHERE order_lines.id = v.lid"
    )


async def allocate_lines(
    order: Order,
    channel: SalesChannel,
    lines: list[OrderLine],
    actor: str,
    *,
    reject_short: bool,
    levels: dict[tuple[int, int], InventoryLevel] | None = None,
    warehouses: list[Warehouse] | None = None,
    variants: dict[int, ProductVariant] | None = None,
) -> Plan:
    """Allocate what each line still needs; inside the caller's transaction."""
    needs = _needs(lines)
    if warehouses is None:
        warehouses = await candidate_warehouses(channel, order.shipping_address.get("country", ""))
    if levels is None:
        levels = await lock_levels([w.id for w in warehouses], list({ln.variant_id for ln, _ in needs}))
    plan = _plan(channel, order, warehouses, needs, levels)
    await _check_short(channel, needs, plan, levels, warehouses, variants, reject_short)
    await _move_stock(order, plan, actor)
    await _record_allocations(order, channel, needs, plan)
    return plan


def insufficient_stock(lines, plan: Plan, levels, warehouses) -> DomainError:
    wh_ids = {w.id for w in warehouses}
    shortages = []
    for ln in lines:
        available = sum(max(0, lvl.available) for (w, v), lvl in levels.items() if v == ln.variant_id and w in wh_ids)
        shortages.append({"sku": ln.sku, "requested": ln.quantity, "available": available})
    skus = ", ".join(s["sku"] for s in shortages)
    return DomainError(ErrorCode.INSUFFICIENT_STOCK, f"not enough stock for {skus}", ["lines"], {"shortages": shortages})


def status_of(lines: list[OrderLine]) -> OrderStatus:
    open_units = sum(ln.quantity - ln.shipped_quantity - ln.cancelled_quantity for ln in lines)
    allocated = sum(ln.allocated_quantity for ln in lines)
    if allocated >= open_units:
        return OrderStatus.ALLOCATED
    return OrderStatus.PARTIALLY_ALLOCATED if allocated else OrderStatus.BACKORDERED


class NothingAllocated(Exception):
    """Raised (to roll back) when a background allocation run found nothing to allocate."""


async def run_allocation(
    order: Order,
    actor: str,
    *,
    reject_short: bool,
    skip_if_nothing: bool = False,
    ctx: OrderContext | None = None,
    channel: SalesChannel | None = None,
    lines: list[OrderLine] | None = None,
    variants: dict[int, ProductVariant] | None = None,
    levels: dict[tuple[int, int], InventoryLevel] | None = None,
    warehouses: list[Warehouse] | None = None,
    plan_before_locking: bool = False,
    early_levels: dict[tuple[int, int], InventoryLevel] | None = None,
    also_save: tuple[str, ...] = (),
) -> Order:
    """Allocate an order in the caller's transaction and move it to its allocation state.

    Callers that already hold the channel, lines, variants, levels or guard context (a
    brand-new order) pass them in; otherwise they are loaded here. `also_save`: fields of the
    order the caller changed and left for the status update to write.

    `plan_before_locking` keeps the inventory rows locked for the stock changes only: the plan
    is made from the levels read without locks, the order's side of it (allocations, lines,
    status, ORDER_ALLOCATED) is written, then the rows are locked and planned again. A plan
    that differs under the locks (the stock moved in between) raises PlanChanged: the caller
    rolls the transaction back and allocates without it. On PostgreSQL, when each level is
    taken from once, the rows taken from are locked, checked and changed in one statement
    (`stock.move_fitting`) instead: the plan stands if every take still fits, else
    PlanChanged. A plan with a shortage is never acted on before locking. `early_levels`: the
    levels the caller already read without locks (before its transaction), for that first
    plan.
    """
    channel = channel or await SalesChannel.get(id=order.channel_id)
    if lines is None:
        lines = await OrderLine.filter(order_id=order.id).order_by("position")
    target = ORDER.target(order, "ALLOCATE", ctx or await order_context(order))
    if not (plan_before_locking and levels is None):
        plan = await allocate_lines(
            order, channel, lines, actor, reject_short=reject_short, variants=variants, levels=levels,
            warehouses=warehouses,
        )
        if skip_if_nothing and not plan.takes:
            raise NothingAllocated
        await _allocated(order, target, lines, plan, actor, also_save)
        return order
    needs = _needs(lines)
    if warehouses is None:
        warehouses = await candidate_warehouses(channel, order.shipping_address.get("country", ""))
    keys = ([w.id for w in warehouses], list({ln.variant_id for ln, _ in needs}))
    early = _plan(channel, order, warehouses, needs,
                  early_levels if early_levels is not None else await read_levels(*keys))
    if early.short or (skip_if_nothing and not early.takes):
        return await run_allocation(
            order, actor, reject_short=reject_short, skip_if_nothing=skip_if_nothing, ctx=ctx, channel=channel,
            lines=lines, variants=variants, warehouses=warehouses, also_save=also_save,
        )
    # Allocations, lines and the order's status: one statement on PostgreSQL; for a new order
    # with its fulfillment orders too (they are made from the same plan: fulfillment.py).
    writes = Writes()
    with_fos = dialect() == "postgres" and order.status in NEW_ORDER_STATES and bool(early.takes)
    await _record_allocations(order, channel, needs, early, writes, fo_cte=FO_CTE if with_fos else None)
    await _allocated(order, target, lines, early, actor, also_save, writes, writes_with_fos=with_fos)
    changes = _changes(order, early)
    if fits_in_one_statement(changes):
        # PostgreSQL: lock the levels taken from, check the plan still fits and move the stock
        # in one statement; the locks are then held until the COMMIT only.
        if await move_fitting(changes, actor=actor) is None:
            raise PlanChanged
        return order
    locked = await lock_levels(*keys)
    plan = _plan(channel, order, warehouses, needs, locked)
    if not _same(plan, early):
        raise PlanChanged
    await _move_stock(order, plan, actor, locked)
    return order


async def _allocated(
    order: Order, target: str, lines: list[OrderLine], plan: Plan, actor: str, also_save: tuple[str, ...] = (),
    writes: Writes | None = None, *, writes_with_fos: bool = False,
) -> None:
    """The order's new status and ORDER_ALLOCATED. `writes`: the order's UPDATE goes there last
    and they are run together (one statement on PostgreSQL); `writes_with_fos`: in the
    statement that makes the order's first fulfillment orders."""
    before = order.status
    order.status = choose(target, status_of(lines))
    writes = writes or Writes()
    fields = [*also_save, "status", "updated_at"]
    writes.add(lambda p: update_sql(order, fields, p))
    if not writes_with_fos:
        await writes.run()
    skus = {ln.id: ln.sku for ln in lines}
    codes = {w.id: w.code for w in plan.warehouses}
    await order_event(
        order, "ORDER_ALLOCATED", actor,
        status={"from": before, "to": order.status},
        allocations=[{"sku": ln.sku, "warehouse": codes[lvl.warehouse_id], "quantity": q} for ln, lvl, q in plan.takes],
        backordered=[{"sku": skus[lid], "quantity": q} for lid, q in plan.short.items()],
    )
    from ordergraph.workflows.fulfillment import on_allocated  # noqa: PLC0415 - it imports this module

    await on_allocated(order, before, lines, plan, actor, writes if writes_with_fos else None)
    if writes.pending:  # not taken by the fulfillment orders' statement after all
        raise RuntimeError("the allocation's writes were not written")


async def order_context(order: Order) -> OrderContext:
    from ordergraph.workflows.payments import primary_payment  # noqa: PLC0415

    holds = await OrderHold.filter(order_id=order.id, released_at__isnull=True).count()
    payment = await primary_payment(order.id)
    lines = await OrderLine.filter(order_id=order.id)
    units = sum(ln.quantity - ln.allocated_quantity - ln.shipped_quantity - ln.cancelled_quantity for ln in lines)
    failed = payment is None and await order.payments.all().exists()
    status = payment.status if payment else ("FAILED" if failed else None)
    return OrderContext(order, holds, status, units)


async def allocate_order(order_id: int, actor: str) -> Order:
    """`allocateOrder`: re-run allocation for what is still unallocated (never rejects)."""
    async with transaction():
        order = await Order.select_for_update().get(id=order_id)
        return await run_allocation(order, actor, reject_short=False)


async def release_allocations(order: Order, actor: str, reason: str) -> set[int]:
    """Give back every active allocation of an order; returns the variant ids freed."""
    freed: set[int] = set()
    allocations = await Allocation.filter(order_id=order.id, status=AllocationStatus.ACTIVE).prefetch_related("line")
    levels = {
        (lvl.warehouse_id, lvl.variant_id): lvl
        for lvl in await InventoryLevel.filter(
            warehouse_id__in=[a.warehouse_id for a in allocations],
            variant_id__in=[a.line.variant_id for a in allocations],
        ).order_by("id").select_for_update()
    }
    allocations = sorted(allocations, key=lambda a: levels[(a.warehouse_id, a.line.variant_id)].id)
    await move_many(  # the rows are locked: one UPDATE for every allocation given back
        [
            Change(levels[(a.warehouse_id, a.line.variant_id)].id, MovementKind.DEALLOCATION, d_allocated=-a.quantity,
                   reference=order.number, order_id=order.id, reason=reason)
            for a in allocations
        ],
        actor=actor,
    )
    for a in allocations:
        a.status = AllocationStatus.RELEASED
        freed.add(a.line.variant_id)
    if allocations:
        await Allocation.bulk_update(allocations, fields=["status"])
    return freed


async def allocate_backorders(variant_id: int, actor: str) -> None:
    """Stock arrived for a variant: allocate its backordered lines, oldest order first."""
    order_ids = (
        await OrderLine.filter(variant_id=variant_id, backordered_quantity__gt=0,
                               order__status__in=[OrderStatus.BACKORDERED, OrderStatus.PARTIALLY_ALLOCATED])
        .order_by("order__placed_at", "order_id")
        .values_list("order_id", flat=True)
    )
    for order_id in dict.fromkeys(order_ids):
        try:
            async with transaction():
                order = await Order.select_for_update().get(id=order_id)
                ctx = await order_context(order)
                if order.status not in (OrderStatus.BACKORDERED, OrderStatus.PARTIALLY_ALLOCATED) or ctx.active_holds:
                    continue
                await run_allocation(order, actor, reject_short=False, skip_if_nothing=True)
        except NothingAllocated:
            break  # no more of this variant is available: later orders wait too
