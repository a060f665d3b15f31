"""The demo data set: shape, stock through the ledger, working credentials, orders via the workflow."""

from __future__ import annotations

from tortoise.functions import Sum

from ordergraph import seed
from ordergraph.auth.keys import viewer_for_key
from ordergraph.auth.tokens import viewer_for_token
from ordergraph.auth.viewer import ALL_SCOPES, ViewerKind
from ordergraph.models import (
    ApiKey,
    Event,
    InventoryLevel,
    Order,
    OrderHold,
    Partner,
    Product,
    ProductVariant,
    SalesChannel,
    StockMovement,
    Warehouse,
)
from ordergraph.models.enums import (
    AllocationStrategy,
    CaptureMode,
    ChannelKind,
    HoldReason,
    MovementKind,
    OrderStatus,
    StockPolicy,
)


def test_catalog_tables_are_consistent():
    skus = [seed.sku_for(p, o) for p in seed.CATALOG for o in p.options]
    assert len(skus) == len(set(skus)) == 40
    known = set(skus)
    for p in seed.CATALOG:
        assert set(p.overrides) <= known, p.name
    for order in seed.DEMO_ORDERS:
        assert order.customer in seed.CUSTOMERS
        assert {sku for sku, _ in order.lines} <= known
        assert (order.then == "hold") == (order.hold is not None)
        assert order.then in (None, "cancel", "hold", "ship", "deliver")
    assert sum(o.customer == "ada" for o in seed.DEMO_ORDERS) >= 5


async def test_reference_data(db):
    result = await seed.seed_demo(with_orders=False)

    warehouses = {w.code: w for w in await Warehouse.all()}
    assert set(warehouses) == {"EWR", "RNO", "AMS"}
    assert "US" in warehouses["EWR"].ship_countries and "US" in warehouses["RNO"].ship_countries
    assert "NL" in warehouses["AMS"].ship_countries and "US" not in warehouses["AMS"].ship_countries
    assert all(w.latitude is not None and w.longitude is not None for w in warehouses.values())

    web = await SalesChannel.get(code="WEB").prefetch_related("warehouse_links__warehouse")
    mkt = await SalesChannel.get(code="MKT").prefetch_related("warehouse_links__warehouse")
    assert (web.kind, web.currency, web.allocation_strategy, web.stock_policy, web.capture_mode, web.sets_prices) == (
        ChannelKind.WEB, "USD", AllocationStrategy.PROXIMITY, StockPolicy.REJECT, CaptureMode.ON_SHIPMENT, False,
    )
    assert (mkt.kind, mkt.allocation_strategy, mkt.stock_policy, mkt.capture_mode, mkt.sets_prices) == (
        ChannelKind.MARKETPLACE, AllocationStrategy.FEWEST_SHIPMENTS, StockPolicy.ACCEPT,
        CaptureMode.ON_CONFIRMATION, True,
    )
    assert {link.warehouse.code for link in web.warehouse_links} == {"EWR", "RNO", "AMS"}
    partner = await Partner.get(code=seed.PARTNER_CODE)
    assert partner.channel_ids == [mkt.id]

    assert await Product.all().count() == 12
    assert await ProductVariant.all().count() == result.variants == 40
    assert await ProductVariant.filter(returnable=False).count() == 4

    levels = await InventoryLevel.all()
    assert len(levels) == result.stocked_levels
    assert any(lv.on_hand == 0 for lv in levels)
    assert any(0 < lv.available < lv.reorder_point for lv in levels)
    # every unit on hand arrived through the ledger
    for lv in levels:
        rows = await StockMovement.filter(warehouse_id=lv.warehouse_id, variant_id=lv.variant_id).annotate(
            total=Sum("quantity")
        ).values("total")
        assert (rows[0]["total"] or 0) == lv.on_hand
    assert await StockMovement.exclude(kind__in=[MovementKind.RECEIPT, MovementKind.POLICY]).count() == 0
    assert await Order.all().count() == 0


async def test_credentials_work_and_only_hashes_are_stored(db, tmp_path):
    path = tmp_path / "var" / "demo-credentials.txt"
    result = await seed.seed_demo(path, with_orders=False)

    staff = await viewer_for_key(result.staff_key)
    assert staff.kind is ViewerKind.STAFF and staff.scopes == frozenset(ALL_SCOPES)
    partner = await viewer_for_key(result.partner_key)
    mkt = await SalesChannel.get(code="MKT")
    assert partner.kind is ViewerKind.PARTNER and partner.channel_ids == frozenset({mkt.id})
    customer = viewer_for_token(result.customer_token)
    assert customer.kind is ViewerKind.CUSTOMER and customer.email == seed.DEMO_CUSTOMER
    stored = await ApiKey.all().values_list("key_hash", flat=True)
    assert result.staff_key not in stored and result.partner_key not in stored

    text = path.read_text()
    assert f"STAFF_API_KEY={result.staff_key}\n" in text
    assert f"PARTNER_API_KEY={result.partner_key}\n" in text
    assert f"CUSTOMER_TOKEN={result.customer_token}\n" in text
    assert f"GRAPHIQL_URL={seed.GRAPHIQL_URL}\n" in text
    assert path.stat().st_mode & 0o777 == 0o600
    summary = seed.format_summary(result, path)
    assert result.staff_key in summary and str(path) in summary


async def test_orders_go_through_the_workflow(db):
    result = await seed.seed_demo()

    assert not result.orders_skipped
    orders = await Order.all()
    assert len(orders) == len(seed.DEMO_ORDERS) == sum(result.orders.values())
    statuses = {o.status for o in orders}
    assert {OrderStatus.ALLOCATED, OrderStatus.CANCELLED, OrderStatus.BACKORDERED, OrderStatus.SHIPPED,
            OrderStatus.DELIVERED} <= statuses
    shipped = [o for o in seed.DEMO_ORDERS if o.then in ("ship", "deliver")]
    assert await Order.filter(status__in=[OrderStatus.SHIPPED, OrderStatus.DELIVERED]).count() == len(shipped)
    assert await Order.filter(status=OrderStatus.DELIVERED).count() == sum(o.then == "deliver" for o in shipped)
    assert OrderStatus.PARTIALLY_ALLOCATED in statuses
    assert sum(o.customer_email == seed.DEMO_CUSTOMER for o in orders) >= 5
    assert await Order.filter(channel__code="MKT").exclude(external_id=None).count() == sum(
        o.channel == "MKT" for o in seed.DEMO_ORDERS
    )
    holds = await OrderHold.filter(released_at=None).values_list("reason", flat=True)
    assert sorted(holds) == sorted(
        [HoldReason.PAYMENT] * sum(o.token == "tok_decline" for o in seed.DEMO_ORDERS)
        + [o.hold for o in seed.DEMO_ORDERS if o.hold]
    )
    assert result.on_hold == len(holds)
    # each order has its audit timeline
    placed = await Event.filter(type="ORDER_PLACED").values_list("order_id", flat=True)
    assert sorted(placed) == sorted(o.id for o in orders)
    # stock was committed by allocation, never beyond what is on hand
    levels = await InventoryLevel.all()
    assert sum(lv.allocated for lv in levels) > 0
    assert all(lv.allocated + lv.reserved <= lv.on_hand for lv in levels)
