"""Fulfillment: allocation makes one fulfillment order per warehouse; pick lists (batch and
wave) gather them; scans confirm picks; a short pick gives the missing units back and
re-allocates them elsewhere or backorders them; packing puts picked units into packages.

Every function here is a use case that runs in its own transaction (or the caller's, where
it says so) and writes its events there. Shipping and tracking live in `shipping.py`.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ordergraph.db import transaction
from ordergraph.models import (
    Allocation,
    FulfillmentLine,
    FulfillmentOrder,
    InventoryLevel,
    Order,
    OrderLine,
    Package,
    PackageItem,
    PickList,
    PickListItem,
    ProductVariant,
    SalesChannel,
    Warehouse,
)
from ordergraph.models.enums import (
    AllocationStatus,
    CarrierSelection,
    FulfillmentStatus as F,
    MovementKind,
    OrderStatus,
    PickListKind,
    PickListStatus,
    ServiceLevel,
)
from ordergraph.workflows import allocation
from ordergraph.workflows.errors import DomainError, ErrorCode, Problems
from ordergraph.workflows.events import order_event, order_part_event, record_event
from ordergraph.workflows.lifecycle import StateMachine
from ordergraph.workflows.order_lifecycle import ORDER, WORKFLOW, choose
from ordergraph.workflows.orders import locked_order
from ordergraph.workflows.stock import Change, move_many

ACTIVE = (F.OPEN, F.PICKING, F.PICKED, F.PACKED)

FULFILLMENT = StateMachine(
    "fulfillment order",
    {
        (F.OPEN, "START_PICKING"): F.PICKING,
        (F.PICKING, "COMPLETE_PICK"): F.PICKED,
        (F.PICKED, "PACK"): f"{F.PICKED}|{F.PACKED}",  # PACKED once every picked unit is in a package
        (F.PACKED, "SHIP"): f"{F.PACKED}|{F.SHIPPED}",  # SHIPPED once every package has left
        **{(s, "HOLD"): F.ON_HOLD for s in ACTIVE},
        (F.ON_HOLD, "RELEASE"): "|".join(ACTIVE),
        **{(s, "CANCEL"): F.CANCELLED for s in (*ACTIVE, F.ON_HOLD)},
        # a short pick that leaves nothing to ship from here
        (F.PICKING, "SHORT_CLOSE"): F.CANCELLED,
    },
    guards={
        "COMPLETE_PICK": lambda fo: None if getattr(fo, "offering", True) is False else "happens when the last unit is scanned",
        "SHORT_CLOSE": lambda fo: None if getattr(fo, "offering", True) is False else "happens on a short pick",
    },
)


class _Internal:
    """Context for the moves the workflow makes itself (never offered as client actions)."""

    offering = False


INTERNAL = _Internal()


def available_actions(fo: FulfillmentOrder) -> list[str]:
    return FULFILLMENT.available(fo)


def _now() -> datetime:
    return datetime.now(UTC)


def _temp_number(prefix: str) -> str:
    return f"{prefix}-T{uuid.uuid4().hex[:24]}"


async def fo_event(fo: FulfillmentOrder, order: Order, type_: str, actor: str, *, new: bool = False, **data):
    """An event of a fulfillment order: on its own stream and on its order's timeline."""
    return await order_part_event("FulfillmentOrder", fo.id, order, type_, actor,
                                  {"fulfillment_order": fo.number, "warehouse_id": fo.warehouse_id, **data}, new=new)


async def _locked_fo(fo_id: int) -> tuple[FulfillmentOrder, Order]:
    """Lock the order first, then its fulfillment order: every use case takes them in this order."""
    fo = await FulfillmentOrder.get_or_none(id=fo_id)
    if fo is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such fulfillment order", ["id"])
    order = await locked_order(fo.order_id)
    fo = await FulfillmentOrder.select_for_update().get(id=fo_id)
    return fo, order


# --- creation (called by allocation, inside its transaction) ---------------------------------

# Business days to ship, by service level, counted from the day the order was placed (orders
# placed after the cut-off count from the next business day).
SHIP_DAYS = {"STANDARD": 2, "EXPRESS": 1, "NEXT_DAY": 0}
CUTOFF_HOUR_UTC = 15


def promised_ship_by(placed_at: datetime, service_level: str) -> datetime:
    """The end of the business day by which the order must leave the warehouse."""
    day = placed_at.astimezone(UTC)
    if day.hour >= CUTOFF_HOUR_UTC:
        day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    left = SHIP_DAYS.get(str(service_level), 2)
    while left > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    return day.replace(hour=23, minute=59, second=59, microsecond=0)



