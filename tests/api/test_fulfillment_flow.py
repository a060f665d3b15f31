"""Issue 4 end to end over HTTP and WebSocket: place → allocate across two warehouses → two pick
lists (batch and wave) → scans (a mispick and an overpick refused) → pack → rate shop → labels
→ ship → signed carrier webhooks → delivered; with the stock ledger, the payment captures and
the order timeline checked at each step, and the same story streamed live to staff
(`orderEvents`) and to the guest (`orderTracking`)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ordergraph.integrations.carriers import TrackingStatus as CarrierStatus
from ordergraph.integrations.carriers import validate_tracking_number
from ordergraph.integrations.carriers.registry import local_carrier, reset_local_carriers
from ordergraph.integrations.webhooks import carrier_webhook_headers
from ordergraph.models import InventoryLevel, Payment, StockMovement
from ordergraph.models.enums import CaptureMode
from tests import factories as f
from tests.orders_helpers import PLACE, order_input
from tests.ws import WSClient


@pytest.fixture(autouse=True)
def _carriers():
    reset_local_carriers()
    yield
    reset_local_carriers()


FO_FIELDS = """id number status warehouseCode availableActions pickListNumber
  lines { sku quantity pickedQuantity packedQuantity shippedQuantity shortQuantity }
  packages { number weightGrams items { sku quantity } shipment { trackingNumber status } }"""
ORDER = """query($n: String!) { order(number: $n) { status
  fulfillmentOrders { %s }
  shipments { trackingNumber carrier status estimatedDelivery timeline { status location } }
  payments { status captured { amount } authorized { amount } }
  timeline { type data } } }""" % FO_FIELDS
ERR = "... on Error { __typename code message field }"
PICK_LIST = """mutation($w: String!) { createPickList(warehouse: $w) { __typename
  ... on PickListPayload { pickList { id number kind status stops { binLocation sku quantity remaining orders } } } %s } }""" % ERR
WAVE = """mutation($w: String!, $cutoff: DateTime!) { releaseWave(warehouse: $w, cutoff: $cutoff) { __typename
  ... on PickListPayload { pickList { id number kind status criteria stops { binLocation sku quantity } } } %s } }""" % ERR
PICK = """mutation($pl: ID!, $scan: String!, $q: Int!) { confirmPick(pickListId: $pl, scan: $scan, quantity: $q) {
  __typename ... on PickPayload { pickList { status } fulfillmentOrders { number status } orders { status } }
  ... on PickError { code sku remaining expected } %s } }""" % ERR
PACK = """mutation($id: ID!, $packages: [PackageInput!]!) { packFulfillmentOrder(id: $id, packages: $packages) {
  __typename ... on FulfillmentOrderPayload { fulfillmentOrder { %s } } %s } }""" % (FO_FIELDS, ERR)
RATES = """query($id: ID!) { shippingRates(fulfillmentOrderId: $id) {
  quotes { carrier service serviceLevel amount { amount currency } transitDays meetsServiceLevel recommended }
  unavailable { carrier code } } }"""
LABEL = """mutation($p: String!, $c: String, $s: String) { buyShippingLabel(packageNumber: $p, carrier: $c, service: $s) {
  __typename ... on ShipmentPayload { shipment { id trackingNumber carrier service status labelUrl trackingUrl
  labelCost { amount } } } %s } }""" % ERR
SHIP = """mutation($id: ID!) { shipPackage(shipmentId: $id) { __typename
  ... on ShipmentPayload { shipment { status shippedAt } order { status } } %s } }""" % ERR
TRACKING_SUB = """subscription($n: String!, $e: String!) { orderTracking(number: $n, email: $e) {
  status shipments { trackingNumber status } } }"""
EVENTS_SUB = "subscription($id: ID!) { orderEvents(orderId: $id, after: \"0\") { sequence aggregateType type } }"
TRACK = """query($n: String!, $e: String!) { trackOrder(number: $n, email: $e) { status
  shipments { carrier trackingNumber status estimatedDelivery trackingUrl timeline { status location } } } }"""


async def _world():
    east = await f.warehouse("EAST", priority=1)
    west = await f.warehouse("WEST", priority=2)
    await f.channel("WEB", [east, west], capture=CaptureMode.ON_SHIPMENT)
    a = await f.variant("SKU-A", price="10.00", barcode="0001", weight_grams=400)
    b = await f.variant("SKU-B", price="25.00", barcode="0002", weight_grams=900)
    await f.stock(east, a, 5)
    await f.stock(west, b, 5)
    await InventoryLevel.filter(warehouse_id=east.id).update(bin_location="E-01-1")
    await InventoryLevel.filter(warehouse_id=west.id).update(bin_location="W-07-2")
    return await f.staff_key()


async def _levels():
    rows = await InventoryLevel.all().prefetch_related("warehouse", "variant")
    return {(r.warehouse.code, r.variant.sku): (r.on_hand, r.allocated) for r in rows}


async def _webhook(server: str, carrier: str, tracking: str, status: CarrierStatus, when: datetime, event_id: str) -> dict:
    body = local_carrier(carrier).webhook_event(tracking, status, location="Springfield, IL", occurred_at=when,
                                                event_id=event_id)
    headers = carrier_webhook_headers(carrier, body, timestamp=int(time.time()))
    async with httpx.AsyncClient(base_url=server) as http:
        resp = await http.post(f"/webhooks/carriers/{carrier}", content=body, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_full_fulfillment_flow_over_the_api(server, gql, db):
    staff = await _world()
    placed = (await gql(PLACE, {"input": order_input([("SKU-A", 2), ("SKU-B", 1)])}, auth=staff))["placeOrder"]["order"]
    number, order_gid = placed["number"], placed["id"]
    assert placed["status"] == "ALLOCATED"

    staff_ws = await WSClient.connect(server, staff)
    guest_ws = await WSClient.connect(server)
    await staff_ws.subscribe(EVENTS_SUB, {"id": order_gid})
    await guest_ws.subscribe(TRACKING_SUB, {"n": number, "e": "ada@example.com"})

    view = (await gql(ORDER, {"n": number}, auth=staff))["order"]
    fo_e, fo_w = view["fulfillmentOrders"]
    assert [(x["number"], x["warehouseCode"], x["status"]) for x in (fo_e, fo_w)] == [
        (f"{number}-F1", "EAST", "OPEN"), (f"{number}-F2", "WEST", "OPEN")]
    assert fo_e["lines"] == [{"sku": "SKU-A", "quantity": 2, "pickedQuantity": 0, "packedQuantity": 0,
                              "shippedQuantity": 0, "shortQuantity": 0}]
    assert await _levels() == {("EAST", "SKU-A"): (5, 2), ("WEST", "SKU-B"): (5, 1)}

    # two pick lists: a batch at EAST, a wave at WEST
    pl_e = (await gql(PICK_LIST, {"w": "EAST"}, auth=staff))["createPickList"]["pickList"]
    assert (pl_e["kind"], pl_e["status"], pl_e["stops"]) == (
        "BATCH", "OPEN", [{"binLocation": "E-01-1", "sku": "SKU-A", "quantity": 2, "remaining": 2, "orders": 1}])
    cutoff = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    pl_w = (await gql(WAVE, {"w": "WEST", "cutoff": cutoff}, auth=staff))["releaseWave"]["pickList"]
    assert pl_w["kind"] == "WAVE" and pl_w["stops"] == [{"binLocation": "W-07-2", "sku": "SKU-B", "quantity": 1}]
    nothing = (await gql(PICK_LIST, {"w": "EAST"}, auth=staff))["createPickList"]
    assert (nothing["__typename"], nothing["code"]) == ("OperationError", "NOTHING_TO_PICK")

    # scans: a wrong item and too many units are refused and change nothing
    wrong = (await gql(PICK, {"pl": pl_e["id"], "scan": "0002", "q": 1}, auth=staff))["confirmPick"]
    assert (wrong["__typename"], wrong["code"], wrong["expected"]) == ("PickError", "MISPICK", ["SKU-A"])
    over = (await gql(PICK, {"pl": pl_e["id"], "scan": "SKU-A", "q": 3}, auth=staff))["confirmPick"]
    assert (over["code"], over["sku"], over["remaining"]) == ("OVERPICK", "SKU-A", 2)
    one = (await gql(PICK, {"pl": pl_e["id"], "scan": "0001", "q": 1}, auth=staff))["confirmPick"]
    assert one["fulfillmentOrders"] == [{"number": fo_e["number"], "status": "PICKING"},
                                        {"number": fo_w["number"], "status": "PICKING"}]
    assert one["orders"] == [{"status": "IN_FULFILLMENT"}]
    two = (await gql(PICK, {"pl": pl_e["id"], "scan": "0001", "q": 1}, auth=staff))["confirmPick"]
    assert two["pickList"]["status"] == "COMPLETED" and two["fulfillmentOrders"][0]["status"] == "PICKED"
    await gql(PICK, {"pl": pl_w["id"], "scan": "SKU-B", "q": 1}, auth=staff)

    # packing
    box = {"weightGrams": 850, "lengthCm": "30", "widthCm": "20", "heightCm": "10"}
    packed_e = (await gql(PACK, {"id": fo_e["id"], "packages": [{**box, "items": [{"sku": "SKU-A", "quantity": 2}]}]},
                          auth=staff))["packFulfillmentOrder"]["fulfillmentOrder"]
    assert packed_e["status"] == "PACKED" and packed_e["packages"][0]["items"] == [{"sku": "SKU-A", "quantity": 2}]
    packed_w = (await gql(PACK, {"id": fo_w["id"], "packages": [{**box, "items": [{"sku": "0002", "quantity": 1}]}]},
                          auth=staff))["packFulfillmentOrder"]["fulfillmentOrder"]

    # rate shop, labels
    rates = (await gql(RATES, {"id": fo_e["id"]}, auth=staff))["shippingRates"]
    assert {q["carrier"] for q in rates["quotes"]} == {"econopost", "swiftship"} and rates["unavailable"] == []
    [best] = [q for q in rates["quotes"] if q["recommended"]]
    fitting = [float(q["amount"]["amount"]) for q in rates["quotes"] if q["meetsServiceLevel"]]
    assert best["meetsServiceLevel"] and float(best["amount"]["amount"]) == min(fitting)
    label_e = (await gql(LABEL, {"p": packed_e["packages"][0]["number"]}, auth=staff))["buyShippingLabel"]["shipment"]
    assert (label_e["carrier"], label_e["service"], label_e["status"]) == (best["carrier"], best["service"], "LABEL_CREATED")
    assert validate_tracking_number(label_e["carrier"], label_e["trackingNumber"])
    label_w = (await gql(LABEL, {"p": packed_w["packages"][0]["number"], "c": "swiftship", "s": "STANDARD"},
                         auth=staff))["buyShippingLabel"]["shipment"]
    assert label_w["carrier"] == "swiftship"
    again = (await gql(LABEL, {"p": packed_w["packages"][0]["number"]}, auth=staff))["buyShippingLabel"]
    assert (again["__typename"], again["code"]) == ("OperationError", "ALREADY_EXISTS")
    async with httpx.AsyncClient(base_url=server) as http:
        pdf = await http.get(label_e["labelUrl"], headers={"Authorization": f"Bearer {staff}"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    # shipping: stock leaves, the shipped share is captured
    r = (await gql(SHIP, {"id": label_e["id"]}, auth=staff))["shipPackage"]
    assert (r["shipment"]["status"], r["order"]["status"]) == ("SHIPPED", "PARTIALLY_SHIPPED")
    assert await _levels() == {("EAST", "SKU-A"): (3, 0), ("WEST", "SKU-B"): (5, 1)}
    payment = await Payment.get(order__number=number)
    assert (payment.status, str(payment.captured_amount)) == ("PARTIALLY_CAPTURED", "20.00")
    twice = (await gql(SHIP, {"id": label_e["id"]}, auth=staff))["shipPackage"]
    assert (twice["__typename"], twice["code"]) == ("OperationError", "INVALID_TRANSITION")
    r = (await gql(SHIP, {"id": label_w["id"]}, auth=staff))["shipPackage"]
    assert r["order"]["status"] == "SHIPPED"
    payment = await Payment.get(order__number=number)
    assert payment.status == "CAPTURED" and payment.captured_amount == payment.authorized_amount
    ledger = await StockMovement.filter(reference__startswith=number).order_by("id").values_list("kind", "quantity")
    assert [(str(k), q) for k, q in ledger] == [("ALLOCATION", 2), ("ALLOCATION", 1), ("SHIPMENT", -2), ("SHIPMENT", -1)]

    # the carriers report back through signed webhooks
    t0 = datetime.now(UTC)
    for i, (label, status) in enumerate([(label_e, CarrierStatus.IN_TRANSIT), (label_w, CarrierStatus.IN_TRANSIT),
                                         (label_e, CarrierStatus.DELIVERED), (label_w, CarrierStatus.OUT_FOR_DELIVERY)]):
        got = await _webhook(server, label["carrier"], label["trackingNumber"], status, t0 + timedelta(minutes=i), f"e{i}")
        assert got == {"received": 1, "applied": 1, "duplicates": 0}
    assert (await gql(ORDER, {"n": number}, auth=staff))["order"]["status"] == "SHIPPED"
    await _webhook(server, "swiftship", label_w["trackingNumber"], CarrierStatus.DELIVERED, t0 + timedelta(hours=1), "e9")
    view = (await gql(ORDER, {"n": number}, auth=staff))["order"]
    assert view["status"] == "DELIVERED"
    assert [s["status"] for s in view["shipments"]] == ["DELIVERED", "DELIVERED"]
    assert [t["status"] for t in view["shipments"][0]["timeline"]] == ["LABEL_CREATED", "IN_TRANSIT", "DELIVERED"]
    assert [e["type"] for e in view["timeline"]] == [
        "ORDER_PLACED", "PAYMENT_AUTHORIZED", "ORDER_CONFIRMED", "ORDER_ALLOCATED",
        "FULFILLMENT_ORDER_CREATED", "FULFILLMENT_ORDER_CREATED",
        "PICKING_STARTED", "ORDER_STATUS_CHANGED", "PICKING_STARTED",
        "FULFILLMENT_PICKED", "FULFILLMENT_PICKED",
        "PACKAGE_PACKED", "FULFILLMENT_PACKED", "PACKAGE_PACKED", "FULFILLMENT_PACKED",
        "LABEL_CREATED", "LABEL_CREATED",
        "SHIPMENT_SHIPPED", "FULFILLMENT_SHIPPED", "ORDER_STATUS_CHANGED", "PAYMENT_CAPTURED",
        "SHIPMENT_SHIPPED", "FULFILLMENT_SHIPPED", "ORDER_STATUS_CHANGED", "PAYMENT_CAPTURED",
        "TRACKING_UPDATED", "TRACKING_UPDATED", "TRACKING_UPDATED", "TRACKING_UPDATED", "TRACKING_UPDATED",
        "ORDER_DELIVERED",
    ]

    # the guest sees carrier, tracking number, status, ETA and timeline; never costs
    tracked = (await gql(TRACK, {"n": number, "e": "ada@example.com"}))["trackOrder"]
    assert tracked["status"] == "DELIVERED"
    assert [(s["carrier"], s["status"]) for s in tracked["shipments"]] == [(label_e["carrier"], "DELIVERED"),
                                                                           ("swiftship", "DELIVERED")]
    assert all(s["trackingUrl"] and s["estimatedDelivery"] for s in tracked["shipments"])

    # the same story arrived live: every event of the order in order, and the guest's view
    events = [m["orderEvents"] for m in await staff_ws.take(len(view["timeline"]), timeout=15)]
    assert [e["type"] for e in events] == [e["type"] for e in view["timeline"]]
    updates = []
    while not updates or updates[-1]["status"] != "DELIVERED":
        updates.append((await guest_ws.next_data(timeout=15))["orderTracking"])
    assert updates[-1]["shipments"] == [{"trackingNumber": label_e["trackingNumber"], "status": "DELIVERED"},
                                        {"trackingNumber": label_w["trackingNumber"], "status": "DELIVERED"}]
    await asyncio.gather(staff_ws.close(), guest_ws.close())


async def test_fulfillment_access(server, gql, db):
    staff = await _world()
    far = await f.warehouse("FAR", priority=9)
    other = await f.channel("MKT", [far])
    placed = (await gql(PLACE, {"input": order_input([("SKU-A", 1)])}, auth=staff))["placeOrder"]["order"]
    fo = (await gql(ORDER, {"n": placed["number"]}, auth=staff))["order"]["fulfillmentOrders"][0]
    from ordergraph.models import SalesChannel  # noqa: PLC0415

    web = await SalesChannel.get(code="WEB")
    plain_partner = await f.partner_key("MARKET", [web])  # no fulfillment:write
    tpl = await f.partner_key("3PL", [web], ["orders:read", "fulfillment:write"])
    stranger = await f.partner_key("OTHER", [other], ["orders:read", "fulfillment:write"])
    box = {"weightGrams": 500, "lengthCm": "10", "widthCm": "10", "heightCm": "10", "items": [{"sku": "SKU-A", "quantity": 1}]}
    r = (await gql(PACK, {"id": fo["id"], "packages": [box]}, auth=plain_partner))["packFulfillmentOrder"]
    assert (r["__typename"], r["code"]) == ("NotAuthorizedError", "FORBIDDEN")
    r = (await gql(PACK, {"id": fo["id"], "packages": [box]}, auth=stranger))["packFulfillmentOrder"]
    assert (r["__typename"], r["code"]) == ("NotFoundError", "NOT_FOUND")
    r = (await gql(PICK_LIST, {"w": "EAST"}, auth=tpl))["createPickList"]
    assert (r["__typename"], r["code"]) == ("NotAuthorizedError", "FORBIDDEN")
    assert (await gql(RATES, {"id": fo["id"]}, auth=stranger))["shippingRates"] is None
    # nothing moved
    assert (await gql(ORDER, {"n": placed["number"]}, auth=staff))["order"]["fulfillmentOrders"][0]["status"] == "OPEN"
