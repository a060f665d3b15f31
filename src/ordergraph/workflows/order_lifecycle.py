"""The order and payment lifecycles as data."""

from __future__ import annotations

from ordergraph.models.enums import OrderStatus as S
from ordergraph.models.enums import PaymentStatus as P
from ordergraph.workflows.lifecycle import StateMachine

ALLOCATION_RESULTS = (S.ALLOCATED, S.PARTIALLY_ALLOCATED, S.BACKORDERED)
PRE_SHIPMENT = (S.PENDING, S.CONFIRMED, *ALLOCATION_RESULTS)
# Where an order is while its fulfillment orders move: the allocation results, picking under
# way, some units shipped. `PROGRESS` moves between them as picking, short picks, re-allocation
# and shipping happen (workflows/fulfillment.progress_status decides which).
IN_PROGRESS = (*ALLOCATION_RESULTS, S.IN_FULFILLMENT, S.PARTIALLY_SHIPPED)
PROGRESS_RESULTS = (*IN_PROGRESS, S.SHIPPED)


def _no_holds(ctx) -> str | None:
    return "the order is on hold" if ctx.active_holds else None


def _has_holds(ctx) -> str | None:
    return None if ctx.active_holds else "the order has no active hold"


def _payment_ready(ctx) -> str | None:
    if ctx.active_holds:
        return "the order is on hold"
    if ctx.payment_status not in (None, P.AUTHORIZED, P.PARTIALLY_CAPTURED, P.CAPTURED):
        return f"payment is {ctx.payment_status}"
    return None


def _needs_units(ctx) -> str | None:
    if ctx.active_holds:
        return "the order is on hold"
    return None if ctx.units_to_allocate else "every unit is already allocated"


def _internal(ctx) -> str | None:
    """Moves the workflow makes when facts happen (a pick, a shipment, a delivery scan): never
    offered to clients as actions."""
    return "the workflow makes this move when it happens" if getattr(ctx, "offering", True) else None


def _build_order_table() -> dict[tuple[str, str], str]:
    table: dict[tuple[str, str], str] = {(S.PENDING, "CONFIRM"): S.CONFIRMED}
    for state in (S.CONFIRMED, S.PARTIALLY_ALLOCATED, S.BACKORDERED):
        # The allocation run decides which of ALLOCATION_RESULTS the order lands in.
        table[(state, "ALLOCATE")] = "|".join(ALLOCATION_RESULTS)
    for state in PRE_SHIPMENT:
        table[(state, "CANCEL")] = S.CANCELLED
    for state in (*PRE_SHIPMENT, S.IN_FULFILLMENT, S.PARTIALLY_SHIPPED):
        table[(state, "PLACE_HOLD")] = state
        table[(state, "RELEASE_HOLD")] = state
    for state in IN_PROGRESS:
        table[(state, "PROGRESS")] = "|".join(PROGRESS_RESULTS)
    table[(S.SHIPPED, "DELIVER")] = S.DELIVERED
    return table


ORDER = StateMachine(
    "order",
    _build_order_table(),
    guards={
        "CONFIRM": _payment_ready,
        "ALLOCATE": _needs_units,
        "RELEASE_HOLD": _has_holds,
        "PROGRESS": _internal,
        "DELIVER": _internal,
    },
)

PAYMENT = StateMachine(
    "payment",
    {
        (P.PENDING, "AUTHORIZE"): P.AUTHORIZED,
        (P.PENDING, "FAIL"): P.FAILED,
        (P.AUTHORIZED, "CAPTURE"): f"{P.PARTIALLY_CAPTURED}|{P.CAPTURED}",
        (P.PARTIALLY_CAPTURED, "CAPTURE"): f"{P.PARTIALLY_CAPTURED}|{P.CAPTURED}",
        (P.AUTHORIZED, "VOID"): P.VOIDED,
        (P.PARTIALLY_CAPTURED, "REFUND"): f"{P.PARTIALLY_REFUNDED}|{P.REFUNDED}",
        (P.CAPTURED, "REFUND"): f"{P.PARTIALLY_REFUNDED}|{P.REFUNDED}",
        (P.PARTIALLY_REFUNDED, "REFUND"): f"{P.PARTIALLY_REFUNDED}|{P.REFUNDED}",
    },
)


class OrderContext:
    """What the order guards look at, loaded once per decision."""

    def __init__(self, order, active_holds: int, payment_status, units_to_allocate: int) -> None:
        self.status = order.status
        self.active_holds = active_holds
        self.payment_status = payment_status
        self.units_to_allocate = units_to_allocate


def choose(target: str, state: str) -> str:
    """For a transition with several outcomes (`A|B|C`), check the workflow's choice."""
    options = target.split("|")
    if state not in options:
        raise ValueError(f"{state} is not one of {options}")
    return state


class _WorkflowMove:
    """The context the workflow passes for the moves it makes itself (PROGRESS, DELIVER)."""

    offering = False
    active_holds = 0
    payment_status = None
    units_to_allocate = 0


WORKFLOW = _WorkflowMove()
