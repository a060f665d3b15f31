"""Carrier webhooks and printable documents over real HTTP (the `server` fixture, httpx).

A shipped order with one package per local carrier (econopost from EAST, swiftship from WEST)
receives signed tracking events the way each carrier would POST them; every refusal answers
with its exact status and code and leaves the database as it was (tracking events, events,
notifications, shipments and the order compared before and after).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest
from pypdf import PdfReader

from ordergraph.app import create_app
from ordergraph.config import get_settings
from ordergraph.db import transaction
from ordergraph.integrations.carriers.registry import local_carrier, reset_local_carriers
from ordergraph.integrations.carriers.tracking import s10_number, swiftship_number
from ordergraph.integrations.payments import reset_local_gateway
from ordergraph.integrations.webhooks import SIGNATURE_HEADER, carrier_webhook_headers, sign
from ordergraph.models import (
    Event,
    FulfillmentOrder,
    InventoryLevel,
    Notification,
    Order,
    Shipment,
    TrackingEvent,
)
from ordergraph.models.enums import OrderStatus, ShipmentStatus, TrackingStatus
from ordergraph.workflows import fulfillment, shipping
from ordergraph.workflows.commands import Address, LineCommand, PaymentCommand, PlaceOrderCommand
from ordergraph.workflows.fulfillment import PackageSpec
from ordergraph.workflows.orders import place_order
from tests import factories as f
from tests.servers import serve

NYC = Address(name="Ada Lovelace", line1="1 Main St", city="New York", postal_code="10001", country="US",
              latitude=40.7, longitude=-74.0)
PARIS = timezone(timedelta(hours=1))  # econopost writes the office's own offset


# --- helpers (also used by tests/integration/test_notification_delivery.py) ---------------------


@pytest.fixture(autouse=True)
def _carriers() -> Iterator[None]:
    """Process-wide local carriers and payment gateway start empty (ids restart every test)."""
    reset_local_carriers()
    reset_local_gateway()
    yield
    reset_local_carriers()
    reset_local_gateway()


@pytest.fixture(autouse=True, scope="module")
def _outbox_dir() -> Iterator[str]:
    """Messages the server sends after a commit land in a temporary outbox, not ./var/outbox."""
    with tempfile.TemporaryDirectory(prefix="og-outbox-") as d:
        before = os.environ.get("OUTBOX_DIR")
        os.environ["OUTBOX_DIR"] = d
        get_settings.cache_clear()
        try:
            yield d
        finally:
            if before is None:
                os.environ.pop("OUTBOX_DIR", None)
            else:
                os.environ["OUTBOX_DIR"] = before
            get_settings.cache_clear()


@dataclass
class World:
    order: Order
    econopost: Shipment  # EAST's package, SKU-A x2
    swiftship: Shipment  # WEST's package, SKU-B x1
    fos: list[FulfillmentOrder]
    t0: datetime  # after the labels and the hand-over: carrier scans come later (whole seconds)


async def _pack_one(fo: FulfillmentOrder, warehouse_id: int, sku: str, qty: int, grams: int):
    pl = await fulfillment.create_batch_pick_list(warehouse_id, "picker")
    await fulfillment.confirm_pick(pl.id, sku, qty, "picker")
    [pkg] = await fulfillment.pack(fo.id, [PackageSpec(grams, Decimal(30), Decimal(20), Decimal(10), [(sku, qty)])], "packer")
    return pkg


async def _label(pkg, fo: FulfillmentOrder, carrier: str) -> Shipment:
    rates = await shipping.shipping_rates(fo.id)
    service = next(q.quote.service for q in rates.quotes if q.quote.carrier == carrier)
    return await shipping.buy_label(pkg.id, "packer", carrier=carrier, service=service)


async def shipped_world(email: str = "ada@example.com", *, ship: bool = True, eta: bool = True) -> World:
    """Two warehouses, channel WEB; one order of SKU-A x2 (EAST) and SKU-B x1 (WEST), picked,
    packed, labelled (econopost for EAST, swiftship for WEST) and, unless `ship` is false,
    handed to the carriers: the order is SHIPPED with two shipments in transit. Without `eta`
    the labels carry no estimated delivery (as from a carrier that gives none)."""
    east = await f.warehouse("EAST", priority=1)
    west = await f.warehouse("WEST", priority=2)
    await f.channel("WEB", [east, west])
    a = await f.variant("SKU-A", price="10.00", barcode="0001", weight_grams=400)
    b = await f.variant("SKU-B", price="25.00", barcode="0002", weight_grams=900)
    await f.stock(east, a, 5)
    await f.stock(west, b, 5)
    await InventoryLevel.filter(warehouse_id=east.id).update(bin_location="E-01-1")
    await InventoryLevel.filter(warehouse_id=west.id).update(bin_location="W-07-2")
    order = await place_order(
        PlaceOrderCommand("WEB", email, [LineCommand("SKU-A", 2), LineCommand("SKU-B", 1)], NYC,
                          payment=PaymentCommand()), "test",
    )
    async with transaction():
        locked = await Order.select_for_update().get(id=order.id)
        await fulfillment.create_fulfillment_orders(locked, "test")
    fo_e, fo_w = await FulfillmentOrder.filter(order_id=order.id).order_by("id")
    pkg_e = await _pack_one(fo_e, east.id, "SKU-A", 2, 850)
    pkg_w = await _pack_one(fo_w, west.id, "SKU-B", 1, 950)
    s_e = await _label(pkg_e, fo_e, "econopost")
    s_w = await _label(pkg_w, fo_w, "swiftship")
    if not eta:
        await Shipment.filter(id__in=[s_e.id, s_w.id]).update(estimated_delivery=None)
    if ship:
        await shipping.ship(s_e.id, "packer")
        await shipping.ship(s_w.id, "packer")
    order = await Order.get(id=order.id)
    return World(order, await Shipment.get(id=s_e.id), await Shipment.get(id=s_w.id), [fo_e, fo_w],
                 datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1))


def event_body(shipment: Shipment, status: TrackingStatus, occurred_at: datetime, event_id: str | None = None,
               location: str = "Hub") -> bytes:
    """The body the shipment's (local) carrier POSTs for a scan."""
    if shipment.carrier == "econopost":
        occurred_at = occurred_at.astimezone(PARIS)
    return local_carrier(shipment.carrier).webhook_event(
        shipment.tracking_number, status, location=location, occurred_at=occurred_at, event_id=event_id,
    )