async def create_fulfillment_orders(order: Order, actor: str) -> list[FulfillmentOrder]:
    """Give the order's active allocations no fulfillment order covers yet to one fulfillment
    order per warehouse: an OPEN one of this order at that warehouse (not on a pick list yet)
    takes them, otherwise a new one. Inside the caller's transaction, with the order locked."""
    fresh = await Allocation.filter(order_id=order.id, status=AllocationStatus.ACTIVE,
                                    fulfillment_order_id__isnull=True).order_by("id")
    if not fresh:
        return []
    lines = {ln.id: ln for ln in await OrderLine.filter(order_id=order.id)}
    by_wh: dict[int, list[Allocation]] = defaultdict(list)
    for a in fresh:
        by_wh[a.warehouse_id].append(a)
    existing = await FulfillmentOrder.filter(order_id=order.id).order_by("id")
    count = len(existing)
    touched: list[FulfillmentOrder] = []
    for wh_id, allocs in by_wh.items():
        fo = next((f for f in existing if f.warehouse_id == wh_id and f.status is F.OPEN and f.pick_list_id is None), None)
        new = fo is None
        if new:
            count += 1
            fo = await FulfillmentOrder.create(
                number=f"{order.number}-F{count}", order_id=order.id, warehouse_id=wh_id,
                service_level=order.service_level, promised_ship_by=promised_ship_by(order.placed_at, order.service_level),
            )
        fls = {fl.order_line_id: fl for fl in await FulfillmentLine.filter(fulfillment_order_id=fo.id)}
        added: dict[int, int] = defaultdict(int)
        for a in allocs:
            added[a.line_id] += a.quantity
        for line_id, qty in added.items():
            fl = fls.get(line_id)
            if fl is None:
                ln = lines[line_id]
                await FulfillmentLine.create(fulfillment_order_id=fo.id, order_line_id=line_id, variant_id=ln.variant_id,
                                             sku=ln.sku, quantity=qty)
            else:
                fl.quantity += qty
                await fl.save(update_fields=["quantity"])
        await Allocation.filter(id__in=[a.id for a in allocs]).update(fulfillment_order_id=fo.id)
        await fo_event(
            fo, order, "FULFILLMENT_ORDER_CREATED" if new else "FULFILLMENT_ORDER_UPDATED", actor, new=new,
            lines=[{"sku": lines[lid].sku, "quantity": q} for lid, q in added.items()],
        )
        touched.append(fo)
    return touched


async def first_fulfillment_orders(order: Order, takes, lines, actor: str, writes=None) -> list[FulfillmentOrder]:
    """The fulfillment orders of an order's first allocation, in one statement on PostgreSQL (three
    on SQLite) whatever its
    size: one INSERT of the fulfillment orders, one of their lines, one UPDATE linking the
    allocations (the order has no fulfillment order yet, so nothing is merged). `takes`: the
    allocation plan's (line, level, quantity); `lines`: the order's lines.

    `writes` (PostgreSQL): the allocation's own writes (`db.Writes`), not run yet, whose
    allocation rows take their fulfillment order from the `allocation.FO_CTE` CTE: they go in
    the same statement, which then has no link to make."""
    from ordergraph.db import Params, create_rows, dialect, execute, insert_rows  # noqa: PLC0415

    per_wh: dict[int, dict[int, int]] = {}
    for ln, level, qty in takes:
        per_wh.setdefault(level.warehouse_id, defaultdict(int))[ln.id] += qty
    if not per_wh:
        return []
    promised = promised_ship_by(order.placed_at, order.service_level)
    by_line = {ln.id: ln for ln in lines}
    if dialect() == "postgres":
        fos = await _first_fulfillment_orders_pg(order, per_wh, by_line, promised, writes)
    else:
        fos = await create_rows(FulfillmentOrder, [
            {"number": f"{order.number}-F{i}", "order_id": order.id, "warehouse_id": wh_id, "status": F.OPEN,
             "service_level": order.service_level, "promised_ship_by": promised}
            for i, wh_id in enumerate(per_wh, start=1)
        ])
        await insert_rows(FulfillmentLine, [
            {"fulfillment_order_id": fo.id, "order_line_id": line_id, "variant_id": by_line[line_id].variant_id,
             "sku": by_line[line_id].sku, "quantity": qty}
            for fo, qtys in zip(fos, per_wh.values(), strict=True) for line_id, qty in qtys.items()
        ])
        p = Params()
        cases = " ".join(f"WHEN {p(fo.warehouse_id)} THEN CAST({p(fo.id)} AS INTEGER)" for fo in fos)
        await execute(f"UPDATE allocations SET fulfillment_order_id = CASE warehouse_id {cases} END "
                      f"WHERE order_id = {p(order.id)} AND fulfillment_order_id IS NULL", p.values)
    for fo, qtys in zip(fos, per_wh.values(), strict=True):
        await fo_event(fo, order, "FULFILLMENT_ORDER_CREATED", actor, new=True,
                       lines=[{"sku": by_line[lid].sku, "quantity": q} for lid, q in qtys.items()])
    return fos


