"""No unit is ever oversold: 200 concurrent placeOrder calls race for 5 units (PostgreSQL)."""

import asyncio

import pytest

from ordergraph.models import Allocation, InventoryLevel, Order, StockMovement
from ordergraph.models.enums import ChannelKind
from tests import factories as f
from tests.orders_helpers import PLACE, order_input

pytestmark = pytest.mark.postgres_only


async def test_200_concurrent_orders_never_oversell_five_units(gql, db):
    east = await f.warehouse("EAST", priority=1)
    west = await f.warehouse("WEST", priority=2)
    await f.channel("MKT", [east, west], kind=ChannelKind.MARKETPLACE, sets_prices=True)
    hot = await f.variant("HOT")
    await f.stock(east, hot, 3)
    await f.stock(west, hot, 2)
    key = await f.staff_key()

    def request(i: int) -> dict:
        if i % 4 == 0:  # the SKU on two lines (two marketplace line items)
            lines = [{"sku": "HOT", "quantity": 1, "unitPrice": "9.00", "externalLineId": f"{i}-a"},
                     {"sku": "HOT", "quantity": 1, "unitPrice": "9.00", "externalLineId": f"{i}-b"}]
        else:
            lines = [{"sku": "HOT", "quantity": 1, "unitPrice": "9.00"}]
        return order_input(lines, channel="MKT", email=f"buyer{i}@example.com")

    responses = await asyncio.gather(*[gql.raw(PLACE, {"input": request(i)}, auth=key) for i in range(200)])
    assert {r.status_code for r in responses} == {200}
    results = [r.json() for r in responses]
    assert all("errors" not in r for r in results), [r["errors"] for r in results if "errors" in r][:3]
    placed = [r["data"]["placeOrder"] for r in results if r["data"]["placeOrder"]["__typename"] == "OrderPayload"]
    refused = [r["data"]["placeOrder"] for r in results if r["data"]["placeOrder"]["__typename"] != "OrderPayload"]
    assert {r["code"] for r in refused} == {"INSUFFICIENT_STOCK"}
    units = sum(ln["allocatedQuantity"] for o in placed for ln in o["order"]["lines"])
    assert units == 5
    assert all(o["order"]["status"] == "ALLOCATED" for o in placed)
    levels = await InventoryLevel.filter(variant=hot).values_list("on_hand", "allocated")
    assert sorted(levels) == [(2, 2), (3, 3)]
    assert sum(await Allocation.all().values_list("quantity", flat=True)) == 5
    assert await StockMovement.filter(kind="ALLOCATION").count() == await Allocation.all().count()
    assert await Order.all().count() == len(placed)