def signed(carrier: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    return carrier_webhook_headers(carrier, body, timestamp=int(time.time()) if timestamp is None else timestamp)


async def post(http: httpx.AsyncClient, carrier: str, body: bytes, headers: dict | None = None) -> httpx.Response:
    return await http.post(f"/webhooks/carriers/{carrier}", content=body,
                           headers=signed(carrier, body) if headers is None else headers)


async def snapshot() -> dict:
    """Everything a webhook delivery may write (notification status is left out: the server
    sends pending messages in the background after a commit)."""
    return {
        "tracking_events": sorted(await TrackingEvent.all().values_list("carrier", "carrier_event_id", "status")),
        "events": await Event.all().count(),
        "event_types": await Event.all().order_by("id").values_list("type", flat=True),
        "notifications": sorted(await Notification.all().values_list("key", flat=True)),
        "shipments": await Shipment.all().order_by("id").values_list(
            "id", "status", "last_scan_at", "delivered_at", "estimated_delivery"),
        "orders": await Order.all().order_by("id").values_list("id", "status", "updated_at"),
    }


@pytest.fixture
async def http(server) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=server, timeout=60, limits=httpx.Limits(max_connections=50)) as client:
        yield client


# --- deliveries that apply ----------------------------------------------------------------------


async def test_both_carriers_track_to_delivery_and_the_order_is_delivered(db, http, gql):
    w = await shipped_world()
    assert w.order.status is OrderStatus.SHIPPED
    steps = [
        (w.econopost, TrackingStatus.IN_TRANSIT, ShipmentStatus.IN_TRANSIT),
        (w.swiftship, TrackingStatus.IN_TRANSIT, ShipmentStatus.IN_TRANSIT),
        (w.econopost, TrackingStatus.OUT_FOR_DELIVERY, ShipmentStatus.OUT_FOR_DELIVERY),
        (w.swiftship, TrackingStatus.OUT_FOR_DELIVERY, ShipmentStatus.OUT_FOR_DELIVERY),
        (w.econopost, TrackingStatus.DELIVERED, ShipmentStatus.DELIVERED),
    ]
    for i, (s, status, expected) in enumerate(steps):
        body = event_body(s, status, w.t0 + timedelta(seconds=i), event_id=f"e{i}-{s.carrier}")
        r = await post(http, s.carrier, body)
        assert (r.status_code, r.json()) == (200, {"received": 1, "applied": 1, "duplicates": 0})
        assert (await Shipment.get(id=s.id)).status is expected
        # one shipment still on its way: the order is not delivered yet
        assert (await Order.get(id=w.order.id)).status is OrderStatus.SHIPPED

    when = w.t0 + timedelta(seconds=5)
    r = await post(http, "swiftship", event_body(w.swiftship, TrackingStatus.DELIVERED, when, event_id="e5-swiftship"))
    assert (r.status_code, r.json()) == (200, {"received": 1, "applied": 1, "duplicates": 0})

    e, s = await Shipment.get(id=w.econopost.id), await Shipment.get(id=w.swiftship.id)
    assert (e.status, s.status) == (ShipmentStatus.DELIVERED, ShipmentStatus.DELIVERED)
    assert e.delivered_at == w.t0 + timedelta(seconds=4) and s.delivered_at == when
    assert (await Order.get(id=w.order.id)).status is OrderStatus.DELIVERED

    labels = await TrackingEvent.filter(status=TrackingStatus.LABEL_CREATED).values_list("source", flat=True)
    assert len(labels) == 2 and "WEBHOOK" not in labels  # recorded when the labels were bought
    rows = await TrackingEvent.exclude(status=TrackingStatus.LABEL_CREATED).order_by("occurred_at").values_list("carrier", "carrier_event_id", "status", "source", "actor")
    assert [(c, ev, st) for c, ev, st, _, _ in rows] == [
        ("econopost", "e0-econopost", "IN_TRANSIT"), ("swiftship", "e1-swiftship", "IN_TRANSIT"),
        ("econopost", "e2-econopost", "OUT_FOR_DELIVERY"), ("swiftship", "e3-swiftship", "OUT_FOR_DELIVERY"),
        ("econopost", "e4-econopost", "DELIVERED"), ("swiftship", "e5-swiftship", "DELIVERED"),
    ]
    assert {(src, actor) for *_, src, actor in rows} == {("WEBHOOK", "carrier:econopost"), ("WEBHOOK", "carrier:swiftship")}

    notes = await Notification.filter(order_id=w.order.id).order_by("id").values_list("key", "template", "recipient")
    assert notes == [
        (f"ORDER_SHIPPED:{e.id}", "ORDER_SHIPPED", "ada@example.com"),
        (f"ORDER_SHIPPED:{s.id}", "ORDER_SHIPPED", "ada@example.com"),
        (f"OUT_FOR_DELIVERY:{e.id}", "OUT_FOR_DELIVERY", "ada@example.com"),
        (f"OUT_FOR_DELIVERY:{s.id}", "OUT_FOR_DELIVERY", "ada@example.com"),
        (f"DELIVERED:{e.id}", "DELIVERED", "ada@example.com"),
        (f"DELIVERED:{s.id}", "DELIVERED", "ada@example.com"),
    ]

    # the order's timeline, read over GraphQL by staff
    staff = await f.staff_key()
    data = await gql("query($n: String!) { order(number: $n) { status timeline { type actor data } "
                     "shipments { trackingNumber status timeline { status location } } } }",
                     {"n": w.order.number}, auth=staff)
    order = data["order"]
    assert order["status"] == "DELIVERED"
    tracking = [(ev["data"]["tracking_number"], ev["data"]["status"], ev["data"]["shipment_status"], ev["actor"])
                for ev in order["timeline"] if ev["type"] == "TRACKING_UPDATED"]
    assert tracking == [
        (e.tracking_number, "IN_TRANSIT", {"from": "SHIPPED", "to": "IN_TRANSIT"}, "carrier:econopost"),
        (s.tracking_number, "IN_TRANSIT", {"from": "SHIPPED", "to": "IN_TRANSIT"}, "carrier:swiftship"),
        (e.tracking_number, "OUT_FOR_DELIVERY", {"from": "IN_TRANSIT", "to": "OUT_FOR_DELIVERY"}, "carrier:econopost"),
        (s.tracking_number, "OUT_FOR_DELIVERY", {"from": "IN_TRANSIT", "to": "OUT_FOR_DELIVERY"}, "carrier:swiftship"),
        (e.tracking_number, "DELIVERED", {"from": "OUT_FOR_DELIVERY", "to": "DELIVERED"}, "carrier:econopost"),
        (s.tracking_number, "DELIVERED", {"from": "OUT_FOR_DELIVERY", "to": "DELIVERED"}, "carrier:swiftship"),
    ]
    types = [ev["type"] for ev in order["timeline"]]
    assert types.count("ORDER_DELIVERED") == 1 and types[-1] == "ORDER_DELIVERED"
    assert types.index("ORDER_DELIVERED") > max(i for i, t in enumerate(types) if t == "TRACKING_UPDATED")
    by_number = {sh["trackingNumber"]: sh for sh in order["shipments"]}
    assert [t["status"] for t in by_number[e.tracking_number]["timeline"]] == ["LABEL_CREATED", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"]
    assert {sh["status"] for sh in order["shipments"]} == {"DELIVERED"}


async def test_a_redelivery_within_tolerance_answers_duplicates_and_changes_nothing(db, http):
    w = await shipped_world()
    body = event_body(w.econopost, TrackingStatus.OUT_FOR_DELIVERY, w.t0, event_id="EP-EVT-1")
    r = await post(http, "econopost", body)
    assert (r.status_code, r.json()) == (200, {"received": 1, "applied": 1, "duplicates": 0})
    before = await snapshot()
    # the carrier did not hear our answer and sends the same event again, freshly signed
    r = await post(http, "econopost", body, signed("econopost", body, timestamp=int(time.time()) + 1))
    assert (r.status_code, r.json()) == (200, {"received": 1, "applied": 0, "duplicates": 1})
    assert await snapshot() == before


async def test_an_econopost_batch_applies_every_event(db, http):
    w = await shipped_world()
    one = json.loads(event_body(w.econopost, TrackingStatus.IN_TRANSIT, w.t0, event_id="EP-A"))
    two = json.loads(event_body(w.econopost, TrackingStatus.OUT_FOR_DELIVERY, w.t0 + timedelta(seconds=60), event_id="EP-B"))
    body = json.dumps({"carrier": "econopost", "events": two["events"] + one["events"]}).encode()  # newest first
    r = await post(http, "econopost", body)
    assert (r.status_code, r.json()) == (200, {"received": 2, "applied": 2, "duplicates": 0})
    e = await Shipment.get(id=w.econopost.id)
    assert e.status is ShipmentStatus.OUT_FOR_DELIVERY and e.last_scan_at == w.t0 + timedelta(seconds=60)


async def test_an_empty_econopost_batch_answers_zero(db, http):
    await shipped_world()
    before = await snapshot()
    r = await post(http, "econopost", b'{"carrier": "econopost", "events": []}')
    assert (r.status_code, r.json()) == (200, {"received": 0, "applied": 0, "duplicates": 0})
    assert await snapshot() == before


@pytest.mark.parametrize("carrier", ["econopost", "swiftship"])
async def test_concurrent_duplicate_deliveries_apply_once(db, http, carrier):
    w = await shipped_world()
    s = w.econopost if carrier == "econopost" else w.swiftship
    before = await snapshot()
    body = event_body(s, TrackingStatus.DELIVERED, w.t0, event_id=f"dup-{carrier}")
    headers = signed(carrier, body)
    responses = await asyncio.gather(*(post(http, carrier, body, headers) for _ in range(10)))
    assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses]
    assert sorted((r.json()["applied"], r.json()["duplicates"]) for r in responses) == [(0, 1)] * 9 + [(1, 0)]
    assert await TrackingEvent.filter(carrier=carrier, carrier_event_id=f"dup-{carrier}").count() == 1
    after = await snapshot()
    assert after["events"] == before["events"] + 1
    assert after["event_types"][len(before["event_types"]):] == ["TRACKING_UPDATED"]
    assert await Notification.filter(key=f"DELIVERED:{s.id}").count() == 1
    assert after["notifications"] == sorted(before["notifications"] + [f"DELIVERED:{s.id}"])
    assert (await Shipment.get(id=s.id)).status is ShipmentStatus.DELIVERED
    assert (await Order.get(id=w.order.id)).status is OrderStatus.SHIPPED  # the other one is on its way


