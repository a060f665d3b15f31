"""Allocation strategies, safety stock and shipping countries (workflows, no GraphQL)."""

import pytest

from ordergraph.models import Allocation, InventoryLevel
from ordergraph.models.enums import AllocationStrategy, StockPolicy
from ordergraph.workflows.commands import Address, LineCommand, PaymentCommand, PlaceOrderCommand
from ordergraph.workflows.errors import DomainError, ErrorCode
from ordergraph.workflows.orders import place_order
from tests import factories as f

NYC = Address(name="A", line1="1 St", city="New York", postal_code="10001", country="US", latitude=40.7, longitude=-74.0)


async def _network(strategy, stock_policy=StockPolicy.REJECT):
    east = await f.warehouse("EAST", priority=2, lat=40.7, lon=-74.2)   # near NYC
    west = await f.warehouse("WEST", priority=1, lat=37.8, lon=-122.4)  # first by priority
    eu = await f.warehouse("AMS", priority=0, lat=52.4, lon=4.9, countries=("NL", "DE"))
    await f.channel("WEB", [east, west, eu], strategy=strategy, stock_policy=stock_policy)
    return east, west, eu


async def _place(lines, address=NYC) -> dict[str, list[tuple[str, int]]]:
    order = await place_order(
        PlaceOrderCommand("WEB", "a@example.com", [LineCommand(s, q) for s, q in lines], address, payment=PaymentCommand()),
        "test",
    )
    rows = await Allocation.filter(order_id=order.id).order_by("id").prefetch_related("line", "warehouse")
    out: dict[str, list[tuple[str, int]]] = {}
    for a in rows:
        out.setdefault(a.line.sku, []).append((a.warehouse.code, a.quantity))
    return out


async def test_priority_takes_warehouses_in_priority_order_and_skips_wrong_country(db):
    east, west, eu = await _network(AllocationStrategy.PRIORITY)
    v = await f.variant("V")
    for w in (east, west, eu):
        await f.stock(w, v, 3)
    assert await _place([("V", 4)]) == {"V": [("WEST", 3), ("EAST", 1)]}


async def test_proximity_prefers_the_nearest_warehouse(db):
    east, west, eu = await _network(AllocationStrategy.PROXIMITY)
    v = await f.variant("V")
    await f.stock(east, v, 5)
    await f.stock(west, v, 5)
    assert await _place([("V", 2)]) == {"V": [("EAST", 2)]}
    la = Address(name="B", line1="2 St", city="LA", postal_code="90001", country="US", latitude=34.0, longitude=-118.2)
    assert await _place([("V", 2)], la) == {"V": [("WEST", 2)]}


async def test_fewest_shipments_prefers_one_warehouse_that_has_everything(db):
    east, west, eu = await _network(AllocationStrategy.FEWEST_SHIPMENTS)
    a, b = await f.variant("A"), await f.variant("B")
    await f.stock(west, a, 5)   # WEST has only A (and is first by priority)
    await f.stock(east, a, 5)
    await f.stock(east, b, 5)   # EAST has both
    assert await _place([("A", 2), ("B", 2)]) == {"A": [("EAST", 2)], "B": [("EAST", 2)]}


async def test_highest_stock_takes_from_the_fullest_warehouse(db):
    east, west, eu = await _network(AllocationStrategy.HIGHEST_STOCK)
    v = await f.variant("V")
    await f.stock(east, v, 9)
    await f.stock(west, v, 4)
    assert await _place([("V", 3)]) == {"V": [("EAST", 3)]}


async def test_safety_stock_is_never_allocated(db):
    east, west, eu = await _network(AllocationStrategy.PRIORITY)
    v = await f.variant("V")
    await f.stock(west, v, 5, safety=4)
    await f.stock(east, v, 2, safety=1)
    with pytest.raises(DomainError) as err:
        await _place([("V", 3)])
    assert err.value.code is ErrorCode.INSUFFICIENT_STOCK
    assert err.value.details["shortages"] == [{"sku": "V", "requested": 3, "available": 2}]
    assert sorted(await InventoryLevel.all().values_list("allocated", flat=True)) == [0, 0]
    assert await _place([("V", 2)]) == {"V": [("WEST", 1), ("EAST", 1)]}


async def test_backorder_policy_allow_on_variant_backorders_even_on_reject_channel(db):
    from ordergraph.models.enums import BackorderPolicy

    east, west, eu = await _network(AllocationStrategy.PRIORITY)
    v = await f.variant("PRE", backorder_policy=BackorderPolicy.ALLOW)
    await f.stock(west, v, 1)
    assert await _place([("PRE", 3)]) == {"PRE": [("WEST", 1)]}
