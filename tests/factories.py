"""Test data built straight on the models (setup only; behaviour is tested via workflows/API)."""

from __future__ import annotations

from decimal import Decimal

from ordergraph.auth.keys import create_api_key
from ordergraph.auth.tokens import issue_customer_token
from ordergraph.models import (
    ChannelWarehouse,
    InventoryLevel,
    Partner,
    Product,
    ProductVariant,
    SalesChannel,
    Warehouse,
)
from ordergraph.models.enums import (
    AllocationStrategy,
    CaptureMode,
    ChannelKind,
    Role,
    StockPolicy,
)

ADDRESS_US = {
    "name": "Ada Lovelace",
    "line1": "1 Main St",
    "city": "Springfield",
    "region": "IL",
    "postal_code": "62701",
    "country": "US",
}


async def warehouse(code: str, *, priority: int = 100, lat: float = 40.0, lon: float = -75.0, countries=("US", "CA"), active: bool = True) -> Warehouse:
    return await Warehouse.create(
        code=code,
        name=f"Warehouse {code}",
        address={"line1": "1 Dock Rd", "city": code, "postal_code": "00000", "country": countries[0]},
        latitude=lat,
        longitude=lon,
        priority=priority,
        active=active,
        ship_countries=list(countries),
    )


async def channel(code: str, warehouses: list[Warehouse], *, currency: str = "USD", kind: ChannelKind = ChannelKind.WEB, strategy: AllocationStrategy = AllocationStrategy.PRIORITY, stock_policy: StockPolicy = StockPolicy.REJECT, capture: CaptureMode = CaptureMode.ON_SHIPMENT, sets_prices: bool = False) -> SalesChannel:
    ch = await SalesChannel.create(
        code=code,
        name=f"Channel {code}",
        kind=kind,
        currency=currency,
        allocation_strategy=strategy,
        stock_policy=stock_policy,
        capture_mode=capture,
        sets_prices=sets_prices,
    )
    for w in warehouses:
        await ChannelWarehouse.create(channel=ch, warehouse=w)
    return ch


async def variant(sku: str, *, price: str = "10.00", currency: str = "USD", active: bool = True, **kw) -> ProductVariant:
    product = await Product.create(name=f"Product {sku}")
    return await ProductVariant.create(
        product=product, sku=sku, name=f"Variant {sku}", price=Decimal(price), currency=currency, active=active, **kw
    )


async def stock(w: Warehouse, v: ProductVariant, on_hand: int, *, safety: int = 0, reorder_point: int = 0) -> InventoryLevel:
    return await InventoryLevel.create(
        warehouse=w, variant=v, on_hand=on_hand, safety_stock=safety, reorder_point=reorder_point
    )


async def staff_key(scopes: list[str] | None = None) -> str:
    key, _ = await create_api_key(Role.STAFF, scopes)
    return key


async def partner_key(code: str, channels: list[SalesChannel], scopes: list[str] | None = None) -> str:
    await Partner.create(code=code, name=f"Partner {code}", channel_ids=[c.id for c in channels])
    key, _ = await create_api_key(Role.PARTNER, scopes, partner_code=code)
    return key


def customer_token(email: str) -> str:
    return issue_customer_token(email)