# --- refusals: exact status and code, nothing written -------------------------------------------


async def _refused(http, carrier: str, body: bytes, headers: dict, status: int, code: str) -> dict:
    before = await snapshot()
    r = await post(http, carrier, body, headers)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code, error
    assert await snapshot() == before
    return error


@pytest.mark.parametrize("carrier", ["econopost", "swiftship"])
async def test_signature_problems_are_refused_with_401_and_write_nothing(db, http, carrier):
    w = await shipped_world()
    s = w.econopost if carrier == "econopost" else w.swiftship
    body = event_body(s, TrackingStatus.DELIVERED, w.t0, event_id=f"sig-{carrier}")
    now = int(time.time())
    other = event_body(s, TrackingStatus.IN_TRANSIT, w.t0, event_id=f"other-{carrier}")
    other_carrier = "swiftship" if carrier == "econopost" else "econopost"
    cases = [
        ({"Content-Type": "application/json"}, "SIGNATURE_MISSING"),
        ({SIGNATURE_HEADER: ""}, "SIGNATURE_MISSING"),
        ({SIGNATURE_HEADER: "not a signature"}, "SIGNATURE_MALFORMED"),
        ({SIGNATURE_HEADER: f"v1={'0' * 64}"}, "SIGNATURE_MALFORMED"),  # no t=
        ({SIGNATURE_HEADER: f"t={now}"}, "SIGNATURE_MALFORMED"),  # no v1=
        ({SIGNATURE_HEADER: sign("whsec_not_the_secret", body, now)}, "SIGNATURE_INVALID"),
        (carrier_webhook_headers(other_carrier, body, timestamp=now), "SIGNATURE_INVALID"),  # another carrier's secret
        ({SIGNATURE_HEADER: signed(carrier, other, timestamp=now)[SIGNATURE_HEADER]}, "SIGNATURE_INVALID"),  # tampered
        ({SIGNATURE_HEADER: signed(carrier, body, timestamp=now)[SIGNATURE_HEADER].replace(f"t={now}", f"t={now + 1}")},
         "SIGNATURE_INVALID"),  # timestamp changed after signing
    ]
    for headers, code in cases:
        await _refused(http, carrier, body, headers, 401, code)
    # none of them stopped the genuine delivery
    r = await post(http, carrier, body)
    assert (r.status_code, r.json()) == (200, {"received": 1, "applied": 1, "duplicates": 0})