async def _first_fulfillment_orders_pg(order: Order, per_wh: dict[int, dict[int, int]], by_line, promised,
                                       writes=None) -> list:
    """PostgreSQL: the fulfillment orders, their lines and the allocations' link in one
    statement (data-modifying CTEs: the lines join the new orders' ids by warehouse). With
    `writes`, those writes too, and they link the allocations themselves."""
    from ordergraph.db import Params, fetch  # noqa: PLC0415

    from ordergraph.workflows.events import deferred_as_cte  # noqa: PLC0415

    p = Params()
    more = writes.as_ctes(p) if writes is not None else []
    # A new order: the events its placement holds back so far go here too, not under the
    # inventory row locks that the statement after this one takes.
    events = deferred_as_cte(p) if writes is not None else None
    if events is not None:
        more.append(events[0])
    now = datetime.now(UTC)
    numbers = {wh_id: f"{order.number}-F{i}" for i, wh_id in enumerate(per_wh, start=1)}
    fo_values = ", ".join(
        f"({p(numbers[wh_id])}, {p(order.id)}::int, {p(wh_id)}::int, 'OPEN', NULL, '', {p(str(order.service_level))}, "
        f"{p(promised)}::timestamptz, NULL, {p(now)}::timestamptz, {p(now)}::timestamptz, NULL, NULL, NULL, NULL)"
        for wh_id in per_wh)
    line_values = ", ".join(
        f"({p(wh_id)}::int, {p(line_id)}::int, {p(by_line[line_id].variant_id)}::int, {p(by_line[line_id].sku)}::text, "
        f"{p(qty)}::int)"
        for wh_id, qtys in per_wh.items() for line_id, qty in qtys.items())
    rows = await fetch(
        "WITH f AS (INSERT INTO fulfillment_orders (number, order_id, warehouse_id, status, held_from, hold_reason, "
        "service_level, promised_ship_by, pick_list_id, created_at, updated_at, picked_at, packed_at, shipped_at, "
        f"cancelled_at) VALUES {fo_values} RETURNING id, warehouse_id), "
        "l AS (INSERT INTO fulfillment_lines (fulfillment_order_id, order_line_id, variant_id, sku, quantity, "
        "picked_quantity, packed_quantity, shipped_quantity, short_quantity) SELECT f.id, v.lid, v.vid, v.sku, v.q, "
        f"0, 0, 0, 0 FROM (VALUES {line_values}) AS v(wid, lid, vid, sku, q) JOIN f ON f.warehouse_id = v.wid), "
        + (", ".join(more) if more else
           "a AS (UPDATE allocations SET fulfillment_order_id = f.id FROM f WHERE allocations.order_id = "
           f"{p(order.id)}::int AND allocations.warehouse_id = f.warehouse_id AND allocations.fulfillment_order_id IS NULL)")
        + " SELECT id, warehouse_id" + (", ARRAY(SELECT id FROM _ev ORDER BY id) AS _ev_ids" if events else "")
        + " FROM f", p.values)
    ids = {r["warehouse_id"]: r["id"] for r in rows}
    if events is not None:
        events[1](rows[0]["_ev_ids"])
    return [FulfillmentOrder(id=ids[wh_id], number=numbers[wh_id], order_id=order.id, warehouse_id=wh_id,
                             status=F.OPEN, service_level=order.service_level, promised_ship_by=promised)
            for wh_id in per_wh]


async def on_allocated(order: Order, before: str, lines, plan, actor: str, writes=None) -> None:
    """After an allocation run (inside its transaction): its units go to fulfillment orders; a
    line left short raises OUT_OF_STOCK; an order no longer short resolves its OUT_OF_STOCK.
    `writes`: the run's writes, made with the first fulfillment orders (see
    `first_fulfillment_orders`)."""
    from ordergraph.models.enums import ExceptionKind  # noqa: PLC0415
    from ordergraph.workflows.exceptions import raise_exception, resolve_cause  # noqa: PLC0415

    if plan.takes:
        if before in (OrderStatus.PENDING, OrderStatus.CONFIRMED):
            await first_fulfillment_orders(order, plan.takes, lines, actor, writes)
        else:
            await create_fulfillment_orders(order, actor)
    skus = {ln.id: ln.sku for ln in lines}
    for line_id, qty in plan.short.items():
        await raise_exception(ExceptionKind.OUT_OF_STOCK, f"OUT_OF_STOCK:{order.id}:{line_id}",
                              f"{qty} x {skus[line_id]} backordered on {order.number}", actor, order_id=order.id,
                              details={"sku": skus[line_id], "backordered": qty})
    if before in (OrderStatus.BACKORDERED, OrderStatus.PARTIALLY_ALLOCATED) and not plan.short:
        await resolve_cause(ExceptionKind.OUT_OF_STOCK, actor, "ALLOCATED", "stock arrived and was allocated",
                            order_id=order.id)


async def fulfillment_orders_of(order_id: int) -> list[FulfillmentOrder]:
    return await FulfillmentOrder.filter(order_id=order_id).order_by("id")


# --- the order's status while it is fulfilled ------------------------------------------------


async def progress_status(order: Order) -> OrderStatus:
    """The order's status from its lines and fulfillment orders (see order_lifecycle.IN_PROGRESS)."""
    lines = await OrderLine.filter(order_id=order.id)
    open_units = sum(ln.quantity - ln.cancelled_quantity for ln in lines)
    shipped = sum(ln.shipped_quantity for ln in lines)
    if open_units and shipped >= open_units:
        return OrderStatus.SHIPPED
    if shipped:
        return OrderStatus.PARTIALLY_SHIPPED
    if await FulfillmentOrder.filter(order_id=order.id, status__in=[F.PICKING, F.PICKED, F.PACKED]).exists():
        return OrderStatus.IN_FULFILLMENT
    return allocation.status_of(lines)


async def sync_order_status(order: Order, actor: str, reason: str) -> bool:
    """Move the (locked) order to the status its fulfillment says, with an event; False when
    it is already there or the order is not in fulfillment (cancelled, pending...)."""
    if order.status not in ORDER.states_with("PROGRESS"):
        return False
    target = ORDER.target(order, "PROGRESS", WORKFLOW)
    new = choose(target, await progress_status(order))
    if new == order.status:
        return False
    before = order.status
    order.status = new
    await order.save(update_fields=["status", "updated_at"])
    await order_event(order, "ORDER_STATUS_CHANGED", actor, status={"from": before, "to": new}, reason=reason)
    return True


# --- pick lists ------------------------------------------------------------------------------


async def _bins(warehouse_id: int, variant_ids: set[int]) -> dict[int, str]:
    levels = await InventoryLevel.filter(warehouse_id=warehouse_id, variant_id__in=list(variant_ids))
    return {lv.variant_id: lv.bin_location for lv in levels}


