"""Returns workflow (no GraphQL): eligibility, approval, label and carrier scans, receipt,
inspection with restocking, the computed refund; concurrency on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ordergraph.models import (
    Event,
    InventoryLevel,
    Order,
    OrderLine,
    Payment,
    ReturnAuthorization,
    ReturnLine,
    SalesChannel,
    Shipment,
    StockMovement,
)
from ordergraph.models.enums import (
    CaptureMode,
    Disposition,
    ItemCondition,
    PaymentStatus,
    ReturnReason,
    ReturnStatus,
    ShipmentDirection,
    TrackingStatus,
)
from ordergraph.seed import fulfil_order
from ordergraph.workflows import returns, shipping
from ordergraph.workflows.commands import Address, LineCommand, PaymentCommand, PlaceOrderCommand
from ordergraph.workflows.errors import DomainError, ErrorCode, ValidationFailed
from ordergraph.workflows.orders import cancel_order, place_order
from ordergraph.workflows.returns import InspectionSpec, ReturnLineRequest
from tests import factories as f

NYC = Address(name="Ada Lovelace", line1="1 Main St", city="New York", postal_code="10001", country="US")


async def _world(**policy):
    east = await f.warehouse("EAST", priority=1)
    ch = await f.channel("WEB", [east], capture=CaptureMode.ON_SHIPMENT)
    await SalesChannel.filter(id=ch.id).update(**{
        "auto_approve_reasons": ["DAMAGED", "DEFECTIVE"], "auto_approve_max_value": Decimal("100"),
        "restocking_fee_percent": Decimal("10"), "return_shipping_fee": Decimal("5.00"), **policy})
    a = await f.variant("SKU-A", price="10.00", weight_grams=400)
    b = await f.variant("SKU-B", price="25.00", weight_grams=900)
    c = await f.variant("SKU-C", price="8.00", returnable=False)
    for v in (a, b, c):
        await f.stock(east, v, 10)
    return east


async def _delivered(lines=(("SKU-A", 2), ("SKU-B", 1)), *, deliver=True) -> tuple[Order, dict[str, OrderLine]]:
    order = await place_order(PlaceOrderCommand("WEB", "ada@example.com", [LineCommand(s, q) for s, q in lines], NYC,
                                                payment=PaymentCommand()), "test")
    order = await fulfil_order(order, deliver=deliver)
    return order, {ln.sku: ln for ln in await OrderLine.filter(order_id=order.id)}


async def _scan(tracking_number: str, status: TrackingStatus, minutes: int = 0) -> None:
    await shipping.record_tracking_event(tracking_number, status, datetime.now(UTC) + timedelta(minutes=minutes), "carrier")


async def _on_hand(sku: str) -> int:
    return (await InventoryLevel.get(variant__sku=sku)).on_hand


async def test_partner_flow_auto_approve_label_scans_receive_inspect_refund(db):
    await _world()
    order, lines = await _delivered()
    payment = await Payment.get(order_id=order.id)
    assert payment.status is PaymentStatus.CAPTURED and payment.captured_amount == Decimal("45.00")
    rma = await returns.request_return(order.id, [ReturnLineRequest(lines["SKU-A"].id, 2, ReturnReason.DAMAGED)],
                                       "partner:returnly", "PARTNER")
    rma = await ReturnAuthorization.get(id=rma.id)
    assert (rma.number, rma.status, rma.auto_approved) == (f"RMA-{rma.id:06d}", ReturnStatus.APPROVED, True)

    label = await returns.issue_label(rma.id, "partner:returnly")
    assert (label.direction, label.return_id) == (ShipmentDirection.RETURN, rma.id)
    assert (await ReturnAuthorization.get(id=rma.id)).status is ReturnStatus.LABEL_ISSUED
    await _scan(label.tracking_number, TrackingStatus.PICKED_UP, 1)
    assert (await ReturnAuthorization.get(id=rma.id)).status is ReturnStatus.IN_TRANSIT
    await _scan(label.tracking_number, TrackingStatus.DELIVERED, 2)
    assert (await ReturnAuthorization.get(id=rma.id)).status is ReturnStatus.RECEIVED
    assert (await Order.get(id=order.id)).status == "DELIVERED"  # the order's own delivery is unchanged

    [rl] = await ReturnLine.filter(rma_id=rma.id)
    await returns.receive_return(rma.id, [(rl.id, 2)], "dock")
    before = await _on_hand("SKU-A")
    await returns.inspect_return(rma.id, [
        InspectionSpec(rl.id, 1, ItemCondition.RESELLABLE, Disposition.RESTOCK),
        InspectionSpec(rl.id, 1, ItemCondition.DAMAGED, Disposition.DISPOSE),
    ], "inspector")
    assert (await ReturnAuthorization.get(id=rma.id)).status is ReturnStatus.INSPECTED
    assert await _on_hand("SKU-A") == before + 1
    moves = await StockMovement.filter(reference=rma.number).values_list("kind", "quantity")
    assert [(str(k), q) for k, q in moves] == [("RETURN", 1)]

    quote = await returns.refund_quote(await ReturnAuthorization.get(id=rma.id))
    assert (quote.merchandise, quote.restocking_fee, quote.return_shipping_fee, quote.total) == (
        Decimal("20.00"), Decimal("0.00"), Decimal("0.00"), Decimal("20.00"))  # damaged on arrival: no fees
    rma = await returns.refund_return(rma.id, "staff")
    rma = await ReturnAuthorization.get(id=rma.id)
    assert (rma.status, rma.refund_amount) == (ReturnStatus.REFUNDED, Decimal("20.00"))
    assert rma.processing_seconds is not None and rma.processing_seconds >= 0
    payment = await Payment.get(order_id=order.id)
    assert (payment.status, payment.refunded_amount) == (PaymentStatus.PARTIALLY_REFUNDED, Decimal("20.00"))
    types = await Event.filter(aggregate_type="Return", aggregate_id=rma.id).order_by("sequence").values_list("type", flat=True)
    assert types == ["RETURN_REQUESTED", "RETURN_APPROVED", "RETURN_LABEL_ISSUED", "RETURN_IN_TRANSIT", "RETURN_ARRIVED",
                     "RETURN_RECEIVED", "RETURN_INSPECTED", "RETURN_REFUNDED"]


async def test_customer_fault_return_needs_approval_and_pays_fees(db):
    await _world()
    order, lines = await _delivered()
    rma = await returns.request_return(order.id, [ReturnLineRequest(lines["SKU-B"].id, 1, ReturnReason.SIZE_FIT)],
                                       "customer:ada@example.com", "CUSTOMER")
    assert (await ReturnAuthorization.get(id=rma.id)).status is ReturnStatus.REQUESTED
    await returns.approve_return(rma.id, "staff")
    [rl] = await ReturnLine.filter(rma_id=rma.id)
    await returns.receive_return(rma.id, [(rl.id, 1)], "dock")
    await returns.inspect_return(rma.id, [InspectionSpec(rl.id, 1, ItemCondition.RESELLABLE, Disposition.RESTOCK)], "qa")
    rma = await returns.refund_return(rma.id, "staff")
    rma = await ReturnAuthorization.get(id=rma.id)
    assert (rma.refund_amount, rma.restocking_fee, rma.return_shipping_fee) == (
        Decimal("17.50"), Decimal("2.50"), Decimal("5.00"))


async def test_eligibility_errors_write_nothing(db):
    await _world(return_window_days=30)
    order, lines = await _delivered(lines=(("SKU-A", 2), ("SKU-C", 1)))
    shipped_only, shipped_lines = await _delivered(lines=(("SKU-B", 1),), deliver=False)
    with pytest.raises(ValidationFailed) as exc:
        await returns.request_return(order.id, [
            ReturnLineRequest(lines["SKU-A"].id, 3, ReturnReason.CHANGED_MIND),
            ReturnLineRequest(lines["SKU-C"].id, 1, ReturnReason.CHANGED_MIND),
            ReturnLineRequest(shipped_lines["SKU-B"].id, 1, ReturnReason.CHANGED_MIND),
        ], "customer", "CUSTOMER")
    assert [(p.code, p.field) for p in exc.value.problems] == [
        (ErrorCode.RETURN_QUANTITY_EXCEEDED, ["lines", "0", "quantity"]),
        (ErrorCode.NOT_RETURNABLE, ["lines", "1", "orderLineId"]),
        (ErrorCode.NOT_FOUND, ["lines", "2", "orderLineId"]),  # another order's line
    ]
    with pytest.raises(ValidationFailed) as exc:
        await returns.request_return(shipped_only.id, [ReturnLineRequest(shipped_lines["SKU-B"].id, 1, ReturnReason.OTHER)],
                                     "customer", "CUSTOMER")
    assert [p.code for p in exc.value.problems] == [ErrorCode.NOT_DELIVERED]
    # outside the window: delivered 31 days ago
    await Shipment.filter(order_id=order.id).update(delivered_at=datetime.now(UTC) - timedelta(days=31))
    with pytest.raises(ValidationFailed) as exc:
        await returns.request_return(order.id, [ReturnLineRequest(lines["SKU-A"].id, 1, ReturnReason.OTHER)], "c", "CUSTOMER")
    assert [p.code for p in exc.value.problems] == [ErrorCode.RETURN_WINDOW_EXPIRED]
    assert await ReturnAuthorization.all().count() == 0 and await Event.filter(aggregate_type="Return").count() == 0


async def test_open_returns_count_and_a_cancelled_order_refuses(db):
    await _world()
    order, lines = await _delivered()
    await returns.request_return(order.id, [ReturnLineRequest(lines["SKU-A"].id, 2, ReturnReason.SIZE_FIT)], "c", "CUSTOMER")
    with pytest.raises(ValidationFailed) as exc:
        await returns.request_return(order.id, [ReturnLineRequest(lines["SKU-A"].id, 1, ReturnReason.SIZE_FIT)], "c", "CUSTOMER")
    assert [(p.code, p.details) for p in exc.value.problems] == [(ErrorCode.RETURN_QUANTITY_EXCEEDED, {"returnable": 0})]
    pending = await place_order(PlaceOrderCommand("WEB", "ada@example.com", [LineCommand("SKU-A", 1)], NYC,
                                                  payment=PaymentCommand()), "test")
    await cancel_order(pending.id, "changed", "test")
    line = await OrderLine.get(order_id=pending.id)
    with pytest.raises(DomainError) as err:
        await returns.request_return(pending.id, [ReturnLineRequest(line.id, 1, ReturnReason.OTHER)], "c", "CUSTOMER")
    assert err.value.code is ErrorCode.ORDER_CANCELLED


async def test_decline_and_cancel_with_a_label_voided(db):
    await _world()
    order, lines = await _delivered()
    one = await returns.request_return(order.id, [ReturnLineRequest(lines["SKU-B"].id, 1, ReturnReason.CHANGED_MIND)], "c", "CUSTOMER")
    with pytest.raises(DomainError) as err:
        await returns.decline_return(one.id, " ", "staff")
    assert err.value.code is ErrorCode.REQUIRED
    await returns.decline_return(one.id, "Worn item", "staff")
    assert (await ReturnAuthorization.get(id=one.id)).status is ReturnStatus.DECLINED
    two = await returns.request_return(order.id, [ReturnLineRequest(lines["SKU-A"].id, 1, ReturnReason.DEFECTIVE)], "c", "CUSTOMER")
    label = await returns.issue_label(two.id, "c")
    await returns.cancel_return(two.id, "c")
    assert (await ReturnAuthorization.get(id=two.id)).status is ReturnStatus.CANCELLED
    assert (await Shipment.get(id=label.id)).status == "VOIDED"
    with pytest.raises(DomainError) as err:
        await returns.refund_return(two.id, "staff")
    assert err.value.code is ErrorCode.INVALID_TRANSITION


async def test_restock_only_resellable_and_never_more_than_received(db):
    await _world()
    order, lines = await _delivered()
    rma = await returns.request_return(order.id, [ReturnLineRequest(lines["SKU-A"].id, 2, ReturnReason.DAMAGED)], "c", "CUSTOMER")
    [rl] = await ReturnLine.filter(rma_id=rma.id)
    with pytest.raises(ValidationFailed) as exc:
        await returns.receive_return(rma.id, [(rl.id, 3)], "dock")
    assert [p.code for p in exc.value.problems] == [ErrorCode.RECEIPT_EXCEEDS_EXPECTED]
    await returns.receive_return(rma.id, [(rl.id, 1)], "dock")
    with pytest.raises(ValidationFailed) as exc:
        await returns.inspect_return(rma.id, [InspectionSpec(rl.id, 2, ItemCondition.DAMAGED, Disposition.RESTOCK)], "qa")
    assert [p.code for p in exc.value.problems] == [ErrorCode.INSPECTION_EXCEEDS_RECEIVED, ErrorCode.DISPOSITION_NOT_ALLOWED]
    assert (await ReturnLine.get(id=rl.id)).inspected_quantity == 0
    # the second unit never comes: inspection completes with what arrived
    await returns.inspect_return(rma.id, [InspectionSpec(rl.id, 1, ItemCondition.DEFECTIVE, Disposition.QUARANTINE)], "qa",
                                 complete=True)
    assert (await ReturnAuthorization.get(id=rma.id)).status is ReturnStatus.INSPECTED
    assert (await returns.refund_quote(await ReturnAuthorization.get(id=rma.id))).total == Decimal("10.00")


@pytest.mark.postgres_only
async def test_two_concurrent_requests_for_the_last_unit_make_one_return(db):
    await _world()
    order, lines = await _delivered(lines=(("SKU-B", 1),))

    async def ask():
        try:
            await returns.request_return(order.id, [ReturnLineRequest(lines["SKU-B"].id, 1, ReturnReason.SIZE_FIT)],
                                         "c", "CUSTOMER")
            return "ok"
        except ValidationFailed as exc:
            return exc.problems[0].code

    results = sorted(await asyncio.gather(*(ask() for _ in range(6))), key=str)
    assert results == [ErrorCode.RETURN_QUANTITY_EXCEEDED] * 5 + ["ok"]
    assert await ReturnAuthorization.all().count() == 1


async def _inspected(lines, sku: str, qty: int, reason=ReturnReason.SIZE_FIT):
    order, by_sku = await _delivered(lines=lines)
    rma = await returns.request_return(order.id, [ReturnLineRequest(by_sku[sku].id, qty, reason)], "c", "CUSTOMER")
    if (await ReturnAuthorization.get(id=rma.id)).status is ReturnStatus.REQUESTED:
        await returns.approve_return(rma.id, "staff")
    [rl] = await ReturnLine.filter(rma_id=rma.id)
    await returns.receive_return(rma.id, [(rl.id, qty)], "dock")
    await returns.inspect_return(rma.id, [InspectionSpec(rl.id, qty, ItemCondition.RESELLABLE, Disposition.RESTOCK)], "qa")
    return order, rma


async def test_exchange_for_the_same_price_makes_a_linked_replacement_at_no_charge(db):
    await _world(restocking_fee_percent=Decimal("0"), return_shipping_fee=Decimal("0"))
    from ordergraph.models import Warehouse  # noqa: PLC0415

    await f.stock(await Warehouse.get(code="EAST"), await f.variant("SKU-A2", price="10.00"), 5)
    order, rma = await _inspected((("SKU-A", 1),), "SKU-A", 1)
    rma = await returns.exchange_return(rma.id, [("SKU-A2", 1)], "staff")
    rma = await ReturnAuthorization.get(id=rma.id)
    assert (rma.status, rma.refund_amount) == (ReturnStatus.EXCHANGED, Decimal("0.00"))
    replacement = await Order.get(id=rma.exchange_order_id)
    assert (replacement.notes, replacement.status) == (f"Exchange for {rma.number}", "ALLOCATED")
    assert not await replacement.payments.all().exists()
    assert (await Payment.get(order_id=order.id)).refunded_amount == Decimal("0.00")


async def test_exchange_differences_are_refunded_or_charged(db):
    await _world(restocking_fee_percent=Decimal("0"), return_shipping_fee=Decimal("0"))
    # cheaper replacement: 25.00 returned, 10.00 sent: 15.00 back to the original payment
    order, rma = await _inspected((("SKU-B", 1),), "SKU-B", 1)
    await returns.exchange_return(rma.id, [("SKU-A", 1)], "staff")
    assert (await Payment.get(order_id=order.id)).refunded_amount == Decimal("15.00")
    assert (await ReturnAuthorization.get(id=rma.id)).refund_amount == Decimal("15.00")
    # dearer replacement: 10.00 returned, 25.00 sent: 15.00 more, which needs a payment
    order, rma = await _inspected((("SKU-A", 1),), "SKU-A", 1)
    with pytest.raises(DomainError) as err:
        await returns.exchange_return(rma.id, [("SKU-B", 1)], "staff")
    assert (err.value.code, err.value.details) == (ErrorCode.REQUIRED, {"difference": "15.00"})
    assert (await ReturnAuthorization.get(id=rma.id)).status is ReturnStatus.INSPECTED
    from ordergraph.workflows.commands import PaymentCommand as Pay  # noqa: PLC0415

    rma = await returns.exchange_return(rma.id, [("SKU-B", 1)], "staff", payment=Pay(token="tok_approve"))
    replacement = await Order.get(id=(await ReturnAuthorization.get(id=rma.id)).exchange_order_id)
    [charge] = await Payment.filter(order_id=replacement.id)
    assert (charge.status, charge.authorized_amount) == (PaymentStatus.AUTHORIZED, Decimal("15.00"))
