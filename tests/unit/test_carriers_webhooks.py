"""The local carriers' webhook bodies: their own formats, parsing them back, and refusals."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from ordergraph.integrations import carriers as c
from ordergraph.integrations.carriers import CarrierErrorCode as E
from ordergraph.integrations.carriers import TrackingStatus as S
from ordergraph.integrations.webhooks import sign, verify

T0 = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
FROM = c.Address(
    name="Warehouse", line1="100 Dock Rd", city="Reno", postal_code="89501", country="US"
)
TO = c.Address(name="Ada", line1="1 Main St", city="Paris", postal_code="75001", country="FR")
PARIS = timezone(timedelta(hours=1))


@pytest.fixture
def eco() -> c.LocalCarrier:
    return c.LocalCarrier(c.ECONOPOST, clock=lambda: T0)


@pytest.fixture
def swift() -> c.LocalCarrier:
    return c.LocalCarrier(c.SWIFTSHIP, clock=lambda: T0)


async def bought(carrier: c.LocalCarrier) -> str:
    label = await carrier.buy_label(
        FROM,
        TO,
        [c.Parcel(900)],
        "EXPRESS" if carrier.code == "swiftship" else "STANDARD",
        "SO-1",
        "k",
    )
    return label.tracking_number


async def test_econopost_body_is_a_batch_with_local_time_and_event_codes(eco):
    n = await bought(eco)
    at = datetime(2026, 11, 20, 9, 15, 30, 250000, tzinfo=PARIS)
    body = eco.webhook_event(
        n,
        S.OUT_FOR_DELIVERY,
        location="Paris 01",
        occurred_at=at,
        event_id="EP-1",
        estimated_delivery=date(2026, 11, 20),
    )
    assert json.loads(body) == {
        "carrier": "econopost",
        "events": [
            {
                "eventId": "EP-1",
                "itemId": n,
                "eventCode": "EMG",
                "eventTime": "2026-11-20T09:15:30.250000+01:00",
                "office": "Paris 01",
                "remark": "Out for delivery",
                "expectedDeliveryDate": "2026-11-20",
            }
        ],
    }
    [update] = eco.parse_webhook(body)
    assert update == c.TrackingUpdate(
        "EP-1",
        n,
        S.OUT_FOR_DELIVERY,
        datetime(2026, 11, 20, 8, 15, 30, 250000, tzinfo=UTC),
        "Paris 01",
        "Out for delivery",
        date(2026, 11, 20),
    )
    assert update.occurred_at.tzinfo is UTC
    assert (await eco.track(n))[-1] == update


async def test_swiftship_body_is_one_event_in_unix_seconds(swift):
    n = await bought(swift)
    at = datetime(2026, 11, 19, 3, 4, 5, 999999, tzinfo=UTC)
    body = swift.webhook_event(
        n, S.DELAYED, location="Memphis, TN", occurred_at=at, description="Weather delay"
    )
    payload = json.loads(body)
    event_id = payload["id"]
    assert event_id.startswith("evt_")
    assert payload == {
        "id": event_id,
        "type": "shipment.tracking_updated",
        "created": 1795057445,
        "data": {
            "tracking_number": n,
            "status": "delayed",
            "occurred_at": 1795057445,
            "scan_location": "Memphis, TN",
            "message": "Weather delay",
            "eta": None,
        },
    }
    [update] = swift.parse_webhook(body)
    assert update == c.TrackingUpdate(
        event_id, n, S.DELAYED, at.replace(microsecond=0), "Memphis, TN", "Weather delay", None
    )
    assert (await swift.track(n))[-1] == update


@pytest.mark.parametrize("status", list(S))
async def test_every_status_round_trips_through_both_formats(eco, swift, status):
    for carrier in (eco, swift):
        n = await bought(carrier)
        body = carrier.webhook_event(n, status, location=None, occurred_at=T0)
        [update] = carrier.parse_webhook(body)
        assert (update.status, update.tracking_number, update.occurred_at) == (status, n, T0)


async def test_a_redelivery_with_the_same_event_id_is_the_same_body_recorded_once(swift):
    n = await bought(swift)
    first = swift.webhook_event(n, S.PICKED_UP, location="Reno", occurred_at=T0, event_id="evt_1")
    again = swift.webhook_event(n, S.PICKED_UP, location="Reno", occurred_at=T0, event_id="evt_1")
    assert again == first
    assert [e.status for e in await swift.track(n)] == [S.LABEL_CREATED, S.PICKED_UP]


async def test_signed_body_verifies_as_the_endpoint_would(eco):
    n = await bought(eco)
    body = eco.webhook_event(n, S.DELIVERED, location="Paris", occurred_at=T0)
    header = sign("whsec_dev", body, int(T0.timestamp()))
    assert verify("whsec_dev", header, body, now=T0.timestamp() + 5) == int(T0.timestamp())
    assert eco.parse_webhook(body)[0].status == S.DELIVERED


def test_naive_times_are_refused_by_the_simulator(eco):
    with pytest.raises(ValueError, match="timezone-aware"):
        eco.webhook_event(
            "CP123456785US", S.IN_TRANSIT, location=None, occurred_at=datetime(2026, 1, 1)
        )


def _eco(**over) -> bytes:
    event = {
        "eventId": "EP-1",
        "itemId": "CP123456785US",
        "eventCode": "EMC",
        "eventTime": "2026-11-20T09:15:00+01:00",
        "office": None,
        "remark": None,
    }
    return json.dumps({"carrier": "econopost", "events": [event | over]}).encode()


def _swift(data=None, **over) -> bytes:
    d = {"tracking_number": "SW123456789015", "status": "in_transit", "occurred_at": 1795000000}
    return json.dumps(
        {"id": "evt_1", "type": "shipment.tracking_updated", "data": d | (data or {})} | over
    ).encode()


def test_the_fixtures_of_the_refusal_cases_are_valid_as_they_are(eco, swift):
    assert eco.parse_webhook(_eco())[0].occurred_at == datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
    assert swift.parse_webhook(_swift())[0].status == S.IN_TRANSIT
    assert eco.parse_webhook(b'{"carrier": "econopost", "events": []}') == []


@pytest.mark.parametrize(
    ("carrier", "body"),
    [
        ("eco", b"not json"),
        ("eco", b"\xff\xfe"),
        ("eco", b"[]"),
        ("eco", b'{"events": {}}'),
        ("eco", _eco(eventCode="XYZ")),
        ("eco", _eco(eventTime="2026-11-20T09:15:00")),  # no offset
        ("eco", _eco(eventTime="yesterday")),
        ("eco", _eco(itemId="CP123456784US")),  # bad check digit
        ("eco", _eco(eventId="")),
        ("eco", _eco(eventId=7)),
        ("eco", _eco(expectedDeliveryDate="2026-13-01")),
        ("eco", _eco(office=5)),
        ("swift", _swift({"status": "IN_TRANSIT"})),
        ("swift", _swift({"status": "lost"})),
        ("swift", _swift({"occurred_at": "2026-11-20T09:15:00Z"})),
        ("swift", _swift({"occurred_at": True})),
        ("swift", _swift({"occurred_at": -1})),
        ("swift", _swift({"tracking_number": "SW123456789016"})),
        ("swift", _swift(type="shipment.created")),
        ("swift", _swift(data=None, id=None)),
        ("swift", json.dumps({"id": "evt_1", "type": "shipment.tracking_updated"}).encode()),
        ("swift", _eco()),  # the other carrier's format
        ("eco", _swift()),
    ],
)
def test_invalid_payloads(request, carrier, body):
    with pytest.raises(c.CarrierError) as info:
        request.getfixturevalue(carrier).parse_webhook(body)
    assert (info.value.code, info.value.retryable) == (E.INVALID_WEBHOOK_PAYLOAD, False)