async def _start_picking(fos: list[FulfillmentOrder], pick_list: PickList, actor: str) -> None:
    lines = await FulfillmentLine.filter(fulfillment_order_id__in=[f.id for f in fos]).order_by("id")
    variants = {v.id: v for v in await ProductVariant.filter(id__in=list({fl.variant_id for fl in lines}))}
    bins = await _bins(pick_list.warehouse_id, {fl.variant_id for fl in lines})
    items = [
        PickListItem(pick_list_id=pick_list.id, fulfillment_line_id=fl.id, fulfillment_order_id=fl.fulfillment_order_id,
                     variant_id=fl.variant_id, sku=fl.sku, barcode=variants[fl.variant_id].barcode,
                     bin_location=bins.get(fl.variant_id, ""), quantity=fl.quantity - fl.picked_quantity)
        for fl in lines if fl.quantity - fl.picked_quantity > 0
    ]
    await PickListItem.bulk_create(items)
    orders = {o.id: o for o in await Order.filter(id__in=list({f.order_id for f in fos})).order_by("id").select_for_update()}
    for fo in fos:
        fo.status = FULFILLMENT.target(fo, "START_PICKING")
        fo.pick_list_id = pick_list.id
        await fo.save(update_fields=["status", "pick_list_id", "updated_at"])
        await fo_event(fo, orders[fo.order_id], "PICKING_STARTED", actor, pick_list=pick_list.number)
    for order in orders.values():
        await sync_order_status(order, actor, "picking started")
    await record_event("PickList", pick_list.id, "PICK_LIST_CREATED", actor, {
        "number": pick_list.number, "kind": pick_list.kind, "warehouse_id": pick_list.warehouse_id,
        "fulfillment_orders": [f.number for f in fos], "criteria": pick_list.criteria,
    }, new_aggregate=True)


async def _new_pick_list(warehouse_id: int, kind: PickListKind, criteria: dict, actor: str) -> PickList:
    pl = await PickList.create(number=_temp_number("PL"), warehouse_id=warehouse_id, kind=kind, criteria=criteria,
                               created_by=actor)
    pl.number = f"PL-{pl.id:06d}"
    await pl.save(update_fields=["number"])
    return pl


async def _warehouse(warehouse_id: int) -> Warehouse:
    wh = await Warehouse.get_or_none(id=warehouse_id)
    if wh is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such warehouse", ["warehouseId"])
    return wh


async def create_batch_pick_list(
    warehouse_id: int, actor: str, *, fulfillment_order_ids: list[int] | None = None, limit: int = 50,
) -> PickList:
    """One pick list for many fulfillment orders of one warehouse: the given ones (each must be
    OPEN there, not held, its order not on hold) or the oldest OPEN ones, up to `limit`."""
    await _warehouse(warehouse_id)
    if not 1 <= limit <= 500:
        raise DomainError(ErrorCode.INVALID_VALUE, "limit must be between 1 and 500", ["limit"])
    async with transaction():
        if fulfillment_order_ids:
            fos = await FulfillmentOrder.filter(id__in=fulfillment_order_ids).order_by("id").select_for_update()
            problems = Problems()
            found = {f.id for f in fos}
            for i, fo_id in enumerate(fulfillment_order_ids):
                if fo_id not in found:
                    problems.add(ErrorCode.NOT_FOUND, "no such fulfillment order", "fulfillmentOrderIds", i)
            for fo in fos:
                i = fulfillment_order_ids.index(fo.id)
                if fo.warehouse_id != warehouse_id:
                    problems.add(ErrorCode.WAREHOUSE_MISMATCH, f"{fo.number} ships from another warehouse",
                                 "fulfillmentOrderIds", i)
                elif fo.status is not F.OPEN:
                    problems.add(ErrorCode.INVALID_TRANSITION, f"{fo.number} is {fo.status}, not OPEN",
                                 "fulfillmentOrderIds", i)
            held = await _orders_on_hold([f.order_id for f in fos])
            for fo in fos:
                if fo.order_id in held:
                    problems.add(ErrorCode.ORDER_ON_HOLD, f"the order of {fo.number} is on hold", "fulfillmentOrderIds",
                                 fulfillment_order_ids.index(fo.id))
            problems.raise_if_any()
        else:
            fos = await _open_fos(warehouse_id, limit)
        if not fos:
            raise DomainError(ErrorCode.NOTHING_TO_PICK, "no open fulfillment order to pick at this warehouse")
        pl = await _new_pick_list(warehouse_id, PickListKind.BATCH, {}, actor)
        await _start_picking(fos, pl, actor)
    return pl


async def _orders_on_hold(order_ids: list[int]) -> set[int]:
    from ordergraph.models import OrderHold  # noqa: PLC0415

    rows = await OrderHold.filter(order_id__in=order_ids, released_at__isnull=True).values_list("order_id", flat=True)
    return set(rows)


async def _open_fos(warehouse_id: int, limit: int, *, placed_before: datetime | None = None,
                    service_level: ServiceLevel | None = None, carrier: str | None = None) -> list[FulfillmentOrder]:
    query = FulfillmentOrder.filter(warehouse_id=warehouse_id, status=F.OPEN)
    if placed_before is not None:
        query = query.filter(order__placed_at__lte=placed_before)
    if service_level is not None:
        query = query.filter(service_level=service_level)
    if carrier is not None:
        query = query.filter(order__channel__carrier_selection=CarrierSelection.PREFERRED,
                             order__channel__preferred_carrier=carrier)
    candidates = await query.order_by("created_at", "id").limit(limit * 2 + 10).select_for_update()
    held = await _orders_on_hold([f.order_id for f in candidates])
    return [f for f in candidates if f.order_id not in held][:limit]


