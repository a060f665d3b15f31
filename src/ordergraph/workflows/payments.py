"""Payments: authorize at capture time of the order, capture, void and refund through the gateway.

Gateway calls happen outside database transactions; their results are recorded in one
transaction each, with an event on the order.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from ordergraph.db import transaction
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
    order: Order, gateway: str, method: str, result: AuthorizationResult, actor: str
) -> Payment:
    """Inside the placement transaction: the payment row, its transaction and event."""
    status = PaymentStatus.AUTHORIZED if result.approved else PaymentStatus.FAILED
    payment = await Payment.create(
        order=order,
        gateway=gateway,
        method=method,
        status=status,
        currency=order.currency,
        amount=order.total,
        authorized_amount=order.total if result.approved else Decimal("0"),
        authorization_ref=result.reference,
        authorization_expires_at=result.expires_at,
        failure_code=None if result.approved else result.decline_code,
        failure_message=None if result.approved else result.message,
    )
    await PaymentTransaction.create(
        payment=payment,
        kind=TransactionKind.AUTHORIZE,
        amount=order.total,
        success=result.approved,
        gateway_ref=result.reference,
        error_code=None if result.approved else result.decline_code,
        error_message=None if result.approved else result.message,
    )
    if result.approved:
        await order_event(order, "PAYMENT_AUTHORIZED", actor, payment_id=payment.id, amount=order.total, currency=order.currency)
    else:
        await order_event(
            order, "PAYMENT_DECLINED", actor, payment_id=payment.id, decline_code=result.decline_code, message=result.message
        )
    return payment


async def _gateway_call(payment: Payment, kind: TransactionKind, amount: Decimal, call):
    try:
        return await with_retries(call)
    except GatewayUnavailable as exc:
        await PaymentTransaction.create(
            payment=payment, kind=kind, amount=amount, success=False, error_code="gateway_unavailable", error_message=str(exc)
        )
        raise DomainError(ErrorCode.GATEWAY_UNAVAILABLE, "the payment gateway is unavailable; retry later") from exc


async def capture(payment_id: int, amount: Decimal | None, actor: str) -> Payment:
    payment = await Payment.get(id=payment_id)
    remaining = payment.authorized_amount - payment.captured_amount
    amount = remaining if amount is None else amount
    target = PAYMENT.target(payment, "CAPTURE")
    if amount <= 0 or amount.as_tuple().exponent < -2:
        raise DomainError(ErrorCode.INVALID_VALUE, "amount must be positive with at most 2 decimals", ["amount"])
    if amount > remaining:
        raise DomainError(
            ErrorCode.CAPTURE_EXCEEDS_AUTHORIZED, f"only {remaining} {payment.currency} is left to capture", ["amount"]
        )
    gw = get_gateway(payment.gateway)
    key = f"cap-{payment.id}-{payment.captured_amount}-{amount}"
    result = await _gateway_call(payment, TransactionKind.CAPTURE, amount, lambda: gw.capture(payment.authorization_ref, amount, key))
    async with transaction():
        payment = await Payment.select_for_update().get(id=payment_id)
        order = await Order.get(id=payment.order_id)
        await PaymentTransaction.create(
            payment=payment, kind=TransactionKind.CAPTURE, amount=amount, success=result.success,
            gateway_ref=result.reference, error_code=result.error_code, error_message=None if result.success else result.message,
        )
        if not result.success:
            await order_event(order, "PAYMENT_CAPTURE_FAILED", actor, payment_id=payment.id, amount=amount, error_code=result.error_code)
        else:
            payment.captured_amount += amount
            full = payment.captured_amount >= payment.authorized_amount
            payment.status = choose(target, PaymentStatus.CAPTURED if full else PaymentStatus.PARTIALLY_CAPTURED)
            await payment.save(update_fields=["captured_amount", "status", "updated_at"])
            await order_event(order, "PAYMENT_CAPTURED", actor, payment_id=payment.id, amount=amount, captured_total=payment.captured_amount)
    if not result.success:
        raise DomainError(decline_error(result.error_code), result.message or "capture failed", ["amount"], {"decline_code": result.error_code})
    return payment


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


async def refund(payment_id: int, amount: Decimal | None, actor: str, reason: str = "") -> Payment:
    payment = await Payment.get(id=payment_id)
    target = PAYMENT.target(payment, "REFUND")
    refundable = payment.captured_amount - payment.refunded_amount
    amount = refundable if amount is None else amount
    if amount <= 0 or amount.as_tuple().exponent < -2:
        raise DomainError(ErrorCode.INVALID_VALUE, "amount must be positive with at most 2 decimals", ["amount"])
    if amount > refundable:
        raise DomainError(
            ErrorCode.REFUND_EXCEEDS_CAPTURED, f"only {refundable} {payment.currency} can be refunded", ["amount"]
        )
    gw = get_gateway(payment.gateway)
    key = f"ref-{payment.id}-{payment.refunded_amount}-{amount}"
    result = await _gateway_call(payment, TransactionKind.REFUND, amount, lambda: gw.refund(payment.authorization_ref, amount, key))
    async with transaction():
        payment = await Payment.select_for_update().get(id=payment_id)
        order = await Order.get(id=payment.order_id)
        await PaymentTransaction.create(
            payment=payment, kind=TransactionKind.REFUND, amount=amount, success=result.success,
            gateway_ref=result.reference, error_code=result.error_code, error_message=None if result.success else result.message,
        )
        if result.success:
            payment.refunded_amount += amount
            full = payment.refunded_amount >= payment.captured_amount
            payment.status = choose(target, PaymentStatus.REFUNDED if full else PaymentStatus.PARTIALLY_REFUNDED)
            await payment.save(update_fields=["refunded_amount", "status", "updated_at"])
            await order_event(order, "PAYMENT_REFUNDED", actor, payment_id=payment.id, amount=amount, reason=reason, refunded_total=payment.refunded_amount)
    if not result.success:
        raise DomainError(decline_error(result.error_code), result.message or "refund failed", ["amount"])
    return payment


async def primary_payment(order_id: int) -> Payment | None:
    return await Payment.filter(order_id=order_id).exclude(status=PaymentStatus.FAILED).order_by("-id").first()
