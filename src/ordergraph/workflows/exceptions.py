"""Exceptions: raised once per fact by the workflows (or by sweeps), owned by a team, due by an
SLA, escalated when nobody acknowledges them in time, resolved through the workflow.

`raise_exception` runs inside the caller's transaction with a unique fact key (for example
`SHORT_PICK:<pick list>:<fulfillment order>:<sku>`), so a retried or concurrent call raises it
once. Every transition is an event of aggregate "Exception" on the `exceptions` topic and, when
the exception concerns an order, on that order's timeline.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ordergraph.db import execute, fetch, placeholders, transaction
from ordergraph.models import Order, OrderException, ReturnAuthorization, Shipment
from ordergraph.models.enums import (
    ExceptionKind as K,
    ExceptionStatus as X,
    ReturnStatus,
    Severity,
    ShipmentDirection,
    ShipmentStatus,
    Team,
)
from ordergraph.workflows.errors import DomainError, ErrorCode
from ordergraph.workflows.fulfillment import promised_ship_by
from ordergraph.workflows.events import jsonable, order_routing, record_event
from ordergraph.workflows.lifecycle import StateMachine


@dataclass(frozen=True)
class Rule:
    severity: Severity
    team: Team
    sla: timedelta  # from raising to resolution
    escalate_after: timedelta  # unacknowledged this long → next level (then again, each time)


RULES: dict[K, Rule] = {
    K.PAYMENT_FAILED: Rule(Severity.HIGH, Team.PAYMENTS, timedelta(hours=4), timedelta(minutes=30)),
    K.OUT_OF_STOCK: Rule(Severity.MEDIUM, Team.INVENTORY, timedelta(hours=48), timedelta(hours=4)),
    K.ADDRESS_INVALID: Rule(Severity.MEDIUM, Team.CUSTOMER_CARE, timedelta(hours=8), timedelta(hours=1)),
    K.FRAUD_REVIEW: Rule(Severity.HIGH, Team.FRAUD, timedelta(hours=4), timedelta(minutes=30)),
    K.SHORT_PICK: Rule(Severity.MEDIUM, Team.WAREHOUSE, timedelta(hours=8), timedelta(hours=1)),
    K.MISSED_PICKUP: Rule(Severity.HIGH, Team.CARRIER_OPS, timedelta(hours=8), timedelta(hours=1)),
    K.CARRIER_DELAY: Rule(Severity.MEDIUM, Team.CARRIER_OPS, timedelta(hours=24), timedelta(hours=4)),
    K.DELIVERY_FAILED: Rule(Severity.HIGH, Team.CUSTOMER_CARE, timedelta(hours=24), timedelta(hours=2)),
    K.LOST_IN_TRANSIT: Rule(Severity.CRITICAL, Team.CARRIER_OPS, timedelta(hours=24), timedelta(hours=1)),
    K.SHIP_SLA_BREACH: Rule(Severity.HIGH, Team.WAREHOUSE, timedelta(hours=8), timedelta(hours=1)),
    K.RETURN_OVERDUE: Rule(Severity.LOW, Team.CUSTOMER_CARE, timedelta(days=3), timedelta(hours=24)),
}
MAX_LEVEL = 3

EXCEPTION = StateMachine(
    "exception",
    {
        (X.OPEN, "ACKNOWLEDGE"): X.ACKNOWLEDGED,
        (X.ESCALATED, "ACKNOWLEDGE"): X.ACKNOWLEDGED,
        (X.OPEN, "ESCALATE"): X.ESCALATED,
        (X.ACKNOWLEDGED, "ESCALATE"): X.ESCALATED,
        (X.ESCALATED, "ESCALATE"): X.ESCALATED,
        **{(s, "RESOLVE"): X.RESOLVED for s in (X.OPEN, X.ACKNOWLEDGED, X.ESCALATED)},
        **{(s, "DISMISS"): X.DISMISSED for s in (X.OPEN, X.ACKNOWLEDGED, X.ESCALATED)},
        (X.RESOLVED, "REOPEN"): X.OPEN,
        (X.DISMISSED, "REOPEN"): X.OPEN,
    },
)
ACTIVE = (X.OPEN, X.ACKNOWLEDGED, X.ESCALATED)


def _now() -> datetime:
    return datetime.now(UTC)


async def _event(exc: OrderException, type_: str, actor: str, *, new: bool = False, **data: Any) -> None:
    routing: dict[str, Any] = {"exception": {"kind": str(exc.kind), "severity": str(exc.severity), "team": str(exc.team)}}
    if exc.order_id is not None:
        order = await Order.get_or_none(id=exc.order_id)
        if order is not None:
            routing.update(order_routing(order))
    await record_event("Exception", exc.id, type_, actor, {
        "number": exc.number, "kind": exc.kind, "severity": exc.severity, "status": exc.status, "team": exc.team,
        "summary": exc.summary, **data}, order_id=exc.order_id, new_aggregate=new, routing=routing)


async def raise_exception(kind: K, fact_key: str, summary: str, actor: str, *, order_id: int | None = None,
                          shipment_id: int | None = None, return_id: int | None = None,
                          details: dict[str, Any] | None = None, now: datetime | None = None) -> OrderException | None:
    """Raise one exception for `fact_key` inside the caller's transaction; None when that fact
    has one already (a retry, a concurrent caller, a second sweep)."""
    rule = RULES[kind]
    now = now or _now()
    p = placeholders(13)
    rows = await fetch(
        "INSERT INTO exceptions (number, fact_key, kind, severity, status, team, order_id, shipment_id, return_id, "
        "summary, details, sla_due_at, escalation_level, escalate_at, raised_at, resolution_note, updated_at) VALUES "
        f"({p[0]}, {p[1]}, {p[2]}, {p[3]}, 'OPEN', {p[4]}, {p[5]}, {p[6]}, {p[7]}, {p[8]}, {p[9]}, {p[10]}, 0, {p[11]}, "
        f"{p[12]}, '', CURRENT_TIMESTAMP) ON CONFLICT (fact_key) DO NOTHING RETURNING id",
        [f"EXC-T{uuid.uuid4().hex[:24]}", fact_key, str(kind), str(rule.severity), str(rule.team), order_id, shipment_id,
         return_id, summary[:500], _json(details or {}), now + rule.sla, now + rule.escalate_after, now],
    )
    if not rows:
        return None
    exc = await OrderException.get(id=rows[0]["id"])
    exc.number = f"EXC-{exc.id:06d}"
    await exc.save(update_fields=["number"])
    await _event(exc, "EXCEPTION_RAISED", actor, new=True, sla_due_at=exc.sla_due_at, details=exc.details)
    return exc


def _json(value: dict[str, Any]) -> str:
    import json  # noqa: PLC0415

    return json.dumps(jsonable(value))


async def _locked(exc_id: int) -> OrderException:
    exc = await OrderException.select_for_update().get_or_none(id=exc_id)
    if exc is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such exception", ["id"])
    return exc


async def acknowledge(exc_id: int, actor: str, *, assignee: str | None = None) -> OrderException:
    async with transaction():
        exc = await _locked(exc_id)
        exc.status = EXCEPTION.target(exc, "ACKNOWLEDGE")
        exc.acknowledged_at = _now()
        exc.escalate_at = None
        exc.assignee = assignee or exc.assignee or actor
        await exc.save(update_fields=["status", "acknowledged_at", "escalate_at", "assignee", "updated_at"])
        await _event(exc, "EXCEPTION_ACKNOWLEDGED", actor, assignee=exc.assignee)
    return exc


async def assign(exc_id: int, assignee: str, actor: str, *, team: Team | None = None) -> OrderException:
    if not assignee.strip():
        raise DomainError(ErrorCode.REQUIRED, "who owns it", ["assignee"])
    async with transaction():
        exc = await _locked(exc_id)
        if exc.status not in ACTIVE:
            raise DomainError(ErrorCode.INVALID_TRANSITION, f"exception {exc.number} is {exc.status}", ["id"])
        exc.assignee = assignee.strip()
        exc.team = team or exc.team
        await exc.save(update_fields=["assignee", "team", "updated_at"])
        await _event(exc, "EXCEPTION_ASSIGNED", actor, assignee=exc.assignee)
    return exc


async def escalate(exc_id: int, actor: str, reason: str = "") -> OrderException:
    async with transaction():
        exc = await _locked(exc_id)
        await _escalate(exc, actor, reason or "escalated by hand")
    return exc


async def _escalate(exc: OrderException, actor: str, reason: str, now: datetime | None = None) -> None:
    from ordergraph.workflows import notifications  # noqa: PLC0415

    now = now or _now()
    exc.status = EXCEPTION.target(exc, "ESCALATE")
    exc.escalation_level = min(MAX_LEVEL, exc.escalation_level + 1)
    exc.escalated_at = now
    exc.escalate_at = now + RULES[exc.kind].escalate_after if exc.escalation_level < MAX_LEVEL and \
        exc.acknowledged_at is None else None
    await exc.save(update_fields=["status", "escalation_level", "escalated_at", "escalate_at", "updated_at"])
    await _event(exc, "EXCEPTION_ESCALATED", actor, level=exc.escalation_level, reason=reason)
    order = await Order.get_or_none(id=exc.order_id) if exc.order_id else None
    await notifications.queue(
        f"EXCEPTION_ESCALATED:{exc.id}:{exc.escalation_level}", "EXCEPTION_ESCALATED", _team_address(exc.team), {
            "order_number": order.number if order else "-", "exception_code": f"{exc.number} {exc.kind}",
            "severity": str(exc.severity), "summary": exc.summary, "level": exc.escalation_level,
        }, order_id=exc.order_id)


def _team_address(team: Team) -> str:
    from ordergraph.config import get_settings  # noqa: PLC0415

    default = get_settings().ops_alert_to.split(",")[0].strip() or "ops@example.com"
    local, _, domain = default.partition("@")
    return f"{team.lower().replace('_', '-')}@{domain or 'example.com'}"


async def resolve(exc_id: int, action: str, note: str, actor: str) -> OrderException:
    async with transaction():
        exc = await _locked(exc_id)
        await _close(exc, "RESOLVE", action, note, actor)
    return exc


async def dismiss(exc_id: int, reason: str, actor: str) -> OrderException:
    if not reason.strip():
        raise DomainError(ErrorCode.REQUIRED, "why it needs nothing done", ["reason"])
    async with transaction():
        exc = await _locked(exc_id)
        await _close(exc, "DISMISS", "DISMISSED", reason, actor)
    return exc


async def reopen(exc_id: int, reason: str, actor: str) -> OrderException:
    async with transaction():
        exc = await _locked(exc_id)
        exc.status = EXCEPTION.target(exc, "REOPEN")
        now = _now()
        exc.resolved_at = exc.resolution_action = exc.resolved_by = None
        exc.acknowledged_at = None
        exc.escalate_at = now + RULES[exc.kind].escalate_after
        exc.sla_due_at = now + RULES[exc.kind].sla
        await exc.save(update_fields=["status", "resolved_at", "resolution_action", "resolved_by", "acknowledged_at",
                                      "escalate_at", "sla_due_at", "updated_at"])
        await _event(exc, "EXCEPTION_REOPENED", actor, reason=reason)
    return exc


async def _close(exc: OrderException, action: str, resolution: str, note: str, actor: str) -> None:
    exc.status = EXCEPTION.target(exc, action)
    exc.resolved_at = _now()
    exc.resolution_action = resolution[:64]
    exc.resolution_note = note[:1000]
    exc.resolved_by = actor
    exc.escalate_at = None
    await exc.save(update_fields=["status", "resolved_at", "resolution_action", "resolution_note", "resolved_by",
                                  "escalate_at", "updated_at"])
    await _event(exc, f"EXCEPTION_{exc.status}", actor, action=exc.resolution_action, note=exc.resolution_note,
                 within_sla=exc.resolved_at <= exc.sla_due_at)


async def resolve_cause(kind: K, actor: str, action: str, note: str, *, order_id: int | None = None,
                        shipment_id: int | None = None, return_id: int | None = None) -> int:
    """The workflow fixed what an exception is about (stock arrived for a backorder, the
    payment went through, the parcel was delivered): resolve the open ones of that kind for the
    object, inside the caller's transaction. Returns how many."""
    query = OrderException.filter(kind=kind, status__in=list(ACTIVE))
    if order_id is not None:
        query = query.filter(order_id=order_id)
    if shipment_id is not None:
        query = query.filter(shipment_id=shipment_id)
    if return_id is not None:
        query = query.filter(return_id=return_id)
    count = 0
    for exc in await query.order_by("id").select_for_update():
        await _close(exc, "RESOLVE", action, note, actor)
        count += 1
    return count