async def release_wave(
    warehouse_id: int, actor: str, *, cutoff: datetime, service_level: ServiceLevel | None = None,
    carrier: str | None = None, limit: int = 200,
) -> PickList:
    """Wave picking: every OPEN fulfillment order of the warehouse whose order was placed by the
    cut-off, optionally only one service level or the orders of channels that prefer one carrier."""
    await _warehouse(warehouse_id)
    if cutoff.tzinfo is None:
        raise DomainError(ErrorCode.INVALID_VALUE, "the cut-off needs a time zone", ["cutoff"])
    if carrier is not None:
        from ordergraph.integrations.carriers.registry import get_carrier  # noqa: PLC0415

        try:
            get_carrier(carrier)
        except Exception:  # noqa: BLE001 - unknown code
            raise DomainError(ErrorCode.UNKNOWN_CARRIER, f"no carrier {carrier!r}", ["carrier"]) from None
    async with transaction():
        fos = await _open_fos(warehouse_id, limit, placed_before=cutoff, service_level=service_level, carrier=carrier)
        if not fos:
            raise DomainError(ErrorCode.NOTHING_TO_PICK, "no open fulfillment order matches this wave")
        criteria = {"cutoff": cutoff.astimezone(UTC).isoformat(), "service_level": service_level and str(service_level),
                    "carrier": carrier}
        pl = await _new_pick_list(warehouse_id, PickListKind.WAVE, criteria, actor)
        await _start_picking(fos, pl, actor)
    return pl


@dataclass
class PickResult:
    pick_list: PickList
    picked: list[tuple[PickListItem, int]] = field(default_factory=list)
    completed: list[FulfillmentOrder] = field(default_factory=list)


def _remaining(item: PickListItem) -> int:
    return item.quantity - item.picked_quantity - item.short_quantity


async def _locked_pick_list(pick_list_id: int) -> PickList:
    pl = await PickList.select_for_update().get_or_none(id=pick_list_id)
    if pl is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such pick list", ["pickListId"])
    if pl.status is not PickListStatus.OPEN:
        raise DomainError(ErrorCode.INVALID_TRANSITION, f"pick list {pl.number} is {pl.status}", ["pickListId"])
    return pl


def _matching(items: list[PickListItem], scan: str, fo_id: int | None) -> list[PickListItem]:
    code = scan.strip()
    return [i for i in items if (i.sku == code or (i.barcode and i.barcode == code))
            and (fo_id is None or i.fulfillment_order_id == fo_id)]


async def confirm_pick(pick_list_id: int, scan: str, quantity: int, actor: str, *,
                       fulfillment_order_id: int | None = None) -> PickResult:
    """A scan of a barcode or SKU confirms `quantity` units. A code that is not on the list is a
    MISPICK, more units than the list still needs an OVERPICK; neither changes anything. Units go
    to the list's fulfillment orders oldest first (or to the one given); a fulfillment order
    whose every unit is picked becomes PICKED."""
    if quantity < 1:
        raise DomainError(ErrorCode.INVALID_VALUE, "quantity must be at least 1", ["quantity"])
    async with transaction():
        pl = await _locked_pick_list(pick_list_id)
        items = await PickListItem.filter(pick_list_id=pl.id).order_by("fulfillment_order_id", "id")
        matching = _matching(items, scan, fulfillment_order_id)
        if not matching:
            expected = sorted({i.sku for i in items if _remaining(i) > 0})
            raise DomainError(ErrorCode.MISPICK, f"{scan!r} is not on pick list {pl.number}", ["scan"],
                              {"scanned": scan, "expected": expected})
        remaining = sum(_remaining(i) for i in matching)
        if quantity > remaining:
            raise DomainError(ErrorCode.OVERPICK, f"only {remaining} more of {matching[0].sku} to pick", ["quantity"],
                              {"sku": matching[0].sku, "remaining": remaining, "scanned": quantity})
        result = PickResult(pl)
        left = quantity
        touched_fos: set[int] = set()
        for item in matching:
            take = min(left, _remaining(item))
            if take <= 0:
                continue
            item.picked_quantity += take
            await item.save(update_fields=["picked_quantity"])
            fl = await FulfillmentLine.get(id=item.fulfillment_line_id)
            fl.picked_quantity += take
            await fl.save(update_fields=["picked_quantity"])
            result.picked.append((item, take))
            touched_fos.add(item.fulfillment_order_id)
            left -= take
            if left == 0:
                break
        await record_event("PickList", pl.id, "PICK_CONFIRMED", actor, {
            "number": pl.number, "sku": matching[0].sku, "scan": scan, "quantity": quantity,
            "fulfillment_orders": sorted(touched_fos),
        })
        result.completed = await _complete_picked(sorted(touched_fos), actor)
        await _maybe_close_list(pl, actor)
    return result


async def _complete_picked(fo_ids: list[int], actor: str) -> list[FulfillmentOrder]:
    done = []
    for fo_id in fo_ids:
        fo = await FulfillmentOrder.get(id=fo_id)
        if fo.status is not F.PICKING:
            continue
        lines = await FulfillmentLine.filter(fulfillment_order_id=fo.id)
        if any(fl.picked_quantity < fl.quantity for fl in lines):
            continue
        order = await locked_order(fo.order_id)
        fo = await FulfillmentOrder.select_for_update().get(id=fo_id)
        if all(fl.quantity == 0 for fl in lines):
            fo.status = FULFILLMENT.target(fo, "SHORT_CLOSE", INTERNAL)
            fo.cancelled_at = _now()
            await fo.save(update_fields=["status", "cancelled_at", "updated_at"])
            await fo_event(fo, order, "FULFILLMENT_ORDER_CANCELLED", actor, reason="every unit was short-picked")
        else:
            fo.status = FULFILLMENT.target(fo, "COMPLETE_PICK", INTERNAL)
            fo.picked_at = _now()
            await fo.save(update_fields=["status", "picked_at", "updated_at"])
            await fo_event(fo, order, "FULFILLMENT_PICKED", actor,
                           lines=[{"sku": fl.sku, "quantity": fl.picked_quantity} for fl in lines if fl.quantity])
            done.append(fo)
        await sync_order_status(order, actor, "picking finished")
    return done


