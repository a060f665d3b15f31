"""Checkout reservations: hold stock for a cart for a while, then an order consumes them.

A reservation is all-or-nothing: every line is held (split over the channel's active
warehouses in priority order) or nothing is written. It ends exactly once: CONSUMED by an
order, RELEASED, or EXPIRED. Ending claims the row with a conditional UPDATE of its status
(ACTIVE → …) before any stock is freed, so concurrent release/expiry (from any number of
processes) frees each unit once. Inventory rows are locked in id order before the
reservation row, the same order placeOrder uses, so the two never deadlock.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from ordergraph.auth.viewer import SYSTEM_ACTOR
from ordergraph.config import get_settings
from ordergraph.db import transaction
from ordergraph.models import (
    InventoryLevel,
    ProductVariant,
    Reservation,
    ReservationLine,
    SalesChannel,
    Warehouse,
)
from ordergraph.models.enums import MovementKind, ReservationStatus
from ordergraph.workflows.allocation import lock_levels
from ordergraph.workflows.backorders import on_stock_increased
from ordergraph.workflows.errors import DomainError, ErrorCode, Problems
from ordergraph.workflows.events import record_event
from ordergraph.workflows.lifecycle import StateMachine
from ordergraph.workflows.stock import move

S = ReservationStatus
RESERVATION = StateMachine(
    "reservation",
    {(S.ACTIVE, "CONSUME"): S.CONSUMED, (S.ACTIVE, "RELEASE"): S.RELEASED, (S.ACTIVE, "EXPIRE"): S.EXPIRED},
)
MAX_LINES = 100
MAX_QUANTITY = 10_000
MAX_TTL_SECONDS = 24 * 3600


def _now() -> datetime:
    return datetime.now(UTC)


def _not_found(token: str) -> DomainError:
    return DomainError(ErrorCode.RESERVATION_NOT_FOUND, f"no reservation {token}", ["token"])


async def _check_request(
    channel_code: str, lines: list[tuple[str, int]], ttl: int, allowed_channel_ids: frozenset[int] | None
) -> tuple[SalesChannel, dict[str, ProductVariant]]:
    problems = Problems()
    channel = await SalesChannel.get_or_none(code=channel_code)
    if channel is not None and allowed_channel_ids is not None and channel.id not in allowed_channel_ids:
        channel = None  # another partner's channel answers exactly like a missing one
    if channel is None:
        problems.add(ErrorCode.UNKNOWN_CHANNEL, f"no sales channel {channel_code}", "channel")
    elif not channel.active:
        problems.add(ErrorCode.CHANNEL_INACTIVE, f"sales channel {channel_code} is inactive", "channel")
    if not lines:
        problems.add(ErrorCode.REQUIRED, "at least one line is required", "lines")
    if len(lines) > MAX_LINES:
        problems.add(ErrorCode.INVALID_VALUE, f"at most {MAX_LINES} lines", "lines")
    if not 1 <= ttl <= MAX_TTL_SECONDS:
        problems.add(ErrorCode.INVALID_VALUE, f"ttlSeconds must be between 1 and {MAX_TTL_SECONDS}", "ttlSeconds")
    variants = {v.sku: v for v in await ProductVariant.filter(sku__in=[s for s, _ in lines])}
    seen: set[str] = set()
    for i, (sku, qty) in enumerate(lines):
        v = variants.get(sku)
        if v is None:
            problems.add(ErrorCode.UNKNOWN_SKU, f"no variant with SKU {sku}", "lines", i, "sku")
        elif not v.active:
            problems.add(ErrorCode.INACTIVE_SKU, f"{sku} is not sold any more", "lines", i, "sku")
        if sku in seen:
            problems.add(ErrorCode.DUPLICATE_LINE, f"{sku} appears on more than one line", "lines", i, "sku")
        seen.add(sku)
        if not 1 <= qty <= MAX_QUANTITY:
            problems.add(ErrorCode.QUANTITY_OUT_OF_RANGE, f"quantity must be 1 to {MAX_QUANTITY}", "lines", i, "quantity")
    problems.raise_if_any()
    return channel, variants


async def reserve_stock(
    channel_code: str,
    lines: list[tuple[str, int]],
    cart_reference: str,
    owner: str,
    actor: str,
    ttl_seconds: int | None = None,
    allowed_channel_ids: frozenset[int] | None = None,
) -> Reservation:
    """Hold `lines` [(sku, quantity)] on the channel for `ttl_seconds` (settings default).

    `allowed_channel_ids`: None lets the caller use any channel; others answer UNKNOWN_CHANNEL.
    """
    ttl = get_settings().reservation_ttl_seconds if ttl_seconds is None else ttl_seconds
    channel, variants = await _check_request(channel_code, lines, ttl, allowed_channel_ids)
    warehouse_ids = list(
        await Warehouse.filter(channel_links__channel_id=channel.id, active=True)
        .order_by("priority", "id")
        .values_list("id", flat=True)
    )
    async with transaction():
        levels = await lock_levels(warehouse_ids, [v.id for v in variants.values()])
        plan, shortages = [], []
        for sku, qty in lines:
            takes = _plan_line(variants[sku].id, qty, warehouse_ids, levels)
            held = sum(q for _, q in takes)
            if held < qty:
                shortages.append({"sku": sku, "requested": qty, "available": held})
            plan.extend(takes)
        if shortages:
            raise DomainError(
                ErrorCode.INSUFFICIENT_STOCK,
                "not enough stock for " + ", ".join(s["sku"] for s in shortages),
                ["lines"],
                {"shortages": shortages},
            )
        reservation = await Reservation.create(
            token="RES-" + secrets.token_hex(10).upper(),
            channel_id=channel.id,
            cart_reference=cart_reference,
            expires_at=_now() + timedelta(seconds=ttl),
            owner=owner,
        )
        for level, qty in plan:
            await move(level.id, MovementKind.RESERVATION, actor=actor, d_reserved=qty, reference=reservation.token)
            await ReservationLine.create(
                reservation=reservation, warehouse_id=level.warehouse_id, variant_id=level.variant_id, quantity=qty
            )
        await record_event(
            "Reservation", reservation.id, "RESERVATION_CREATED", actor,
            {"token": reservation.token, "channel": channel.code, "expires_at": reservation.expires_at,
             "lines": [{"sku": sku, "quantity": qty} for sku, qty in lines]},
        )
    return reservation


def _plan_line(variant_id: int, quantity: int, warehouse_ids: list[int], levels) -> list[tuple[InventoryLevel, int]]:
    """Take what each warehouse has available, in priority order, until the line is covered."""
    takes, remaining = [], quantity
    for wid in warehouse_ids:
        level = levels.get((wid, variant_id))
        take = min(remaining, max(level.available, 0)) if level else 0
        if take > 0:
            takes.append((level, take))
            remaining -= take
        if remaining == 0:
            break
    return takes


async def _free(
    reservation: Reservation, status: ReservationStatus, actor: str, due_before: datetime | None = None
) -> list[int] | None:
    """End an ACTIVE reservation and give its units back; None if another caller ended it first.

    Returns the variant ids that became more available.
    """
    lines = await ReservationLine.filter(reservation_id=reservation.id).order_by("id")
    async with transaction():
        levels = await lock_levels(list({ln.warehouse_id for ln in lines}), list({ln.variant_id for ln in lines}))
        claim = Reservation.filter(id=reservation.id, status=S.ACTIVE)
        if due_before is not None:
            claim = claim.filter(expires_at__lte=due_before)
        if not await claim.update(status=status, updated_at=_now()):
            return None
        for ln in lines:
            level = levels[(ln.warehouse_id, ln.variant_id)]
            await move(level.id, MovementKind.RESERVATION_RELEASE, actor=actor, d_reserved=-ln.quantity,
                       reference=reservation.token, reason=status.value.lower())
        await record_event("Reservation", reservation.id, f"RESERVATION_{status.value}", actor, {"token": reservation.token})
    return sorted({ln.variant_id for ln in lines})


async def release_reservation(
    token: str, actor: str, allowed_channel_ids: frozenset[int] | None = None
) -> Reservation:
    """Give an ACTIVE reservation's units back (RESERVATION_RELEASE rows), status RELEASED."""
    reservation = await Reservation.get_or_none(token=token)
    if reservation is None or (allowed_channel_ids is not None and reservation.channel_id not in allowed_channel_ids):
        raise _not_found(token)
    RESERVATION.target(reservation, "RELEASE")
    freed = await _free(reservation, S.RELEASED, actor)
    await reservation.refresh_from_db()
    if freed is None:  # ended by someone else meanwhile
        RESERVATION.target(reservation, "RELEASE")
    for variant_id in freed or ():
        await on_stock_increased(variant_id, actor)
    return reservation


