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