async def _maybe_close_list(pl: PickList, actor: str) -> None:
    items = await PickListItem.filter(pick_list_id=pl.id)
    if all(_remaining(i) == 0 for i in items):
        pl.status = PickListStatus.COMPLETED
        pl.completed_at = _now()
        await pl.save(update_fields=["status", "completed_at"])
        await record_event("PickList", pl.id, "PICK_LIST_COMPLETED", actor, {
            "number": pl.number, "picked": sum(i.picked_quantity for i in items),
            "short": sum(i.short_quantity for i in items),
        })


@dataclass
class ShortPickResult:
    pick_list: PickList
    short: list[tuple[PickListItem, int]] = field(default_factory=list)
    reallocated: list[dict] = field(default_factory=list)  # {"sku", "warehouse", "quantity"}
    backordered: list[dict] = field(default_factory=list)  # {"sku", "quantity"}


async def report_short_pick(pick_list_id: int, scan: str, missing: int, actor: str, *,
                            fulfillment_order_id: int | None = None, reason: str = "") -> ShortPickResult:
    """The picker found `missing` fewer units of a SKU than the list asks for. For each
    fulfillment order concerned (newest first, so older orders keep their units):
    the missing units leave its lines and allocations, the warehouse's on-hand and allocated
    go down by them (they are not in the bin: an ADJUSTMENT movement), and the order is
    allocated again from the other warehouses, or backordered, with events."""
    if missing < 1:
        raise DomainError(ErrorCode.INVALID_VALUE, "missing must be at least 1", ["missing"])
    async with transaction():
        pl = await _locked_pick_list(pick_list_id)
        items = await PickListItem.filter(pick_list_id=pl.id).order_by("-fulfillment_order_id", "-id")
        matching = _matching(items, scan, fulfillment_order_id)
        if not matching:
            raise DomainError(ErrorCode.MISPICK, f"{scan!r} is not on pick list {pl.number}", ["scan"])
        remaining = sum(_remaining(i) for i in matching)
        if missing > remaining:
            raise DomainError(ErrorCode.SHORT_PICK_EXCEEDS_REMAINING,
                              f"only {remaining} of {matching[0].sku} are still to pick", ["missing"],
                              {"remaining": remaining})
        result = ShortPickResult(pl)
        left = missing
        per_fo: dict[int, list[tuple[PickListItem, int]]] = defaultdict(list)
        for item in matching:
            take = min(left, _remaining(item))
            if take > 0:
                per_fo[item.fulfillment_order_id].append((item, take))
                left -= take
            if left == 0:
                break
        # lock the orders, in id order, before the inventory rows
        fos = {f.id: f for f in await FulfillmentOrder.filter(id__in=list(per_fo))}
        orders = {o.id: o for o in await Order.filter(id__in=list({f.order_id for f in fos.values()}))
                  .order_by("id").select_for_update()}
        for fo_id in sorted(per_fo):
            fo = fos[fo_id]
            order = orders[fo.order_id]
            await _short_one(fo, order, per_fo[fo_id], actor, reason, result)
        await record_event("PickList", pl.id, "SHORT_PICK_REPORTED", actor, {
            "number": pl.number, "sku": matching[0].sku, "missing": missing, "reason": reason,
        })
        await _complete_picked(sorted(per_fo), actor)
        await _maybe_close_list(pl, actor)
    return result


