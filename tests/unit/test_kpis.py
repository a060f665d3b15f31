"""KPIs computed in the database from known orders, shipments, exceptions and returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ordergraph.db import transaction
from ordergraph.models import FulfillmentOrder, Order, ReturnAuthorization, ReturnLine
from ordergraph.models.enums import ExceptionKind, ReturnReason
from ordergraph.seed import fulfil_order
from ordergraph.workflows import exceptions, kpis, returns
from ordergraph.workflows.commands import Address, LineCommand, PaymentCommand, PlaceOrderCommand
from ordergraph.workflows.errors import DomainError, ErrorCode
from ordergraph.workflows.orders import place_order
from ordergraph.workflows.returns import ReturnLineRequest
from tests import factories as f

NYC = Address(name="Ada", line1="1 Main St", city="New York", postal_code="10001", country="US")
MONDAY = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


async def _shipped(hours_to_ship: float, *, deliver: bool = False) -> Order:
    order = await place_order(PlaceOrderCommand("WEB", "ada@example.com", [LineCommand("SKU-A", 1)], NYC,
                                                payment=PaymentCommand()), "test")
    order = await fulfil_order(order, deliver=deliver)
    placed = MONDAY + timedelta(minutes=order.id)
    await Order.filter(id=order.id).update(placed_at=placed)
    from ordergraph.workflows.fulfillment import promised_ship_by  # noqa: PLC0415

    await FulfillmentOrder.filter(order_id=order.id).update(shipped_at=placed + timedelta(hours=hours_to_ship),
                                                           promised_ship_by=promised_ship_by(placed, "STANDARD"))
    return await Order.get(id=order.id)


async def test_kpis_of_a_known_period(db):
    east = await f.warehouse("EAST")
    await f.channel("WEB", [east])
    await f.stock(east, await f.variant("SKU-A", price="10.00"), 100)
    # five shipped orders: 2, 4, 10, 30 and 80 hours to ship; the last is past its promised date (Wednesday night)
    orders = [await _shipped(h, deliver=(h == 2)) for h in (2, 4, 10, 30, 80)]
    pending = await place_order(PlaceOrderCommand("WEB", "ada@example.com", [LineCommand("SKU-A", 1)], NYC,
                                                  payment=PaymentCommand()), "test")
    await Order.filter(id=pending.id).update(placed_at=MONDAY)
    async with transaction():
        await exceptions.raise_exception(ExceptionKind.CARRIER_DELAY, "k1", "late", "t", order_id=orders[1].id)
        await exceptions.raise_exception(ExceptionKind.CARRIER_DELAY, "k2", "late", "t", order_id=orders[2].id)
        await exceptions.raise_exception(ExceptionKind.SHORT_PICK, "k3", "short", "t", order_id=orders[3].id)
    # the delivered order comes back as the wrong item: accuracy drops, and its return is refunded
    line = (await orders[0].lines.all())[0]
    rma = await returns.request_return(orders[0].id, [ReturnLineRequest(line.id, 1, ReturnReason.WRONG_ITEM)], "c", "CUSTOMER")
    await ReturnAuthorization.filter(id=rma.id).update(status="REFUNDED", processing_seconds=36 * 3600,
                                                       closed_at=MONDAY + timedelta(hours=20))
    assert await ReturnLine.filter(rma_id=rma.id).count() == 1

    k = await kpis.compute(MONDAY - timedelta(hours=1), MONDAY + timedelta(days=1))
    assert (k.orders, k.shipped_orders) == (6, 5)
    assert (k.cycle_p50_hours, k.cycle_p90_hours) == (10.0, 30.0)  # lower nearest rank of [2, 4, 10, 30, 80]
    assert k.sla_achievement == 0.8 and k.accuracy == 0.8
    assert k.exceptions == {"CARRIER_DELAY": 2, "SHORT_PICK": 1}
    assert (k.returns_refunded, k.returns_p50_hours, k.returns_average_hours) == (1, 36.0, 36.0)
    # a channel with no orders, and a period with none
    empty = await kpis.compute(MONDAY + timedelta(days=10), MONDAY + timedelta(days=11))
    assert (empty.orders, empty.shipped_orders, empty.cycle_p50_hours, empty.accuracy) == (0, 0, None, None)
    with pytest.raises(DomainError) as err:
        await kpis.compute(MONDAY, MONDAY)
    assert err.value.code is ErrorCode.INVALID_VALUE
