"""Webhook signatures: the exact header format, rotation, and each refusal code."""

from __future__ import annotations

import pytest

from ordergraph.integrations.webhooks import (
    SIGNATURE_HEADER,
    WebhookSignatureError,
    WebhookSignatureErrorCode as C,
    sign,
    verify,
)

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