async def _short_one(fo: FulfillmentOrder, order: Order, takes: list[tuple[PickListItem, int]], actor: str,
                     reason: str, result: ShortPickResult) -> None:
    level_changes: list[Change] = []
    released_lines: dict[int, int] = defaultdict(int)
    for item, qty in takes:
        item.short_quantity += qty
        await item.save(update_fields=["short_quantity"])
        fl = await FulfillmentLine.get(id=item.fulfillment_line_id)
        fl.quantity -= qty
        fl.short_quantity += qty
        await fl.save(update_fields=["quantity", "short_quantity"])
        released_lines[fl.order_line_id] += qty
        result.short.append((item, qty))
        # the allocations of this line at this warehouse give the units back, newest first
        left = qty
        for a in await Allocation.filter(fulfillment_order_id=fo.id, line_id=fl.order_line_id,
                                         status=AllocationStatus.ACTIVE).order_by("-id"):
            take = min(left, a.quantity)
            if take == a.quantity:
                a.status = AllocationStatus.RELEASED
                a.released_at = _now()
                await a.save(update_fields=["status", "released_at"])
            else:
                a.quantity -= take
                await a.save(update_fields=["quantity"])
            left -= take
            if left == 0:
                break
        level = await InventoryLevel.get(warehouse_id=fo.warehouse_id, variant_id=fl.variant_id)
        level_changes.append(Change(
            level.id, MovementKind.ADJUSTMENT, d_on_hand=-qty, d_allocated=-qty, respect_safety_stock=False,
            reason=f"short pick on {takes[0][0].pick_list_id and 'pick list'}: {reason or 'not found in bin'}",
            reference=fo.number, order_id=order.id, quantity=-qty,
        ))
    level_changes.sort(key=lambda c: c.level_id)
    await InventoryLevel.filter(id__in=[c.level_id for c in level_changes]).order_by("id").select_for_update()
    await move_many(level_changes, actor=actor)
    lines = await OrderLine.filter(order_id=order.id).order_by("position")
    for ln in lines:
        if ln.id in released_lines:
            ln.allocated_quantity -= released_lines[ln.id]
            await ln.save(update_fields=["allocated_quantity"])
    skus = {ln.id: ln.sku for ln in lines}
    await fo_event(fo, order, "SHORT_PICKED", actor, reason=reason,
                   lines=[{"sku": skus[lid], "quantity": q} for lid, q in released_lines.items()])
    # allocate the missing units again, anywhere but the warehouse that did not have them
    channel = await SalesChannel.get(id=order.channel_id)
    warehouses = [w for w in await allocation.candidate_warehouses(channel, order.shipping_address.get("country", ""))
                  if w.id != fo.warehouse_id]
    short_lines = [ln for ln in lines if ln.id in released_lines]
    plan = await allocation.allocate_lines(order, channel, short_lines, actor, reject_short=False, warehouses=warehouses)
    codes = {w.id: w.code for w in warehouses}
    result.reallocated.extend({"sku": ln.sku, "warehouse": codes[lvl.warehouse_id], "quantity": q}
                              for ln, lvl, q in plan.takes)
    result.backordered.extend({"sku": skus[lid], "quantity": q} for lid, q in plan.short.items())
    await order_event(order, "ORDER_REALLOCATED", actor, reason="short pick",
                      allocations=[{"sku": ln.sku, "warehouse": codes[lvl.warehouse_id], "quantity": q}
                                   for ln, lvl, q in plan.takes],
                      backordered=[{"sku": skus[lid], "quantity": q} for lid, q in plan.short.items()])
    await create_fulfillment_orders(order, actor)
    await sync_order_status(order, actor, "short pick")
    from ordergraph.models.enums import ExceptionKind  # noqa: PLC0415
    from ordergraph.workflows.exceptions import raise_exception  # noqa: PLC0415

    pl_id = takes[0][0].pick_list_id
    for lid, q in released_lines.items():
        await raise_exception(ExceptionKind.SHORT_PICK, f"SHORT_PICK:{pl_id}:{fo.id}:{lid}",
                              f"{q} x {skus[lid]} missing from the bin at {fo.number}", actor, order_id=order.id,
                              details={"sku": skus[lid], "missing": q, "fulfillment_order": fo.number, "reason": reason})
    for lid, q in plan.short.items():
        await raise_exception(ExceptionKind.OUT_OF_STOCK, f"OUT_OF_STOCK:{order.id}:{lid}",
                              f"{q} x {skus[lid]} backordered after a short pick", actor, order_id=order.id,
                              details={"sku": skus[lid], "backordered": q})


# --- packing -----------------------------------------------------------------------------------


@dataclass
class PackageSpec:
    weight_grams: int
    length_cm: Decimal
    width_cm: Decimal
    height_cm: Decimal
    items: list[tuple[str, int]]  # (SKU or barcode, quantity)


async def pack(fo_id: int, packages: list[PackageSpec], actor: str) -> list[Package]:
    """Put picked units into packages. Every problem is reported at once and nothing is written
    then. The fulfillment order becomes PACKED when every picked unit is in a package."""
    async with transaction():
        fo, order = await _locked_fo(fo_id)
        FULFILLMENT.target(fo, "PACK")
        lines = await FulfillmentLine.filter(fulfillment_order_id=fo.id).order_by("id")
        variants = {v.id: v for v in await ProductVariant.filter(id__in=[fl.variant_id for fl in lines])}
        problems = Problems()
        if not packages:
            problems.add(ErrorCode.REQUIRED, "at least one package", "packages")
        room = {fl.id: fl.picked_quantity - fl.packed_quantity for fl in lines}
        resolved: list[list[tuple[FulfillmentLine, int]]] = []
        for p_i, spec in enumerate(packages):
            for name, value in (("weightGrams", spec.weight_grams), ("lengthCm", spec.length_cm),
                                ("widthCm", spec.width_cm), ("heightCm", spec.height_cm)):
                if value is None or value <= 0:
                    problems.add(ErrorCode.INVALID_VALUE, f"{name} must be positive", "packages", p_i, name)
            if not spec.items:
                problems.add(ErrorCode.REQUIRED, "a package holds at least one item", "packages", p_i, "items")
            contents = []
            for i_i, (code, qty) in enumerate(spec.items):
                fl = next((fl for fl in lines if fl.sku == code or variants[fl.variant_id].barcode == code), None)
                if fl is None:
                    problems.add(ErrorCode.ITEM_NOT_IN_FULFILLMENT, f"{code!r} is not in {fo.number}",
                                 "packages", p_i, "items", i_i, "sku")
                    continue
                if qty < 1:
                    problems.add(ErrorCode.INVALID_VALUE, "quantity must be at least 1", "packages", p_i, "items", i_i,
                                 "quantity")
                    continue
                if qty > room[fl.id]:
                    problems.add(ErrorCode.OVERPACK, f"only {max(room[fl.id], 0)} picked unit(s) of {fl.sku} left to pack",
                                 "packages", p_i, "items", i_i, "quantity", remaining=max(room[fl.id], 0))
                room[fl.id] -= qty
                contents.append((fl, qty))
            resolved.append(contents)
        problems.raise_if_any()
        made = []
        count = await Package.filter(fulfillment_order_id=fo.id).count()
        for spec, contents in zip(packages, resolved, strict=True):
            count += 1
            pkg = await Package.create(
                number=f"{fo.number}-P{count}", fulfillment_order_id=fo.id, weight_grams=spec.weight_grams,
                length_cm=spec.length_cm, width_cm=spec.width_cm, height_cm=spec.height_cm, created_by=actor,
            )
            await PackageItem.bulk_create([PackageItem(package_id=pkg.id, fulfillment_line_id=fl.id, quantity=q)
                                           for fl, q in contents])
            for fl, q in contents:
                fl.packed_quantity += q
            made.append(pkg)
            await fo_event(fo, order, "PACKAGE_PACKED", actor, package=pkg.number, weight_grams=spec.weight_grams,
                           items=[{"sku": fl.sku, "quantity": q} for fl, q in contents])
        for fl in lines:
            await fl.save(update_fields=["packed_quantity"])
        target = FULFILLMENT.target(fo, "PACK")
        if all(fl.packed_quantity == fl.picked_quantity == fl.quantity for fl in lines):
            fo.status = choose(target, F.PACKED)
            fo.packed_at = _now()
            await fo.save(update_fields=["status", "packed_at", "updated_at"])
            await fo_event(fo, order, "FULFILLMENT_PACKED", actor, packages=await Package.filter(
                fulfillment_order_id=fo.id).count())
    return made


