"""Exceptions: raised once per fact by the workflows and the sweeps (frozen clock), escalated on
time and once when workers race, resolved when the cause is fixed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from ordergraph.db import transaction
from ordergraph.models import Event, Notification, OrderException, Shipment
from ordergraph.models.enums import ExceptionKind as K
from ordergraph.models.enums import ExceptionStatus, TrackingStatus
from ordergraph.seed import fulfil_order
from ordergraph.workflows import exceptions, fulfillment, shipping
from ordergraph.workflows.commands import Address, LineCommand, PaymentCommand, PlaceOrderCommand
from ordergraph.workflows.errors import DomainError, ErrorCode
from ordergraph.workflows.orders import place_order
from tests import factories as f

NYC = Address(name="Ada", line1="1 Main St", city="New York", postal_code="10001", country="US")


async def _world(east_stock=5, west_stock=0):
    east = await f.warehouse("EAST", priority=1)
    west = await f.warehouse("WEST", priority=2)
    await f.channel("WEB", [east, west])
    a = await f.variant("SKU-A", price="10.00")
    await f.stock(east, a, east_stock)
    await f.stock(west, a, west_stock)
    return east, west


async def _order(qty=2):
    return await place_order(PlaceOrderCommand("WEB", "ada@example.com", [LineCommand("SKU-A", qty)], NYC,
                                               payment=PaymentCommand()), "test")


async def test_a_fact_raises_one_exception_whatever_the_retries(db):
    await _world()
    order = await _order()

    async def raise_it():
        async with transaction():
            return await exceptions.raise_exception(K.DELIVERY_FAILED, f"DELIVERY_FAILED:x{order.id}", "no one home", "t",
                                                    order_id=order.id)

    results = await asyncio.gather(*(raise_it() for _ in range(5)))
    assert sum(r is not None for r in results) == 1
    [exc] = await OrderException.all()
    assert (exc.number, exc.status, exc.severity, exc.team) == (f"EXC-{exc.id:06d}", ExceptionStatus.OPEN, "HIGH",
                                                                "CUSTOMER_CARE")
    assert await Event.filter(aggregate_type="Exception", type="EXCEPTION_RAISED").count() == 1


async def test_short_pick_raises_short_pick_and_out_of_stock(db):
    east, _ = await _world(east_stock=2, west_stock=0)
    order = await _order(2)
    async with transaction():
        from ordergraph.models import Order  # noqa: PLC0415

        await fulfillment.create_fulfillment_orders(await Order.select_for_update().get(id=order.id), "t")
    pl = await fulfillment.create_batch_pick_list(east.id, "picker")
    await fulfillment.report_short_pick(pl.id, "SKU-A", 2, "picker", reason="bin empty")
    kinds = sorted((e.kind, e.order_id) for e in await OrderException.all())
    assert kinds == [(K.OUT_OF_STOCK, order.id), (K.SHORT_PICK, order.id)]


async def test_carrier_bad_news_raises_and_delivery_resolves(db):
    await _world()
    order = await fulfil_order(await _order(), deliver=False)
    [s] = await Shipment.filter(order_id=order.id)
    t0 = datetime.now(UTC)
    for i, status in enumerate((TrackingStatus.DELAYED, TrackingStatus.DELAYED, TrackingStatus.FAILED_ATTEMPT)):
        await shipping.record_tracking_event(s.tracking_number, status, t0 + timedelta(minutes=i), "carrier")
    assert sorted(e.kind for e in await OrderException.all()) == [K.CARRIER_DELAY, K.DELIVERY_FAILED]  # one per kind
    await shipping.record_tracking_event(s.tracking_number, TrackingStatus.DELIVERED, t0 + timedelta(hours=1), "carrier")
    assert {(e.kind, e.status, e.resolution_action) for e in await OrderException.all()} == {
        (K.CARRIER_DELAY, ExceptionStatus.RESOLVED, "DELIVERED"), (K.DELIVERY_FAILED, ExceptionStatus.RESOLVED, "DELIVERED")}


async def test_sweeps_on_a_frozen_clock_raise_once(db):
    await _world()
    order = await fulfil_order(await _order(), deliver=False)  # shipped, no scan yet
    now = datetime.now(UTC)
    assert await exceptions.sweep(now) == 0
    later = now + timedelta(days=6)
    assert await exceptions.sweep(later) == 1  # no scan for 5 days: lost
    assert await exceptions.sweep(later) == 0  # a second sweep (or worker) raises nothing new
    [lost] = await OrderException.all()
    assert (lost.kind, lost.shipment_id is not None) == (K.LOST_IN_TRANSIT, True)
    # an order not shipped by its promised date
    unshipped = await _order(1)
    assert fulfillment.promised_ship_by(datetime(2026, 11, 20, 10, tzinfo=UTC), "STANDARD") == datetime(
        2026, 11, 24, 23, 59, 59, tzinfo=UTC)  # Friday morning + 2 business days
    assert await exceptions.sweep(later) == 1
    assert await OrderException.filter(kind=K.SHIP_SLA_BREACH, order_id=unshipped.id).count() == 1


async def test_escalation_on_time_once_with_racing_workers_and_acknowledge_stops_it(db):
    await _world()
    order = await _order()
    t0 = datetime.now(UTC)
    async with transaction():
        exc = await exceptions.raise_exception(K.PAYMENT_FAILED, "PAYMENT_FAILED:1", "declined", "t", order_id=order.id, now=t0)
    assert await exceptions.escalate_due(t0 + timedelta(minutes=29)) == 0
    results = await asyncio.gather(*(exceptions.escalate_due(t0 + timedelta(minutes=31)) for _ in range(4)))
    assert sum(results) == 1
    exc = await OrderException.get(id=exc.id)
    assert (exc.status, exc.escalation_level) == (ExceptionStatus.ESCALATED, 1)
    assert await Notification.filter(template="EXCEPTION_ESCALATED").count() == 1
    assert await exceptions.escalate_due(t0 + timedelta(minutes=62)) == 1  # level 2 after another 30 minutes
    await exceptions.acknowledge(exc.id, "ops:grace")
    assert await exceptions.escalate_due(t0 + timedelta(hours=5)) == 0
    exc = await OrderException.get(id=exc.id)
    assert (exc.status, exc.escalation_level, exc.assignee) == (ExceptionStatus.ACKNOWLEDGED, 2, "ops:grace")


async def test_lifecycle_refusals_and_reopen(db):
    await _world()
    async with transaction():
        exc = await exceptions.raise_exception(K.ADDRESS_INVALID, "ADDRESS_INVALID:1", "no such street", "t")
    with pytest.raises(DomainError) as err:
        await exceptions.dismiss(exc.id, "", "ops")
    assert err.value.code is ErrorCode.REQUIRED
    await exceptions.dismiss(exc.id, "customer confirmed the address", "ops")
    with pytest.raises(DomainError) as err:
        await exceptions.acknowledge(exc.id, "ops")
    assert err.value.code is ErrorCode.INVALID_TRANSITION
    await exceptions.reopen(exc.id, "parcel came back", "ops")
    exc = await OrderException.get(id=exc.id)
    assert (exc.status, exc.resolved_at) == (ExceptionStatus.OPEN, None)
    types = await Event.filter(aggregate_type="Exception").order_by("id").values_list("type", flat=True)
    assert types == ["EXCEPTION_RAISED", "EXCEPTION_DISMISSED", "EXCEPTION_REOPENED"]


async def test_a_carrier_refusing_the_address_raises_address_invalid_once(db):
    east, _ = await _world()
    odd = Address(name="Ada", line1="1 Nowhere Rd [unserviceable]", city="New York", postal_code="10001", country="US")
    order = await place_order(PlaceOrderCommand("WEB", "ada@example.com", [LineCommand("SKU-A", 1)], odd,
                                                payment=PaymentCommand()), "test")
    async with transaction():
        from ordergraph.models import Order  # noqa: PLC0415

        await fulfillment.create_fulfillment_orders(await Order.select_for_update().get(id=order.id), "t")
    pl = await fulfillment.create_batch_pick_list(east.id, "picker")
    await fulfillment.confirm_pick(pl.id, "SKU-A", 1, "picker")
    from decimal import Decimal  # noqa: PLC0415

    from ordergraph.models import FulfillmentOrder  # noqa: PLC0415

    [fo] = await FulfillmentOrder.filter(order_id=order.id)
    [pkg] = await fulfillment.pack(fo.id, [fulfillment.PackageSpec(500, Decimal(10), Decimal(10), Decimal(10),
                                                                    [("SKU-A", 1)])], "packer")
    for _ in range(2):
        with pytest.raises(DomainError) as err:
            await shipping.buy_label(pkg.id, "packer", carrier="econopost", service="STANDARD")
        assert err.value.code is ErrorCode.ADDRESS_UNSERVICEABLE
    [exc] = await OrderException.filter(kind=K.ADDRESS_INVALID)
    assert (exc.order_id, exc.details["carrier"]) == (order.id, "econopost")
    assert not await Shipment.filter(order_id=order.id).exists()