# --- background: escalation and sweeps (safe in several processes) --------------------------------


async def escalate_due(now: datetime | None = None, actor: str = "system:escalation") -> int:
    """Escalate every unacknowledged exception whose escalation time passed. Each is claimed
    with a conditional UPDATE on its current level, so two workers escalate it once."""
    now = now or _now()
    due = await OrderException.filter(status__in=[X.OPEN, X.ESCALATED], escalate_at__lte=now,
                                      acknowledged_at__isnull=True, escalation_level__lt=MAX_LEVEL).order_by("id").limit(200)
    done = 0
    for exc in due:
        async with transaction():
            p = placeholders(3)
            claimed = await execute(
                f"UPDATE exceptions SET escalate_at = NULL WHERE id = {p[0]} AND escalation_level = {p[1]} "
                f"AND escalate_at <= {p[2]}", [exc.id, exc.escalation_level, now])
            if claimed != 1:
                continue
            exc = await OrderException.get(id=exc.id)
            await _escalate(exc, actor, f"not acknowledged within {RULES[exc.kind].escalate_after}", now)
            done += 1
    return done


@dataclass(frozen=True)
class SweepLimits:
    no_scan: timedelta = timedelta(hours=24)  # a label with no carrier scan: missed pickup
    lost: timedelta = timedelta(days=5)  # in transit with no scan: lost
    return_overdue: timedelta = timedelta(days=14)  # approved or labelled, not received