# --- hold, release, cancel ---------------------------------------------------------------------


async def hold(fo_id: int, reason: str, actor: str) -> FulfillmentOrder:
    async with transaction():
        fo, order = await _locked_fo(fo_id)
        before = fo.status
        fo.status = FULFILLMENT.target(fo, "HOLD")
        fo.held_from, fo.hold_reason = before, reason
        await fo.save(update_fields=["status", "held_from", "hold_reason", "updated_at"])
        await fo_event(fo, order, "FULFILLMENT_HELD", actor, reason=reason, status={"from": before, "to": fo.status})
    return fo


async def release(fo_id: int, actor: str) -> FulfillmentOrder:
    async with transaction():
        fo, order = await _locked_fo(fo_id)
        target = FULFILLMENT.target(fo, "RELEASE")
        fo.status = choose(target, fo.held_from or F.OPEN)
        fo.held_from, fo.hold_reason = None, ""
        await fo.save(update_fields=["status", "held_from", "hold_reason", "updated_at"])
        await fo_event(fo, order, "FULFILLMENT_RELEASED", actor, status={"from": F.ON_HOLD, "to": fo.status})
    return fo


async def cancel(fo_id: int, reason: str, actor: str) -> FulfillmentOrder:
    """Cancel what one warehouse was to ship: its allocations go back to stock, picked units
    go back to the shelf (they never left the building), and the order's lines are
    allocated again elsewhere or backordered."""
    async with transaction():
        fo, order = await _locked_fo(fo_id)
        if await FulfillmentLine.filter(fulfillment_order_id=fo.id, shipped_quantity__gt=0).exists():
            raise DomainError(ErrorCode.INVALID_TRANSITION, f"{fo.number} has shipped packages", ["id"])
        await _cancel_fo(fo, order, reason, actor)
        await sync_order_status(order, actor, "fulfillment order cancelled")
    return fo


async def _cancel_fo(fo: FulfillmentOrder, order: Order, reason: str, actor: str, *, give_back: bool = True) -> None:
    fo.status = FULFILLMENT.target(fo, "CANCEL")
    fo.cancelled_at = _now()
    await fo.save(update_fields=["status", "cancelled_at", "updated_at"])
    if give_back:
        allocs = await Allocation.filter(fulfillment_order_id=fo.id, status=AllocationStatus.ACTIVE)
        if allocs:
            lines = {ln.id: ln for ln in await OrderLine.filter(order_id=order.id)}
            levels = {lv.variant_id: lv for lv in await InventoryLevel.filter(
                warehouse_id=fo.warehouse_id, variant_id__in=[lines[a.line_id].variant_id for a in allocs],
            ).order_by("id").select_for_update()}
            changes = sorted(
                (Change(levels[lines[a.line_id].variant_id].id, MovementKind.DEALLOCATION, d_allocated=-a.quantity,
                        reference=fo.number, order_id=order.id, reason=f"fulfillment order cancelled: {reason}")
                 for a in allocs),
                key=lambda c: c.level_id,
            )
            await move_many(changes, actor=actor)
            for a in allocs:
                a.status = AllocationStatus.RELEASED
                a.released_at = _now()
                lines[a.line_id].allocated_quantity -= a.quantity
                lines[a.line_id].backordered_quantity += a.quantity
            await Allocation.bulk_update(allocs, fields=["status", "released_at"])
            for ln in {lines[a.line_id] for a in allocs}:
                await ln.save(update_fields=["allocated_quantity", "backordered_quantity"])
    await PickListItem.filter(fulfillment_order_id=fo.id).update(short_quantity=0)  # nothing left to pick for it
    await fo_event(fo, order, "FULFILLMENT_ORDER_CANCELLED", actor, reason=reason)


async def cancel_for_order(order: Order, reason: str, actor: str) -> None:
    """The order is cancelled (its allocations already given back by the caller): close its
    fulfillment orders. Inside the caller's transaction, with the order locked."""
    from ordergraph.models.enums import ExceptionKind  # noqa: PLC0415
    from ordergraph.workflows.exceptions import resolve_cause  # noqa: PLC0415

    for fo in await FulfillmentOrder.filter(order_id=order.id, status__in=[*ACTIVE, F.ON_HOLD]).order_by("id"):
        await _cancel_fo(fo, order, reason, actor, give_back=False)
    for kind in ExceptionKind:
        await resolve_cause(kind, actor, "ORDER_CANCELLED", reason, order_id=order.id)


def carrier_hint(channel: SalesChannel) -> str | None:
    return channel.preferred_carrier if channel.carrier_selection is CarrierSelection.PREFERRED else None