async def test_stale_and_future_timestamps_are_refused(db, settings, http):
    w = await shipped_world()
    tolerance = settings.carrier_webhook_tolerance_seconds
    assert tolerance == get_settings().carrier_webhook_tolerance_seconds
    body = event_body(w.swiftship, TrackingStatus.DELIVERED, w.t0, event_id="stale")
    now = int(time.time())
    for ts in (now - tolerance - 5, now + tolerance + 5, 0):
        await _refused(http, "swiftship", body, signed("swiftship", body, timestamp=ts), 401, "TIMESTAMP_STALE")


async def test_a_captured_delivery_replayed_after_the_tolerance_is_refused(db, settings, http):
    w = await shipped_world()
    tolerance = settings.carrier_webhook_tolerance_seconds
    # delivered genuinely, close to the end of its window
    delivered = event_body(w.econopost, TrackingStatus.IN_TRANSIT, w.t0, event_id="cap-1")
    delivered_headers = signed("econopost", delivered, timestamp=int(time.time()) - tolerance + 2)
    r = await post(http, "econopost", delivered, delivered_headers)
    assert (r.status_code, r.json()) == (200, {"received": 1, "applied": 1, "duplicates": 0})
    # captured on the way and never delivered (the attacker dropped it)
    captured = event_body(w.econopost, TrackingStatus.DELIVERED, w.t0 + timedelta(seconds=60), event_id="cap-2")
    captured_headers = signed("econopost", captured, timestamp=int(time.time()) - tolerance + 2)
    await asyncio.sleep(4)
    await _refused(http, "econopost", delivered, delivered_headers, 401, "TIMESTAMP_STALE")
    await _refused(http, "econopost", captured, captured_headers, 401, "TIMESTAMP_STALE")
    assert (await Shipment.get(id=w.econopost.id)).status is ShipmentStatus.IN_TRANSIT