async def sweep(now: datetime | None = None, limits: SweepLimits = SweepLimits(), actor: str = "system:sweep") -> int:
    """Raise what the clock reveals: labels never picked up, parcels with no scan for days,
    returns not received in time, orders not shipped by their promised date. Fact keys make a
    second sweep (or a second worker) raise nothing new."""
    now = now or _now()
    raised = 0
    for s in await Shipment.filter(direction=ShipmentDirection.OUTBOUND, status=ShipmentStatus.LABEL_CREATED,
                                   created_at__lte=now - limits.no_scan):
        async with transaction():
            raised += bool(await raise_exception(
                K.MISSED_PICKUP, f"MISSED_PICKUP:{s.id}", f"{s.carrier} has not picked up {s.tracking_number}", actor,
                order_id=s.order_id, shipment_id=s.id, details={"tracking_number": s.tracking_number}, now=now))
    moving = [ShipmentStatus.SHIPPED, ShipmentStatus.IN_TRANSIT, ShipmentStatus.DELAYED]
    for s in await Shipment.filter(direction=ShipmentDirection.OUTBOUND, status__in=moving):
        last = s.last_scan_at or s.shipped_at or s.created_at
        if last <= now - limits.lost:
            async with transaction():
                raised += bool(await raise_exception(
                    K.LOST_IN_TRANSIT, f"LOST_IN_TRANSIT:{s.id}", f"no scan of {s.tracking_number} since {last:%Y-%m-%d}",
                    actor, order_id=s.order_id, shipment_id=s.id, details={"last_scan_at": last}, now=now))
    for r in await ReturnAuthorization.filter(status__in=[ReturnStatus.APPROVED, ReturnStatus.LABEL_ISSUED,
                                                          ReturnStatus.IN_TRANSIT],
                                              approved_at__lte=now - limits.return_overdue):
        async with transaction():
            raised += bool(await raise_exception(
                K.RETURN_OVERDUE, f"RETURN_OVERDUE:{r.id}", f"return {r.number} not received in {limits.return_overdue.days} days",
                actor, order_id=r.order_id, return_id=r.id, now=now))
    raised += await _sweep_ship_sla(now, actor)
    return raised