async def expire_due_reservations(now: datetime | None = None, actor: str = SYSTEM_ACTOR) -> int:
    """Expire every ACTIVE reservation past its expiry and free its stock; returns how many.

    Safe to run from several processes at once: each row is claimed by one of them only.
    """
    now = now or _now()
    count, seen, freed = 0, set(), set()
    while True:
        batch = await Reservation.filter(status=S.ACTIVE, expires_at__lte=now).exclude(id__in=list(seen) or [-1]).order_by("expires_at", "id").limit(100)
        if not batch:
            break
        for reservation in batch:
            seen.add(reservation.id)
            variants = await _free(reservation, S.EXPIRED, actor, due_before=now)
            if variants is not None:
                count += 1
                freed.update(variants)
    for variant_id in sorted(freed):
        await on_stock_increased(variant_id, actor)
    return count


async def consume_reservation(
    token: str, channel_id: int, needs: dict[int, int], order_id: int, actor: str
) -> dict[tuple[int, int], int]:
    """Turn a reservation into allocations for an order, inside the caller's transaction.

    `needs` maps variant id → units the order needs. The reservation must be ACTIVE, not
    past its expiry, on the same channel, and hold no variant the order does not need nor
    more units than it needs. Returns the units allocated per (warehouse_id, variant_id).
    """
    reservation = await Reservation.get_or_none(token=token)
    if reservation is None:
        raise _not_found(token)
    if reservation.channel_id != channel_id:
        raise DomainError(ErrorCode.RESERVATION_MISMATCH, f"{token} was made on another channel", ["reservationToken"])
    now = _now()
    if reservation.status is S.EXPIRED or (reservation.status is S.ACTIVE and reservation.expires_at <= now):
        raise DomainError(ErrorCode.RESERVATION_EXPIRED, f"{token} expired at {reservation.expires_at.isoformat()}", ["reservationToken"])
    RESERVATION.target(reservation, "CONSUME")
    lines = await ReservationLine.filter(reservation_id=reservation.id).order_by("id")
    held: dict[int, int] = {}
    for ln in lines:
        held[ln.variant_id] = held.get(ln.variant_id, 0) + ln.quantity
    extra = {v: q for v, q in held.items() if q > needs.get(v, 0)}
    if extra:
        skus = await ProductVariant.filter(id__in=list(extra)).order_by("sku").values_list("sku", flat=True)
        raise DomainError(
            ErrorCode.RESERVATION_MISMATCH,
            f"{token} holds more than the order needs of {', '.join(skus)}",
            ["reservationToken"],
            {"skus": list(skus)},
        )
    claimed = await Reservation.filter(id=reservation.id, status=S.ACTIVE, expires_at__gt=now).update(
        status=S.CONSUMED, order_id=order_id, updated_at=now
    )
    if not claimed:  # expired or ended concurrently: report what it is now
        await reservation.refresh_from_db()
        if reservation.status in (S.ACTIVE, S.EXPIRED):
            raise DomainError(ErrorCode.RESERVATION_EXPIRED, f"{token} has expired", ["reservationToken"])
        RESERVATION.target(reservation, "CONSUME")
    taken: dict[tuple[int, int], int] = {}
    for ln in lines:
        level = await InventoryLevel.get(warehouse_id=ln.warehouse_id, variant_id=ln.variant_id)
        await move(level.id, MovementKind.ALLOCATION, actor=actor, d_reserved=-ln.quantity, d_allocated=ln.quantity,
                   quantity=ln.quantity, respect_safety_stock=False, order_id=order_id, reference=token)
        key = (ln.warehouse_id, ln.variant_id)
        taken[key] = taken.get(key, 0) + ln.quantity
    await record_event("Reservation", reservation.id, "RESERVATION_CONSUMED", actor,
                       {"token": token, "order_id": order_id}, order_id=order_id)
    return taken