async def test_an_unknown_carrier_is_404(db, http):
    w = await shipped_world()
    body = event_body(w.econopost, TrackingStatus.DELIVERED, w.t0)
    headers = {SIGNATURE_HEADER: sign("whsec_dev_econopost_0123456789abcdef", body, int(time.time()))}
    error = await _refused(http, "fedex", body, headers, 404, "UNKNOWN_CARRIER")
    assert "fedex" in error["message"]
    # unsigned too: an unknown carrier is not told about signatures
    await _refused(http, "fedex", body, {}, 404, "UNKNOWN_CARRIER")


async def test_unknown_tracking_numbers_refuse_the_whole_delivery(db, http):
    w = await shipped_world()
    # well formed, check digit right, but not one of our shipments
    stranger = s10_number("CP", 87654321, "GB")
    assert stranger != w.econopost.tracking_number
    known = json.loads(event_body(w.econopost, TrackingStatus.OUT_FOR_DELIVERY, w.t0, event_id="known-1"))
    unknown = json.loads(json.dumps(known))
    unknown["events"][0].update(eventId="unknown-1", itemId=stranger)
    alone = json.dumps(unknown).encode()
    error = await _refused(http, "econopost", alone, signed("econopost", alone), 422, "UNKNOWN_TRACKING_NUMBER")
    assert error["tracking_numbers"] == [stranger]

    mixed = json.dumps({"carrier": "econopost", "events": known["events"] + unknown["events"]}).encode()
    error = await _refused(http, "econopost", mixed, signed("econopost", mixed), 422, "UNKNOWN_TRACKING_NUMBER")
    assert error["tracking_numbers"] == [stranger]

    # a swiftship number of ours posted as swiftship, but one swiftship does not know as ours
    sw = json.loads(event_body(w.swiftship, TrackingStatus.IN_TRANSIT, w.t0, event_id="sw-x"))
    sw["data"]["tracking_number"] = swiftship_number(98765432101)
    sw_body = json.dumps(sw).encode()
    await _refused(http, "swiftship", sw_body, signed("swiftship", sw_body), 422, "UNKNOWN_TRACKING_NUMBER")

    # our econopost shipment announced by swiftship's format is not swiftship's shipment
    # (its number is not even a swiftship number: the payload is refused)
    sw["data"]["tracking_number"] = w.econopost.tracking_number
    sw_body = json.dumps(sw).encode()
    await _refused(http, "swiftship", sw_body, signed("swiftship", sw_body), 400, "INVALID_WEBHOOK_PAYLOAD")

    # the known event alone applies (the refusal was about the stranger only)
    only = json.dumps(known).encode()
    r = await post(http, "econopost", only)
    assert (r.status_code, r.json()) == (200, {"received": 1, "applied": 1, "duplicates": 0})


