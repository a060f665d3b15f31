"""Resolution actions run the real workflow and resolve the exceptions they fix."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ordergraph.db import transaction
from ordergraph.models import FulfillmentOrder, InventoryLevel, Order, OrderException, OrderHold, OrderLine, Shipment
from ordergraph.models.enums import ExceptionKind as K
from ordergraph.models.enums import ExceptionStatus, FulfillmentStatus, HoldReason, TrackingStatus
from ordergraph.seed import fulfil_order
from ordergraph.workflows import exceptions, resolutions, shipping
from ordergraph.workflows.commands import Address, LineCommand, PaymentCommand, PlaceOrderCommand
from ordergraph.workflows.errors import DomainError, ErrorCode, ValidationFailed
from ordergraph.workflows.orders import place_hold, place_order
from tests import factories as f

NYC = Address(name="Ada", line1="1 Main St", city="New York", postal_code="10001", country="US")


async def _world():
    east = await f.warehouse("EAST", priority=1)
    west = await f.warehouse("WEST", priority=2)
    await f.channel("WEB", [east, west])
    a = await f.variant("SKU-A", price="10.00")
    await f.stock(east, a, 5)
    await f.stock(west, a, 5)
    return east, west


async def _order(qty=2) -> Order:
    order = await place_order(PlaceOrderCommand("WEB", "ada@example.com", [LineCommand("SKU-A", qty)], NYC,
                                                payment=PaymentCommand()), "test")
    async with transaction():
        from ordergraph.workflows.fulfillment import create_fulfillment_orders  # noqa: PLC0415

        await create_fulfillment_orders(await Order.select_for_update().get(id=order.id), "test")
    return order


async def _exc(kind: K, order: Order, key: str) -> OrderException:
    async with transaction():
        return await exceptions.raise_exception(kind, key, "test", "t", order_id=order.id)


async def test_reallocate_reroutes_to_the_other_warehouse_and_resolves(db):
    east, west = await _world()
    order = await _order()
    sla = await _exc(K.SHIP_SLA_BREACH, order, "sla")
    await resolutions.reallocate(order.id, east.id, "ops")
    fos = await FulfillmentOrder.filter(order_id=order.id).order_by("id").prefetch_related("warehouse")
    assert [(fo.warehouse.code, fo.status) for fo in fos] == [("EAST", FulfillmentStatus.CANCELLED), ("WEST", FulfillmentStatus.OPEN)]
    levels = {lv.warehouse_id: (lv.on_hand, lv.allocated) for lv in await InventoryLevel.all()}
    assert levels == {east.id: (5, 0), west.id: (5, 2)}
    line = await OrderLine.get(order_id=order.id)
    assert (line.allocated_quantity, line.backordered_quantity) == (2, 0)
    sla = await OrderException.get(id=sla.id)
    assert (sla.status, sla.resolution_action) == (ExceptionStatus.RESOLVED, "REALLOCATE")
    with pytest.raises(DomainError) as err:
        await resolutions.reallocate(order.id, east.id, "ops")
    assert err.value.code is ErrorCode.INVALID_TRANSITION


async def test_reship_a_lost_parcel_as_a_free_replacement(db):
    await _world()
    order = await fulfil_order(await _order(), deliver=False)
    [s] = await Shipment.filter(order_id=order.id)
    await shipping.record_tracking_event(s.tracking_number, TrackingStatus.EXCEPTION, datetime.now(UTC), "carrier")
    [failed] = await OrderException.filter(order_id=order.id)
    replacement = await resolutions.reship(s.id, "ops")
    assert replacement.notes == f"Reship of {s.tracking_number}" and replacement.status == "ALLOCATED"
    assert [(ln.sku, ln.quantity) for ln in await OrderLine.filter(order_id=replacement.id)] == [("SKU-A", 2)]
    assert not await replacement.payments.all().exists()  # nothing more is charged
    assert (await OrderException.get(id=failed.id)).resolution_action == "RESHIP"
    with pytest.raises(DomainError) as err:
        await resolutions.reship(s.id, "ops")
    assert err.value.code is ErrorCode.ALREADY_EXISTS


async def test_update_address_releases_the_hold_and_refuses_after_a_label(db):
    await _world()
    order = await _order()
    await place_hold(order.id, HoldReason.ADDRESS, "no such street", "ops")
    bad = await _exc(K.ADDRESS_INVALID, order, "addr")
    with pytest.raises(ValidationFailed):
        await resolutions.update_shipping_address(order.id, Address(name="Ada", line1="", city="NYC", postal_code="1",
                                                                    country="US"), "ops")
    fixed = Address(name="Ada", line1="2 Main St Apt 4", city="New York", postal_code="10001", country="US")
    order = await resolutions.update_shipping_address(order.id, fixed, "ops")
    assert order.shipping_address["line1"] == "2 Main St Apt 4"
    assert not await OrderHold.filter(order_id=order.id, released_at__isnull=True).exists()
    assert (await OrderException.get(id=bad.id)).status is ExceptionStatus.RESOLVED
    shipped = await fulfil_order(await _order(1), deliver=False)
    with pytest.raises(DomainError) as err:
        await resolutions.update_shipping_address(shipped.id, fixed, "ops")
    assert err.value.code is ErrorCode.INVALID_TRANSITION


async def test_cancel_and_refund_resolves_every_open_exception(db):
    await _world()
    order = await _order()
    one, two = await _exc(K.OUT_OF_STOCK, order, "a"), await _exc(K.FRAUD_REVIEW, order, "b")
    order = await resolutions.cancel_and_refund(order.id, "fraud confirmed", "ops")
    assert order.status == "CANCELLED"
    # cancelling resolves every open exception of the order
    assert {(await OrderException.get(id=e.id)).resolution_action for e in (one, two)} == {"ORDER_CANCELLED"}
