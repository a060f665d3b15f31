"""Fulfillment workflows (no GraphQL): fulfillment orders per warehouse, batch and wave pick
lists, scans (mispick, overpick), short picks with re-allocation, packing, labels, shipping,
tracking and delivery, with the stock ledger and the order's status at each step."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ordergraph.db import transaction
from ordergraph.integrations.carriers import TrackingUpdate
from ordergraph.integrations.carriers.registry import reset_local_carriers
from ordergraph.models import (
    Allocation,
    Event,
    FulfillmentLine,
    FulfillmentOrder,
    InventoryLevel,
    Notification,
    Order,
    OrderLine,
    Payment,
    PickList,
    Shipment,
    StockMovement,
)
from ordergraph.models.enums import (
    AllocationStatus,
    CaptureMode,
    FulfillmentStatus,
    OrderStatus,
    PaymentStatus,
    PickListKind,
    PickListStatus,
    ShipmentStatus,
    TrackingSource,
    TrackingStatus,
)
from ordergraph.workflows import fulfillment, shipping
from ordergraph.workflows.commands import Address, LineCommand, PaymentCommand, PlaceOrderCommand
from ordergraph.workflows.errors import DomainError, ErrorCode, ValidationFailed
from ordergraph.workflows.fulfillment import PackageSpec
from ordergraph.workflows.orders import place_order
from tests import factories as f

NYC = Address(name="Ada Lovelace", line1="1 Main St", city="New York", postal_code="10001", country="US",
              latitude=40.7, longitude=-74.0)


@pytest.fixture(autouse=True)
def _carriers():
    reset_local_carriers()
    yield
    reset_local_carriers()


async def _world(capture=CaptureMode.ON_SHIPMENT):
    east = await f.warehouse("EAST", priority=1)
    west = await f.warehouse("WEST", priority=2)
    await f.channel("WEB", [east, west], capture=capture)
    a = await f.variant("SKU-A", price="10.00", barcode="0001", weight_grams=400)
    b = await f.variant("SKU-B", price="25.00", barcode="0002", weight_grams=900)
    await f.stock(east, a, 5)
    await f.stock(west, b, 5)
    await f.stock(west, a, 5)
    await InventoryLevel.filter(warehouse_id=east.id).update(bin_location="E-01-1")
    await InventoryLevel.filter(warehouse_id=west.id, variant_id=b.id).update(bin_location="W-07-2")
    await InventoryLevel.filter(warehouse_id=west.id, variant_id=a.id).update(bin_location="W-02-1")
    return east, west, a, b


async def _order(lines, email="ada@example.com") -> Order:
    order = await place_order(
        PlaceOrderCommand("WEB", email, [LineCommand(s, q) for s, q in lines], NYC, payment=PaymentCommand()), "test",
    )
    async with transaction():  # until allocation makes them itself
        locked = await Order.select_for_update().get(id=order.id)
        await fulfillment.create_fulfillment_orders(locked, "test")
    return await Order.get(id=order.id)


async def _levels():
    rows = await InventoryLevel.all().prefetch_related("warehouse", "variant")
    return {(r.warehouse.code, r.variant.sku): (r.on_hand, r.allocated) for r in rows}


async def _fos(order) -> list[FulfillmentOrder]:
    return await FulfillmentOrder.filter(order_id=order.id).order_by("id").prefetch_related("warehouse")


async def test_allocation_across_two_warehouses_makes_one_fulfillment_order_each(db):
    east, west, a, b = await _world()
    order = await _order([("SKU-A", 2), ("SKU-B", 1)])
    fos = await _fos(order)
    assert [(fo.number, fo.warehouse.code, fo.status) for fo in fos] == [
        (f"{order.number}-F1", "EAST", FulfillmentStatus.OPEN), (f"{order.number}-F2", "WEST", FulfillmentStatus.OPEN),
    ]
    lines = {fo.warehouse.code: [(fl.sku, fl.quantity) for fl in await FulfillmentLine.filter(fulfillment_order_id=fo.id)]
             for fo in fos}
    assert lines == {"EAST": [("SKU-A", 2)], "WEST": [("SKU-B", 1)]}
    assert not await Allocation.filter(order_id=order.id, fulfillment_order_id__isnull=True).exists()
    # a second call finds nothing new
    async with transaction():
        assert await fulfillment.create_fulfillment_orders(await Order.get(id=order.id), "test") == []
    types = await Event.filter(order_id=order.id).order_by("id").values_list("type", flat=True)
    assert types[-2:] == ["FULFILLMENT_ORDER_CREATED", "FULFILLMENT_ORDER_CREATED"]


async def test_full_flow_pick_pack_label_ship_track_deliver(db):
    east, west, a, b = await _world()
    order = await _order([("SKU-A", 2), ("SKU-B", 1)])
    fo_east, fo_west = await _fos(order)
    assert await _levels() == {("EAST", "SKU-A"): (5, 2), ("WEST", "SKU-B"): (5, 1), ("WEST", "SKU-A"): (5, 0)}

    pl_east = await fulfillment.create_batch_pick_list(east.id, "picker")
    pl_west = await fulfillment.release_wave(west.id, "picker", cutoff=datetime.now(UTC) + timedelta(minutes=1))
    assert (pl_east.kind, pl_west.kind) == (PickListKind.BATCH, PickListKind.WAVE)
    assert (await Order.get(id=order.id)).status is OrderStatus.IN_FULFILLMENT

    # a wrong item and too many units change nothing
    with pytest.raises(DomainError) as exc:
        await fulfillment.confirm_pick(pl_east.id, "SKU-B", 1, "picker")
    assert exc.value.code is ErrorCode.MISPICK
    with pytest.raises(DomainError) as exc:
        await fulfillment.confirm_pick(pl_east.id, "0001", 3, "picker")
    assert exc.value.code is ErrorCode.OVERPICK and exc.value.details["remaining"] == 2
    assert (await FulfillmentLine.get(fulfillment_order_id=fo_east.id)).picked_quantity == 0

    r = await fulfillment.confirm_pick(pl_east.id, "0001", 2, "picker")  # by barcode
    assert [fo.id for fo in r.completed] == [fo_east.id]
    await fulfillment.confirm_pick(pl_west.id, "SKU-B", 1, "picker")
    assert (await PickList.get(id=pl_east.id)).status is PickListStatus.COMPLETED

    [pkg_e] = await fulfillment.pack(fo_east.id, [PackageSpec(850, Decimal(30), Decimal(20), Decimal(10), [("SKU-A", 2)])], "packer")
    [pkg_w] = await fulfillment.pack(fo_west.id, [PackageSpec(950, Decimal(30), Decimal(20), Decimal(10), [("0002", 1)])], "packer")
    assert (await FulfillmentOrder.get(id=fo_east.id)).status is FulfillmentStatus.PACKED

    rates = await shipping.shipping_rates(fo_east.id)
    assert {q.quote.carrier for q in rates.quotes} == {"econopost", "swiftship"}
    assert sum(q.recommended for q in rates.quotes) == 1
    best = next(q for q in rates.quotes if q.recommended)
    assert best.meets_service_level
    assert best.quote.amount == min(q.quote.amount for q in rates.quotes if q.meets_service_level)

    s_e = await shipping.buy_label(pkg_e.id, "packer")
    s_w = await shipping.buy_label(pkg_w.id, "packer", carrier="swiftship", service=next(
        q.quote.service for q in (await shipping.shipping_rates(fo_west.id)).quotes if q.quote.carrier == "swiftship"))
    assert s_e.label_document.startswith(b"%PDF") and s_e.status is ShipmentStatus.LABEL_CREATED

    await shipping.ship(s_e.id, "packer")
    assert (await Order.get(id=order.id)).status is OrderStatus.PARTIALLY_SHIPPED
    assert await _levels() == {("EAST", "SKU-A"): (3, 0), ("WEST", "SKU-B"): (5, 1), ("WEST", "SKU-A"): (5, 0)}
    payment = await Payment.get(order_id=order.id)
    assert payment.status is PaymentStatus.PARTIALLY_CAPTURED and payment.captured_amount == Decimal("20.00")

    await shipping.ship(s_w.id, "packer")
    order = await Order.get(id=order.id)
    assert order.status is OrderStatus.SHIPPED
    payment = await Payment.get(order_id=order.id)
    assert payment.status is PaymentStatus.CAPTURED and payment.captured_amount == payment.authorized_amount
    moves = await StockMovement.filter(order_id=order.id, kind="SHIPMENT").order_by("id").values_list("quantity", flat=True)
    assert moves == [-2, -1]
    assert [ln.shipped_quantity for ln in await OrderLine.filter(order_id=order.id).order_by("position")] == [2, 1]
    assert set(await Allocation.filter(order_id=order.id).values_list("status", flat=True)) == {AllocationStatus.SHIPPED}

    when = datetime.now(UTC)
    for i, (s, st) in enumerate([(s_e, TrackingStatus.IN_TRANSIT), (s_e, TrackingStatus.DELIVERED),
                                 (s_w, TrackingStatus.OUT_FOR_DELIVERY)]):
        u = TrackingUpdate(carrier_event_id=f"ev-{i}", tracking_number=s.tracking_number, status=st,
                           occurred_at=when + timedelta(minutes=i), location="NYC", description=None, estimated_delivery=None)
        await shipping.record_tracking(s.carrier, [u], TrackingSource.API, "carrier")
    assert (await Order.get(id=order.id)).status is OrderStatus.SHIPPED
    out = await shipping.record_tracking_event(s_w.tracking_number, TrackingStatus.DELIVERED, when + timedelta(hours=1), "3pl")
    assert out.applied and (await Shipment.get(id=s_w.id)).status is ShipmentStatus.DELIVERED
    assert (await Order.get(id=order.id)).status is OrderStatus.DELIVERED
    # the same scan again changes nothing
    again = await shipping.record_tracking_event(s_w.tracking_number, TrackingStatus.DELIVERED, when + timedelta(hours=1), "3pl")
    assert not again.applied
    notes = await Notification.filter(order_id=order.id).order_by("id").values_list("template", flat=True)
    assert notes == ["ORDER_SHIPPED", "ORDER_SHIPPED", "DELIVERED", "OUT_FOR_DELIVERY", "DELIVERED"]
    types = [e.type for e in await Event.filter(order_id=order.id).order_by("id")]
    assert types.count("ORDER_DELIVERED") == 1 and types.count("TRACKING_UPDATED") == 4


async def test_short_pick_reallocates_from_the_other_warehouse(db):
    east, west, a, b = await _world()
    order = await _order([("SKU-A", 3)])
    [fo] = await _fos(order)
    pl = await fulfillment.create_batch_pick_list(east.id, "picker")
    await fulfillment.confirm_pick(pl.id, "SKU-A", 1, "picker")
    r = await fulfillment.report_short_pick(pl.id, "SKU-A", 2, "picker", reason="bin empty")
    assert r.reallocated == [{"sku": "SKU-A", "warehouse": "WEST", "quantity": 2}] and r.backordered == []
    # EAST lost the 2 units it did not have; WEST holds them for the order now
    assert await _levels() == {("EAST", "SKU-A"): (3, 1), ("WEST", "SKU-B"): (5, 0), ("WEST", "SKU-A"): (5, 2)}
    fos = await _fos(order)
    assert [(x.warehouse.code, x.status) for x in fos] == [("EAST", FulfillmentStatus.PICKED), ("WEST", FulfillmentStatus.OPEN)]
    line = await OrderLine.get(order_id=order.id)
    assert (line.allocated_quantity, line.backordered_quantity) == (3, 0)
    assert (await PickList.get(id=pl.id)).status is PickListStatus.COMPLETED
    adj = await StockMovement.filter(order_id=order.id, kind="ADJUSTMENT").values_list("quantity", flat=True)
    assert adj == [-2]
    assert (await Order.get(id=order.id)).status is OrderStatus.IN_FULFILLMENT


async def test_short_pick_with_no_stock_elsewhere_backorders(db):
    east, west, a, b = await _world()
    await InventoryLevel.filter(warehouse_id=west.id, variant_id=a.id).update(on_hand=0)
    order = await _order([("SKU-A", 2)])
    pl = await fulfillment.create_batch_pick_list(east.id, "picker")
    r = await fulfillment.report_short_pick(pl.id, "SKU-A", 2, "picker")
    assert r.reallocated == [] and r.backordered == [{"sku": "SKU-A", "quantity": 2}]
    [fo] = await _fos(order)
    assert fo.status is FulfillmentStatus.CANCELLED
    line = await OrderLine.get(order_id=order.id)
    assert (line.allocated_quantity, line.backordered_quantity) == (0, 2)
    assert (await Order.get(id=order.id)).status is OrderStatus.BACKORDERED
    types = await Event.filter(order_id=order.id).order_by("id").values_list("type", flat=True)
    assert "SHORT_PICKED" in types and "ORDER_REALLOCATED" in types


async def test_packing_reports_every_problem_and_writes_nothing(db):
    east, west, a, b = await _world()
    order = await _order([("SKU-A", 2)])
    [fo] = await _fos(order)
    pl = await fulfillment.create_batch_pick_list(east.id, "picker")
    await fulfillment.confirm_pick(pl.id, "SKU-A", 2, "picker")
    with pytest.raises(ValidationFailed) as exc:
        await fulfillment.pack(fo.id, [PackageSpec(0, Decimal(1), Decimal(1), Decimal(1), [("SKU-A", 3), ("SKU-Z", 1)])], "p")
    assert [(p.code, p.field) for p in exc.value.problems] == [
        (ErrorCode.INVALID_VALUE, ["packages", "0", "weightGrams"]),
        (ErrorCode.OVERPACK, ["packages", "0", "items", "0", "quantity"]),
        (ErrorCode.ITEM_NOT_IN_FULFILLMENT, ["packages", "0", "items", "1", "sku"]),
    ]
    assert (await FulfillmentLine.get(fulfillment_order_id=fo.id)).packed_quantity == 0
    assert (await FulfillmentOrder.get(id=fo.id)).status is FulfillmentStatus.PICKED


async def test_unknown_tracking_numbers_are_refused_without_side_effects(db):
    await _world()
    u = TrackingUpdate(carrier_event_id="x", tracking_number="NOPE", status=TrackingStatus.IN_TRANSIT,
                       occurred_at=datetime.now(UTC), location=None, description=None, estimated_delivery=None)
    before = await Event.all().count()
    with pytest.raises(DomainError) as exc:
        await shipping.record_tracking("econopost", [u], TrackingSource.WEBHOOK, "carrier")
    assert exc.value.code is ErrorCode.UNKNOWN_TRACKING_NUMBER
    assert await Event.all().count() == before