async def test_bodies_the_carrier_format_does_not_allow_are_400(db, http):
    w = await shipped_world()
    good = json.loads(event_body(w.swiftship, TrackingStatus.IN_TRANSIT, w.t0, event_id="fmt"))
    bad_status = json.loads(json.dumps(good))
    bad_status["data"]["status"] = "teleported"
    cases = [
        ("econopost", b"{not json"),
        ("econopost", b""),
        ("econopost", b"\xff\xfe"),
        ("econopost", b'{"carrier": "econopost"}'),  # no events
        ("econopost", b'{"carrier": "econopost", "events": [{"eventId": "x"}]}'),
        ("swiftship", b"[]"),
        ("swiftship", json.dumps(bad_status).encode()),
        ("swiftship", event_body(w.econopost, TrackingStatus.IN_TRANSIT, w.t0)),  # another carrier's format
    ]
    for carrier, body in cases:
        await _refused(http, carrier, body, signed(carrier, body), 400, "INVALID_WEBHOOK_PAYLOAD")


async def test_the_signature_is_checked_before_the_body_is_read(db, http):
    await shipped_world()
    await _refused(http, "econopost", b"{not json", {SIGNATURE_HEADER: "garbage"}, 401, "SIGNATURE_MALFORMED")
    await _refused(http, "econopost", b"{not json", {}, 401, "SIGNATURE_MISSING")


async def test_the_app_verifies_with_its_own_settings(db, http):
    w = await shipped_world()
    own = db.model_copy(update={"carrier_webhook_secrets": {"econopost": "whsec_this_app_only", "swiftship": "x"}})
    body = event_body(w.econopost, TrackingStatus.IN_TRANSIT, w.t0, event_id="own-1")
    async with serve(create_app(own, manage_db=False), lifespan="off") as base, httpx.AsyncClient(base_url=base) as client:
        r = await post(client, "econopost", body, {SIGNATURE_HEADER: sign("whsec_this_app_only", body, int(time.time()))})
        assert (r.status_code, r.json()) == (200, {"received": 1, "applied": 1, "duplicates": 0})


# --- documents ----------------------------------------------------------------------------------


async def test_label_and_packing_slip_download_for_staff_and_the_channels_partner(db, http):
    w = await shipped_world(ship=False)
    staff = await f.staff_key()
    from ordergraph.models import SalesChannel  # noqa: PLC0415

    web = await SalesChannel.get(code="WEB")
    partner = await f.partner_key("MARKET", [web])
    for key in (staff, partner):
        for s in (w.econopost, w.swiftship):
            r = await http.get(f"/documents/labels/{s.tracking_number}", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "application/pdf"
            assert r.content.startswith(b"%PDF") and r.content == bytes(s.label_document)
            assert r.headers["content-disposition"] == f'inline; filename="label-{s.tracking_number}.pdf"'
        for fo in w.fos:
            r = await http.get(f"/documents/packing-slips/{fo.number}", headers={"X-API-Key": key})
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF")
            text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages)
            assert fo.number in text
            mine = w.econopost if fo.id == w.econopost.fulfillment_order_id else w.swiftship
            assert mine.tracking_number in text


