"""Payments: authorize at capture time of the order, capture, void and refund through the gateway.

Gateway calls happen outside database transactions; their results are recorded in one
transaction each, with an event on the order.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from ordergraph.db import Params, Raw, create_rows, dialect, fetch, insert_rows, insert_sql, model_rows, transaction
from ordergraph.integrations.payments import (
    AuthorizationResult,
    GatewayUnavailable,
    get_gateway,
    with_retries,
)
from ordergraph.models import Order, Payment, PaymentTransaction
from ordergraph.models.enums import PaymentStatus, TransactionKind
from ordergraph.workflows.errors import DomainError, ErrorCode
from ordergraph.workflows.events import order_event
from ordergraph.workflows.order_lifecycle import PAYMENT, choose

CENT = Decimal("0.01")

DECLINE_CODES = {
    "insufficient_funds": ErrorCode.INSUFFICIENT_FUNDS,
    "authorization_expired": ErrorCode.AUTHORIZATION_EXPIRED,
    "amount_exceeds_authorization": ErrorCode.CAPTURE_EXCEEDS_AUTHORIZED,
    "amount_exceeds_captured": ErrorCode.REFUND_EXCEEDS_CAPTURED,
}


def decline_error(code: str | None) -> ErrorCode:
    return DECLINE_CODES.get(code or "", ErrorCode.PAYMENT_DECLINED)


async def authorize(gateway: str, amount: Decimal, currency: str, token: str) -> AuthorizationResult:
    """Authorize with retries on transient gateway errors; raises GatewayUnavailable at the end."""
    gw = get_gateway(gateway)
    key = f"auth-{uuid.uuid4().hex}"
    return await with_retries(lambda: gw.authorize(amount, currency, token, key))


async def void_authorization(gateway: str, reference: str) -> None:
    """Compensation for an order that was not written after all (best effort, retried)."""
    gw = get_gateway(gateway)
    key = f"void-{reference}"
    await with_retries(lambda: gw.void(reference, key))


async def record_authorization(
    order: Order, gateway: str, method: str, result: AuthorizationResult, actor: str, amount: Decimal | None = None,
) -> Payment:
    """Inside the placement transaction: the payment row, its transaction and event. `amount`:
    what was authorized when it is not the order's total (an exchange's price difference)."""
    payment_row, transaction_row = authorization_rows(order, gateway, method, result, amount)
    if dialect() == "postgres":
        p = Params()
        ctes, made = authorization_ctes(payment_row, transaction_row, p)
        [row] = await fetch(f"WITH {', '.join(ctes)} SELECT id FROM _p", p.values)
        payment = made(row["id"])
    else:
        [payment] = await create_rows(Payment, [payment_row])
        await insert_rows(PaymentTransaction, [{**transaction_row, "payment_id": payment.id}])
    await authorization_event(order, payment, result, actor)
    return payment


def authorization_rows(
    order: Order, gateway: str, method: str, result: AuthorizationResult, amount: Decimal | None = None,
) -> tuple[dict, dict]:
    """The payment row and its AUTHORIZE transaction row (without its payment_id) for `result`."""
    status = PaymentStatus.AUTHORIZED if result.approved else PaymentStatus.FAILED
    amount = order.total if amount is None else amount
    payment_row = {
        "order_id": order.id,
        "gateway": gateway,
        "method": method,
        "status": status,
        "currency": order.currency,
        "amount": amount,
        "authorized_amount": amount if result.approved else Decimal("0"),
        "authorization_ref": result.reference,
        "authorization_expires_at": result.expires_at,
        "failure_code": None if result.approved else result.decline_code,
        "failure_message": None if result.approved else result.message,
    }
    transaction_row = {
        "kind": TransactionKind.AUTHORIZE,
        "amount": amount,
        "success": result.approved,
        "gateway_ref": result.reference,
        "error_code": None if result.approved else result.decline_code,
        "error_message": None if result.approved else result.message,
    }
    return payment_row, transaction_row


def authorization_ctes(payment_row: dict, transaction_row: dict, p: Params) -> tuple[list[str], Callable[[int], Payment]]:
    """PostgreSQL: the payment (`_p`, RETURNING id) and its transaction as data-modifying CTEs
    of a larger statement, and a function making the Payment, as written, from the id it got.
    `payment_row["order_id"]` may be a `Raw` (an order inserted by the same statement) if the
    caller sets `order_id` on what that function returns."""
    pay_columns, pay_values = model_rows(Payment, [payment_row])
    tx_columns, tx_values = model_rows(PaymentTransaction, [{**transaction_row, "payment_id": Raw("(SELECT id FROM _p)")}])
    ctes = [
        f"_p AS ({insert_sql('payments', pay_columns, pay_values, 'id', params=p)[0]})",
        f"_pt AS ({insert_sql('payment_transactions', tx_columns, tx_values, params=p)[0]})",
    ]
    written = {c: v for c, v in zip(pay_columns, pay_values[0], strict=True) if not isinstance(v, Raw)}
    return ctes, lambda payment_id: Payment._init_from_db(id=payment_id, **written)


async def authorization_event(order: Order, payment: Payment, result: AuthorizationResult, actor: str) -> None:
    if result.approved:
        await order_event(order, "PAYMENT_AUTHORIZED", actor, payment_id=payment.id, amount=payment.amount,
                          currency=order.currency)
    else:
        await order_event(
            order, "PAYMENT_DECLINED", actor, payment_id=payment.id, decline_code=result.decline_code, message=result.message
        )


async def _gateway_call(payment: Payment, kind: TransactionKind, amount: Decimal, call):
    try:
        return await with_retries(call)
    except GatewayUnavailable as exc:
        await PaymentTransaction.create(
            payment=payment, kind=kind, amount=amount, success=False, error_code="gateway_unavailable", error_message=str(exc)
        )
        raise DomainError(ErrorCode.GATEWAY_UNAVAILABLE, "the payment gateway is unavailable; retry later") from exc


@dataclass(frozen=True)
class _Movement:
    """Capture and refund move money the same way; this is what differs between them."""

    action: str
    kind: TransactionKind
    total: str  # the Payment field the movement adds to
    ceiling: str  # the Payment field it may never exceed
    full: PaymentStatus
    partial: PaymentStatus
    exceeded: ErrorCode
    done_event: str
    failed_event: str


CAPTURE = _Movement("CAPTURE", TransactionKind.CAPTURE, "captured_amount", "authorized_amount",
                    PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_CAPTURED, ErrorCode.CAPTURE_EXCEEDS_AUTHORIZED,
                    "PAYMENT_CAPTURED", "PAYMENT_CAPTURE_FAILED")
REFUND = _Movement("REFUND", TransactionKind.REFUND, "refunded_amount", "captured_amount",
                   PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED, ErrorCode.REFUND_EXCEEDS_CAPTURED,
                   "PAYMENT_REFUNDED", "PAYMENT_REFUND_FAILED")


def _room(payment: Payment, m: _Movement) -> Decimal:
    return getattr(payment, m.ceiling) - getattr(payment, m.total)


async def _move_money(payment_id: int, m: _Movement, amount: Decimal | None, actor: str, **event_data) -> Payment:
    payment = await Payment.get(id=payment_id)
    target = PAYMENT.target(payment, m.action)
    room = _room(payment, m)
    amount = room if amount is None else amount
    if amount <= 0 or amount.as_tuple().exponent < -2:
        raise DomainError(ErrorCode.INVALID_VALUE, "amount must be positive with at most 2 decimals", ["amount"])
    if amount > room:
        raise DomainError(m.exceeded, f"only {room} {payment.currency} is left to {m.action.lower()}", ["amount"])
    gw = get_gateway(payment.gateway)
    call = gw.capture if m is CAPTURE else gw.refund
    key = f"{m.action.lower()}-{payment.id}-{getattr(payment, m.total)}-{amount}"
    result = await _gateway_call(payment, m.kind, amount, lambda: call(payment.authorization_ref, amount, key))
    async with transaction():
        payment = await Payment.select_for_update().get(id=payment_id)
        order = await Order.get(id=payment.order_id)
        await PaymentTransaction.create(
            payment=payment, kind=m.kind, amount=amount, success=result.success, gateway_ref=result.reference,
            error_code=result.error_code, error_message=None if result.success else result.message,
        )
        if not result.success:
            await order_event(order, m.failed_event, actor, payment_id=payment.id, amount=amount, error_code=result.error_code)
        elif amount > _room(payment, m):  # a concurrent movement took the room first
            raise DomainError(m.exceeded, f"only {_room(payment, m)} {payment.currency} is left to {m.action.lower()}", ["amount"])
        else:
            setattr(payment, m.total, getattr(payment, m.total) + amount)
            full = getattr(payment, m.total) >= getattr(payment, m.ceiling)
            payment.status = choose(target, m.full if full else m.partial)
            await payment.save(update_fields=[m.total, "status", "updated_at"])
            await order_event(order, m.done_event, actor, payment_id=payment.id, amount=amount,
                              total=getattr(payment, m.total), **event_data)
    if not result.success:
        raise DomainError(
            decline_error(result.error_code), result.message or f"{m.action.lower()} failed", ["amount"],
            {"decline_code": result.error_code},
        )
    return payment


async def capture(payment_id: int, amount: Decimal | None, actor: str) -> Payment:
    """Capture (part of) an authorization; never more than authorized."""
    return await _move_money(payment_id, CAPTURE, amount, actor)


async def refund(payment_id: int, amount: Decimal | None, actor: str, reason: str = "") -> Payment:
    """Refund (part of) what was captured; never more than captured."""
    return await _move_money(payment_id, REFUND, amount, actor, reason=reason)


async def void(payment_id: int, actor: str) -> Payment:
    payment = await Payment.get(id=payment_id)
    PAYMENT.target(payment, "VOID")
    gw = get_gateway(payment.gateway)
    result = await _gateway_call(payment, TransactionKind.VOID, payment.authorized_amount, lambda: gw.void(payment.authorization_ref, f"void-{payment.authorization_ref}"))
    async with transaction():
        order = await Order.get(id=payment.order_id)
        await PaymentTransaction.create(
            payment=payment, kind=TransactionKind.VOID, amount=payment.authorized_amount, success=result.success,
            gateway_ref=result.reference, error_code=result.error_code,
        )
        if result.success:
            payment.status = PaymentStatus.VOIDED
            await payment.save(update_fields=["status", "updated_at"])
            await order_event(order, "PAYMENT_VOIDED", actor, payment_id=payment.id)
    if not result.success:
        raise DomainError(decline_error(result.error_code), result.message or "void failed")
    return payment


async def primary_payment(order_id: int) -> Payment | None:
    return await Payment.filter(order_id=order_id).exclude(status=PaymentStatus.FAILED).order_by("-id").first()
