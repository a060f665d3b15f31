"""placeOrder consuming a checkout reservation."""

from datetime import UTC, datetime, timedelta

import pytest

from ordergraph.models import Allocation, InventoryLevel, Order, Reservation, StockMovement
from ordergraph.workflows.commands import Address, LineCommand, PlaceOrderCommand
from ordergraph.workflows.errors import DomainError, ErrorCode
from ordergraph.workflows.orders import place_order
from ordergraph.workflows.reservations import reserve_stock
from tests import factories as f

SHIP = Address(name="A", line1="1 St", city="X", postal_code="1", country="US")


async def _setup():
    east = await f.warehouse("EAST", priority=1)
    west = await f.warehouse("WEST", priority=2)
    await f.channel("WEB", [east, west])
    v = await f.variant("V")
    await f.stock(east, v, 2)
    await f.stock(west, v, 2)
    return east, west, v


def _cmd(qty: int, token: str) -> PlaceOrderCommand:
    return PlaceOrderCommand("WEB", "a@example.com", [LineCommand("V", qty)], SHIP, reservation_token=token)


async def test_order_consumes_its_reservation_and_allocates_the_rest(db):
    east, west, v = await _setup()
    res = await reserve_stock("WEB", [("V", 3)], "cart-1", "staff:x", "test")
    assert sorted(await InventoryLevel.all().values_list("reserved", flat=True)) == [1, 2]
    order = await place_order(_cmd(4, res.token), "test")
    assert order.status == "ALLOCATED"
    levels = sorted(await InventoryLevel.all().values_list("warehouse_id", "reserved", "allocated"))
    assert levels == [(east.id, 0, 2), (west.id, 0, 2)]
    assert sum(await Allocation.filter(order_id=order.id).values_list("quantity", flat=True)) == 4
    await res.refresh_from_db()
    assert (res.status, res.order_id) == ("CONSUMED", order.id)
    consumed = await StockMovement.filter(kind="ALLOCATION", reference=res.token).values_list("quantity", "reserved_after")
    assert sorted(consumed) == [(1, 0), (2, 0)]


async def test_expired_reservation_refuses_the_order_and_writes_nothing(db):
    await _setup()
    res = await reserve_stock("WEB", [("V", 1)], "cart-1", "staff:x", "test")
    await Reservation.filter(id=res.id).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    movements = await StockMovement.all().count()
    with pytest.raises(DomainError) as err:
        await place_order(_cmd(1, res.token), "test")
    assert err.value.code is ErrorCode.RESERVATION_EXPIRED
    assert await Order.all().count() == 0
    assert await StockMovement.all().count() == movements


async def test_reservation_holding_more_than_the_order_needs_is_refused(db):
    await _setup()
    res = await reserve_stock("WEB", [("V", 3)], "cart-1", "staff:x", "test")
    with pytest.raises(DomainError) as err:
        await place_order(_cmd(2, res.token), "test")
    assert err.value.code is ErrorCode.RESERVATION_MISMATCH
    assert await Order.all().count() == 0
    await res.refresh_from_db()
    assert res.status == "ACTIVE"