async def test_documents_are_refused_to_others(db, http):
    w = await shipped_world(ship=False)
    from ordergraph.models import SalesChannel  # noqa: PLC0415

    other = await f.channel("MARKET", [])
    stranger = await f.partner_key("OTHERS", [other])
    staff = await f.staff_key()
    label = f"/documents/labels/{w.econopost.tracking_number}"
    slip = f"/documents/packing-slips/{w.fos[0].number}"
    assert await SalesChannel.filter(code="WEB").exists()

    async def get(path, headers):
        r = await http.get(path, headers=headers)
        return r.status_code, r.json()["error"]["code"], r.headers["content-type"]

    for path in (label, slip):
        # a partner of another channel is told nothing exists
        assert await get(path, {"Authorization": f"Bearer {stranger}"}) == (404, "NOT_FOUND", "application/json")
        # no credentials, bad credentials
        status, _, _ = await get(path, {})
        assert status == 401
        assert await get(path, {"Authorization": "Bearer og_not_a_key"}) == (401, "UNAUTHENTICATED", "application/json")
        assert await get(path, {"Authorization": "Basic abc"}) == (401, "UNAUTHENTICATED", "application/json")
        # a customer (even the order's own) gets no warehouse documents
        assert (await get(path, {"Authorization": f"Bearer {f.customer_token('ada@example.com')}"}))[0] == 403
    for path in ("/documents/labels/CP000000000GB", "/documents/packing-slips/SO-NOPE-F1"):
        assert await get(path, {"Authorization": f"Bearer {staff}"}) == (404, "NOT_FOUND", "application/json")
        assert (await get(path, {}))[0] == 401  # no one learns what exists without credentials


async def test_no_credentials_answers_unauthenticated(db, http):
    w = await shipped_world(ship=False)
    r = await http.get(f"/documents/labels/{w.econopost.tracking_number}")
    assert (r.status_code, r.json()["error"]["code"]) == (401, "UNAUTHENTICATED")


# --- batches across orders ----------------------------------------------------------------------


async def _two_econopost_orders() -> tuple[Shipment, Shipment]:
    """Two orders of SKU-A x1 from EAST, each shipped with its own econopost label."""
    east = await f.warehouse("EAST", priority=1)
    await f.channel("WEB", [east])
    a = await f.variant("SKU-A", price="10.00", barcode="0001", weight_grams=400)
    await f.stock(east, a, 10)
    await InventoryLevel.filter(warehouse_id=east.id).update(bin_location="E-01-1")
    shipments = []
    for email in ("one@example.com", "two@example.com"):
        order = await place_order(PlaceOrderCommand("WEB", email, [LineCommand("SKU-A", 1)], NYC,
                                                    payment=PaymentCommand()), "test")
        async with transaction():
            await fulfillment.create_fulfillment_orders(await Order.select_for_update().get(id=order.id), "test")
        fo = await FulfillmentOrder.get(order_id=order.id)
        pkg = await _pack_one(fo, east.id, "SKU-A", 1, 450)
        s = await _label(pkg, fo, "econopost")
        await shipping.ship(s.id, "packer")
        shipments.append(await Shipment.get(id=s.id))
    return shipments[0], shipments[1]


async def test_concurrent_batches_over_the_same_orders_in_opposite_order_all_apply(db, http, backend, request):
    """Two econopost batches, each with a scan of both orders' parcels, the first scan of one
    being of the other's order: both apply whole, whatever the interleaving (no deadlock)."""
    one, two = await _two_econopost_orders()
    t = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    rounds = 8
    bodies = []
    for r in range(rounds):
        base = t + timedelta(seconds=10 * r)
        first = [json.loads(event_body(one, TrackingStatus.IN_TRANSIT, base, event_id=f"r{r}-a1"))["events"][0],
                 json.loads(event_body(two, TrackingStatus.IN_TRANSIT, base + timedelta(seconds=1), event_id=f"r{r}-a2"))["events"][0]]
        second = [json.loads(event_body(two, TrackingStatus.IN_TRANSIT, base, event_id=f"r{r}-b2"))["events"][0],
                  json.loads(event_body(one, TrackingStatus.IN_TRANSIT, base + timedelta(seconds=1), event_id=f"r{r}-b1"))["events"][0]]
        bodies += [json.dumps({"carrier": "econopost", "events": first}).encode(),
                   json.dumps({"carrier": "econopost", "events": second}).encode()]
    responses = await asyncio.gather(*(post(http, "econopost", b) for b in bodies))
    assert [r.status_code for r in responses] == [200] * len(bodies), [r.text for r in responses]
    assert [(r.status_code, r.json()) for r in responses] == [(200, {"received": 2, "applied": 2, "duplicates": 0})] * len(bodies)
    assert await TrackingEvent.filter(carrier_event_id__startswith="r").count() == 4 * rounds
    assert await Event.filter(type="TRACKING_UPDATED").count() == 4 * rounds


