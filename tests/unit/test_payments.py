"""Payment movements: concurrent refunds never exceed what was captured."""

import asyncio
from decimal import Decimal

from ordergraph.models import Payment, PaymentTransaction
from ordergraph.models.enums import CaptureMode
from ordergraph.workflows import payments
from ordergraph.workflows.commands import Address, LineCommand, PlaceOrderCommand
from ordergraph.workflows.errors import DomainError, ErrorCode
from ordergraph.workflows.orders import place_order
from tests.orders_helpers import world


async def test_concurrent_refunds_of_the_whole_capture_refund_it_once(db):
    await world(capture=CaptureMode.ON_CONFIRMATION)
    order = await place_order(
        PlaceOrderCommand("WEB", "a@example.com", [LineCommand("SKU-B", 2)],
                          Address(name="A", line1="1", city="X", postal_code="1", country="US")),
        "test",
    )
    payment = await Payment.get(order_id=order.id)
    assert payment.captured_amount == Decimal("51.00")

    async def attempt():
        try:
            await payments.refund(payment.id, Decimal("51.00"), "test")
            return "ok"
        except DomainError as exc:
            return exc.code

    results = await asyncio.gather(*[attempt() for _ in range(5)])
    assert sorted(results, key=str) == sorted(["ok"] + [ErrorCode.REFUND_EXCEEDS_CAPTURED] * 4, key=str)
    await payment.refresh_from_db()
    assert (payment.refunded_amount, payment.status) == (Decimal("51.00"), "REFUNDED")
    assert await PaymentTransaction.filter(payment_id=payment.id, kind="REFUND", success=True).count() == 1


async def test_an_authorization_is_recorded_with_its_transaction_approved_or_declined(db):
    from ordergraph.workflows.commands import PaymentCommand  # noqa: PLC0415

    await world()
    ship = Address(name="A", line1="1", city="X", postal_code="1", country="US")
    placed = {}
    for token in ("tok_approve", "tok_insufficient_funds"):
        placed[token] = await place_order(
            PlaceOrderCommand("WEB", "a@example.com", [LineCommand("SKU-B", 2)], ship, payment=PaymentCommand(token=token)),
            "test",
        )
    rows = {}
    for token, order in placed.items():
        payment = await Payment.get(order_id=order.id)
        [tx] = await PaymentTransaction.filter(payment_id=payment.id)
        rows[token] = (
            (payment.gateway, payment.method, payment.status, payment.currency, payment.amount, payment.authorized_amount,
             payment.captured_amount, payment.refunded_amount, payment.failure_code, payment.authorization_ref is not None,
             payment.created_at is not None),
            (tx.kind, tx.amount, tx.success, tx.gateway_ref == payment.authorization_ref, tx.error_code),
        )
    assert rows["tok_approve"] == (
        ("local", "card", "AUTHORIZED", "USD", Decimal("51.00"), Decimal("51.00"), Decimal("0"), Decimal("0"), None, True,
         True),
        ("AUTHORIZE", Decimal("51.00"), True, True, None),
    )
    assert rows["tok_insufficient_funds"] == (
        ("local", "card", "FAILED", "USD", Decimal("51.00"), Decimal("0"), Decimal("0"), Decimal("0"),
         "insufficient_funds", False, True),
        ("AUTHORIZE", Decimal("51.00"), False, True, "insufficient_funds"),
    )