async def _sweep_ship_sla(now: datetime, actor: str) -> int:
    """Orders still to ship, placed 12 h ago or more, that have no SHIP_SLA_BREACH yet: one
    statement picks them (so a steady-state sweep reads only the few not yet due); each one past
    its promised ship date raises its exception."""
    unshipped = ("CONFIRMED", "ALLOCATED", "PARTIALLY_ALLOCATED", "BACKORDERED", "IN_FULFILLMENT", "PARTIALLY_SHIPPED")
    p = placeholders(1)
    statuses = ", ".join(f"'{s}'" for s in unshipped)
    rows = await fetch(
        f"SELECT o.id, o.number, o.placed_at, o.service_level, o.status FROM orders o WHERE o.status IN ({statuses}) "
        f"AND o.placed_at <= {p[0]} AND NOT EXISTS (SELECT 1 FROM exceptions e WHERE e.order_id = o.id "
        "AND e.kind = 'SHIP_SLA_BREACH') ORDER BY o.id", [now - timedelta(hours=12)])
    raised = 0
    for r in rows:
        o = Order._init_from_db(**{k: r[k] for k in ("id", "number", "placed_at", "service_level", "status")})
        due = promised_ship_by(o.placed_at, o.service_level)
        if due < now:
            async with transaction():
                raised += bool(await raise_exception(
                    K.SHIP_SLA_BREACH, f"SHIP_SLA_BREACH:{o.id}", f"order {o.number} was due to ship by {due:%Y-%m-%d %H:%M} UTC",
                    actor, order_id=o.id, details={"promised_ship_by": due, "status": o.status}, now=now))
    return raised


# Holds that are exceptions: the hold's reason and the kind it raises.
HOLD_KINDS = {"PAYMENT": K.PAYMENT_FAILED, "FRAUD_REVIEW": K.FRAUD_REVIEW, "ADDRESS": K.ADDRESS_INVALID}


async def on_hold_placed(order: Order, hold: Any, actor: str) -> None:
    """A payment, fraud or address hold is a problem someone must own (inside its transaction)."""
    kind = HOLD_KINDS.get(str(hold.reason))
    if kind is not None:
        await raise_exception(kind, f"{kind}:hold:{hold.id}", hold.note or f"order {order.number} held: {hold.reason}",
                              actor, order_id=order.id, details={"hold_id": hold.id, "note": hold.note})


async def on_hold_released(order: Order, hold: Any, actor: str) -> None:
    kind = HOLD_KINDS.get(str(hold.reason))
    if kind is not None:
        await resolve_cause(kind, actor, "HOLD_RELEASED", hold.release_note or "hold released", order_id=order.id)