async def test_a_first_scan_without_a_pickup_scan_ships_the_package(db, http):
    """A carrier whose first scan of a labelled parcel is IN_TRANSIT (no PICKED_UP) has it: the
    package shipped (stock left, lines count it, the order moves on), like a pickup scan."""
    w = await shipped_world(ship=False)
    assert w.order.status is OrderStatus.IN_FULFILLMENT
    r = await post(http, "econopost", event_body(w.econopost, TrackingStatus.IN_TRANSIT, w.t0, event_id="first"))
    assert (r.status_code, r.json()) == (200, {"received": 1, "applied": 1, "duplicates": 0})
    s = await Shipment.get(id=w.econopost.id)
    assert s.status is ShipmentStatus.IN_TRANSIT and s.shipped_at is not None
    assert (await Order.get(id=w.order.id)).status is OrderStatus.PARTIALLY_SHIPPED
    level = await InventoryLevel.get(warehouse__code="EAST")
    assert (level.on_hand, level.allocated) == (3, 0)


async def test_a_pickup_scan_ships_a_labelled_package(db, http):
    w = await shipped_world(ship=False)
    before = await InventoryLevel.get(warehouse__code="EAST")
    assert (before.on_hand, before.allocated) == (5, 2)
    body = event_body(w.econopost, TrackingStatus.PICKED_UP, w.t0, event_id="pickup")
    r = await post(http, "econopost", body)
    assert (r.status_code, r.json()) == (200, {"received": 1, "applied": 1, "duplicates": 0})
    s = await Shipment.get(id=w.econopost.id)
    assert s.status is ShipmentStatus.IN_TRANSIT and s.shipped_at is not None
    assert (await Order.get(id=w.order.id)).status is OrderStatus.PARTIALLY_SHIPPED
    level = await InventoryLevel.get(warehouse__code="EAST")
    assert (level.on_hand, level.allocated) == (3, 0)
    from ordergraph.models import Payment  # noqa: PLC0415

    payment = await Payment.get(order_id=w.order.id)
    assert payment.captured_amount > 0  # the channel captures on shipment
    assert await Notification.filter(key=f"ORDER_SHIPPED:{s.id}").count() == 1
    # the pickup scan again: nothing ships twice
    snap = await snapshot()
    r = await post(http, "econopost", body)
    assert (r.status_code, r.json()) == (200, {"received": 1, "applied": 0, "duplicates": 1})
    assert await snapshot() == snap
    assert (await InventoryLevel.get(warehouse__code="EAST")).on_hand == 3


async def test_a_late_older_scan_does_not_undo_a_delivery(db, http):
    """Scans arrive out of order: an OUT_FOR_DELIVERY scan older than the DELIVERED one is kept
    in the timeline but neither moves the shipment back nor tells the customer it is on its way."""
    w = await shipped_world()
    s = w.swiftship
    r = await post(http, "swiftship", event_body(s, TrackingStatus.DELIVERED, w.t0 + timedelta(seconds=2), event_id="d"))
    assert r.json()["applied"] == 1
    r = await post(http, "swiftship", event_body(s, TrackingStatus.OUT_FOR_DELIVERY, w.t0 + timedelta(seconds=1), event_id="o"))
    assert (r.status_code, r.json()) == (200, {"received": 1, "applied": 1, "duplicates": 0})
    after = await Shipment.get(id=s.id)
    assert (after.status, after.delivered_at, after.last_scan_at) == (
        ShipmentStatus.DELIVERED, w.t0 + timedelta(seconds=2), w.t0 + timedelta(seconds=2))
    assert await TrackingEvent.filter(shipment_id=s.id, carrier_event_id__in=["d", "o"]).count() == 2
    assert await Notification.filter(order_id=w.order.id).exclude(template="ORDER_SHIPPED").values_list("key", flat=True) == [
        f"DELIVERED:{s.id}"]
