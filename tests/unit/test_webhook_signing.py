"""Webhook signatures: the exact header format, rotation, each refusal code; carrier webhooks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ordergraph.config import Settings
from ordergraph.integrations import carriers as c
from ordergraph.integrations.webhooks import (
    SIGNATURE_HEADER,
    WebhookSignatureError,
    carrier_webhook_headers,
    sign,
    verify,
    verify_carrier_webhook,
)
from ordergraph.integrations.webhooks import WebhookSignatureErrorCode as C

SECRET = "whsec_test"
BODY = b'{"id":"evt_1"}'
T = 1_700_000_000
# printf '1700000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac whsec_test
VECTOR = "c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"


def refused(code: C, secret, header, body=BODY, now=T, **kw) -> WebhookSignatureError:
    with pytest.raises(WebhookSignatureError) as info:
        verify(secret, header, body, now=now, **kw)
    assert info.value.code == code, info.value
    return info.value


def test_sign_matches_an_independently_computed_vector():
    assert SIGNATURE_HEADER == "Ordergraph-Signature"
    assert sign(SECRET, BODY, T) == f"t={T},v1={VECTOR}"


def test_verify_returns_the_timestamp_within_tolerance_both_ways():
    header = sign(SECRET, BODY, T)
    assert verify(SECRET, header, BODY, now=T) == T
    assert verify(SECRET, header, BODY, now=T + 300) == T
    assert verify(SECRET, header, BODY, now=T - 300.0) == T
    assert verify(SECRET, header, BODY, now=T + 1000, tolerance_seconds=1000) == T


def test_stale_and_future_timestamps_are_refused():
    header = sign(SECRET, BODY, T)
    refused(C.TIMESTAMP_STALE, SECRET, header, now=T + 300.5)
    refused(C.TIMESTAMP_STALE, SECRET, header, now=T - 301)
    refused(C.TIMESTAMP_STALE, SECRET, header, now=T + 11, tolerance_seconds=10)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(header):
    refused(C.SIGNATURE_MISSING, SECRET, header)


@pytest.mark.parametrize(
    "header",
    [
        f"v1={VECTOR}",  # no timestamp
        f"t={T}",  # no signature
        f"t={T},v1=",  # empty signature
        f"t=abc,v1={VECTOR}",
        f"t=-5,v1={VECTOR}",
        f"t={T},t={T},v1={VECTOR}",
        f"t={T};v1={VECTOR}",
        f"t={T},{VECTOR}",
        "garbage",
    ],
)
def test_malformed_headers(header):
    refused(C.SIGNATURE_MALFORMED, SECRET, header)


def test_a_changed_body_wrong_secret_or_wrong_timestamp_is_invalid():
    header = sign(SECRET, BODY, T)
    refused(C.SIGNATURE_INVALID, SECRET, header, body=BODY + b" ")
    refused(C.SIGNATURE_INVALID, "whsec_other", header)
    moved = header.replace(f"t={T}", f"t={T + 1}")
    refused(C.SIGNATURE_INVALID, SECRET, moved, now=T + 1)
    refused(C.SIGNATURE_INVALID, SECRET, f"t={T},v1={VECTOR[:-1]}")
    refused(C.SIGNATURE_INVALID, SECRET, f"t={T},v1=é{VECTOR[1:]}")


def test_invalid_is_reported_before_stale():
    forged = f"t={T},v1={'0' * 64}"
    refused(C.SIGNATURE_INVALID, SECRET, forged, now=T + 10_000)


def test_several_v1_values_and_unknown_schemes_for_rotation():
    old, new = sign("whsec_old", BODY, T), sign("whsec_new", BODY, T)
    both = f"t={T},v0=deadbeef,{old.split(',')[1]},{new.split(',')[1]}"
    assert verify("whsec_new", both, BODY, now=T) == T
    assert verify("whsec_old", both, BODY, now=T) == T
    assert verify(["whsec_gone", "whsec_new"], new, BODY, now=T) == T
    refused(C.SIGNATURE_INVALID, ["whsec_gone", "whsec_other"], both)
    assert verify(SECRET, f" t={T} , v1={VECTOR.upper()} ", BODY, now=T) == T


def test_programming_errors_are_not_signature_errors():
    with pytest.raises(ValueError):
        sign("", BODY, T)
    with pytest.raises(TypeError):
        sign(SECRET, "text", T)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sign(SECRET, BODY, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        verify([], sign(SECRET, BODY, T), BODY, now=T)


# -- carrier webhooks end to end ------------------------------------------------------------------

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)


@pytest.fixture
def swift():
    c.reset_local_carriers()
    yield c.local_carrier("swiftship")
    c.reset_local_carriers()


async def delivered_body(carrier) -> bytes:
    ship_from = c.Address(name="W", line1="1 Dock", city="Reno", postal_code="89501", country="US")
    ship_to = c.Address(
        name="Ada", line1="1 Main", city="Austin", postal_code="78701", country="US"
    )
    label = await carrier.buy_label(ship_from, ship_to, [c.Parcel(500)], "EXPRESS", "SO-1", "k")
    return carrier.webhook_event(
        label.tracking_number,
        c.TrackingStatus.DELIVERED,
        location="Austin",
        occurred_at=NOW,
        event_id="evt_9",
    )


async def test_verify_carrier_webhook_checks_the_signature_then_parses(swift):
    settings = Settings(_env_file=None)
    body = await delivered_body(swift)
    headers = carrier_webhook_headers("swiftship", body, timestamp=T, settings=settings)
    assert headers["Content-Type"] == "application/json"
    assert headers[SIGNATURE_HEADER] == sign(settings.webhook_secrets("swiftship")[0], body, T)
    [update] = verify_carrier_webhook(
        "swiftship", headers[SIGNATURE_HEADER], body, now=T + 1, settings=settings
    )
    assert (update.carrier_event_id, update.status) == ("evt_9", c.TrackingStatus.DELIVERED)
    # signed with econopost's secret: refused before the body is read
    other = carrier_webhook_headers("econopost", body, timestamp=T, settings=settings)
    with pytest.raises(WebhookSignatureError) as info:
        verify_carrier_webhook("swiftship", other[SIGNATURE_HEADER], body, now=T, settings=settings)
    assert info.value.code == C.SIGNATURE_INVALID
    with pytest.raises(WebhookSignatureError) as info:
        verify_carrier_webhook(
            "swiftship", headers[SIGNATURE_HEADER], body, now=T + 301, settings=settings
        )
    assert info.value.code == C.TIMESTAMP_STALE


async def test_a_signed_but_unreadable_body_and_unconfigured_carriers(swift):
    settings = Settings(_env_file=None, carrier_webhook_secrets={"swiftship": ["new", "old"]})
    body = b'{"type": "shipment.tracking_updated"}'
    header = sign("old", body, T)  # the old secret still accepted during a rotation
    with pytest.raises(c.CarrierError) as info:
        verify_carrier_webhook("swiftship", header, body, now=T, settings=settings)
    assert info.value.code == c.CarrierErrorCode.INVALID_WEBHOOK_PAYLOAD
    for code in ("econopost", "dhl"):  # no secret; not offered
        with pytest.raises(c.CarrierError) as info:
            verify_carrier_webhook(code, header, body, now=T, settings=settings)
        assert info.value.code == c.CarrierErrorCode.CARRIER_MISCONFIGURED
