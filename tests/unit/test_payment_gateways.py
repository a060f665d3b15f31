"""LocalGateway's token behaviours, capture/void/refund rules and idempotency; with_retries; registry."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from ordergraph.integrations import payments as p

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gw(clock) -> p.LocalGateway:
    return p.LocalGateway(clock=clock)


async def authorized(gw: p.LocalGateway, amount: str = "100.00", token: str = "tok_approve") -> str:
    result = await gw.authorize(D(amount), "USD", token, uuid.uuid4().hex)
    assert result.approved, result
    return result.reference


def state(gw: p.LocalGateway, ref: str) -> tuple:
    s = gw.authorization(ref)
    return (s.status, s.captured, s.refunded)


def refused(result: p.GatewayResult, code: str) -> None:
    assert (result.success, result.reference, result.error_code) == (False, None, code), result


# -- authorize: tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["tok_approve", "tok_visa", "tok_visa_4242", "tok_mastercard_debit"])
async def test_approving_tokens_authorize_for_seven_days(gw, token):
    result = await gw.authorize(D("25.50"), "usd", token, "k1")
    assert result.approved and result.decline_code is None
    assert result.reference.startswith("auth_") and len(result.reference) > len("auth_")
    assert result.amount == D("25.50")
    assert result.expires_at == T0 + timedelta(days=7) and result.expires_at.tzinfo is not None
    s = gw.authorization(result.reference)
    assert (s.amount, s.currency, s.captured, s.refunded, s.status) == (D("25.50"), "USD", 0, 0, "authorized")


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("tok_decline", "card_declined"),
        ("tok_insufficient_funds", "insufficient_funds"),
        ("tok_unknown", "invalid_token"),
        ("", "invalid_token"),
        ("tok_amex", "invalid_token"),
    ],
)
async def test_declining_tokens_return_the_exact_code(gw, token, code):
    result = await gw.authorize(D("10"), "USD", token, "k1")
    assert (result.approved, result.reference, result.expires_at) == (False, None, None)
    assert (result.decline_code, result.amount) == (code, D("10")) and result.message
    assert code in p.DECLINE_CODES


async def test_transient_token_fails_first_attempt_per_key_then_approves(gw):
    with pytest.raises(p.GatewayUnavailable):
        await gw.authorize(D("10"), "USD", "tok_transient", "k1")
    retry = await gw.authorize(D("10"), "USD", "tok_transient", "k1")
    assert retry.approved and retry.reference.startswith("auth_")
    assert await gw.authorize(D("10"), "USD", "tok_transient", "k1") == retry
    with pytest.raises(p.GatewayUnavailable):  # a new key fails its first attempt too
        await gw.authorize(D("10"), "USD", "tok_transient", "k2")


async def test_gateway_down_token_always_raises(gw):
    for _ in range(3):
        with pytest.raises(p.GatewayUnavailable):
            await gw.authorize(D("10"), "USD", "tok_gateway_down", "k1")


async def test_expiring_token_approves_but_cannot_be_captured_or_voided(gw, clock):
    result = await gw.authorize(D("10"), "USD", "tok_expiring", "k1")
    assert result.approved and result.expires_at == T0
    assert gw.authorization(result.reference).status == "expired"
    refused(await gw.capture(result.reference, D("10"), "c1"), "authorization_expired")
    refused(await gw.void(result.reference, "v1"), "authorization_expired")
    assert state(gw, result.reference) == ("expired", 0, 0)
    assert [a.status for a in gw.authorizations.values()] == ["expired"]


@pytest.mark.parametrize("amount", [D("0"), D("-5"), D("NaN"), D("Infinity")])
async def test_authorize_refuses_a_non_positive_or_non_finite_amount(gw, amount):
    result = await gw.authorize(amount, "USD", "tok_approve", "k1")
    assert (result.approved, result.decline_code) == (False, "invalid_amount")


async def test_float_amounts_are_a_programming_error(gw):
    with pytest.raises(TypeError):
        await gw.authorize(10.0, "USD", "tok_approve", "k1")


# -- capture -------------------------------------------------------------------------------------


async def test_partial_captures_up_to_the_authorized_amount(gw):
    ref = await authorized(gw, "100.00")
    first = await gw.capture(ref, D("30.00"), "c1")
    second = await gw.capture(ref, D("70.00"), "c2")
    for r in (first, second):
        assert r.success and r.error_code is None and r.reference.startswith("cap_")
    assert first.reference != second.reference
    assert state(gw, ref) == ("captured", D("100.00"), 0)
    refused(await gw.capture(ref, D("0.01"), "c3"), "amount_exceeds_authorization")
    assert state(gw, ref) == ("captured", D("100.00"), 0)


async def test_capture_above_the_authorization_at_once_is_refused(gw):
    ref = await authorized(gw, "50.00")
    refused(await gw.capture(ref, D("50.01"), "c1"), "amount_exceeds_authorization")
    assert state(gw, ref) == ("authorized", 0, 0)


async def test_capture_refusals(gw, clock):
    refused(await gw.capture("auth_nope", D("1"), "c1"), "authorization_not_found")
    ref = await authorized(gw)
    refused(await gw.capture(ref, D("0"), "c2"), "invalid_amount")
    clock.now = T0 + timedelta(days=7)
    refused(await gw.capture(ref, D("1"), "c3"), "authorization_expired")
    assert state(gw, ref) == ("expired", 0, 0)


# -- void ----------------------------------------------------------------------------------------


async def test_void_releases_an_uncaptured_authorization_once(gw):
    ref = await authorized(gw)
    result = await gw.void(ref, "v1")
    assert (result.success, result.reference, result.error_code) == (True, ref, None)
    assert state(gw, ref) == ("voided", 0, 0)
    refused(await gw.void(ref, "v2"), "authorization_voided")
    refused(await gw.capture(ref, D("1"), "c1"), "authorization_voided")
    refused(await gw.refund(ref, D("1"), "r1"), "authorization_voided")
    assert state(gw, ref) == ("voided", 0, 0)


async def test_void_refusals(gw):
    refused(await gw.void("auth_nope", "v1"), "authorization_not_found")
    ref = await authorized(gw)
    await gw.capture(ref, D("1"), "c1")
    refused(await gw.void(ref, "v2"), "authorization_captured")
    assert state(gw, ref) == ("captured", D("1"), 0)


# -- refund --------------------------------------------------------------------------------------


async def test_partial_refunds_up_to_the_captured_amount(gw):
    ref = await authorized(gw, "100.00")
    await gw.capture(ref, D("60.00"), "c1")
    first = await gw.refund(ref, D("20.00"), "r1")
    second = await gw.refund(ref, D("40.00"), "r2")
    for r in (first, second):
        assert r.success and r.error_code is None and r.reference.startswith("ref_")
    assert state(gw, ref) == ("captured", D("60.00"), D("60.00"))
    refused(await gw.refund(ref, D("0.01"), "r3"), "amount_exceeds_captured")
    assert state(gw, ref) == ("captured", D("60.00"), D("60.00"))


async def test_refund_refusals(gw, clock):
    refused(await gw.refund("auth_nope", D("1"), "r1"), "authorization_not_found")
    ref = await authorized(gw)
    refused(await gw.refund(ref, D("1"), "r2"), "amount_exceeds_captured")  # nothing captured
    await gw.capture(ref, D("10"), "c1")
    refused(await gw.refund(ref, D("10.01"), "r3"), "amount_exceeds_captured")
    refused(await gw.refund(ref, D("-1"), "r4"), "invalid_amount")
    assert state(gw, ref) == ("captured", D("10"), 0)
    clock.now = T0 + timedelta(days=30)  # captured money stays refundable after expiry
    assert (await gw.refund(ref, D("10"), "r5")).success


# -- idempotency ---------------------------------------------------------------------------------


async def test_authorize_replays_the_first_result_for_the_same_key(gw):
    first = await gw.authorize(D("10"), "USD", "tok_approve", "same")
    assert await gw.authorize(D("10"), "USD", "tok_approve", "same") == first
    declined = await gw.authorize(D("10"), "USD", "tok_decline", "other")
    assert await gw.authorize(D("10"), "USD", "tok_decline", "other") == declined


async def test_replayed_capture_and_refund_do_not_move_money_twice(gw):
    ref = await authorized(gw, "100")
    cap = await gw.capture(ref, D("40"), "cap-key")
    assert await gw.capture(ref, D("40"), "cap-key") == cap
    rfd = await gw.refund(ref, D("15"), "ref-key")
    assert await gw.refund(ref, D("15"), "ref-key") == rfd
    assert state(gw, ref) == ("captured", D("40"), D("15"))


async def test_replayed_void_returns_its_success(gw):
    ref = await authorized(gw)
    result = await gw.void(ref, "void-key")
    assert await gw.void(ref, "void-key") == result and result.success
    assert list(gw.authorizations) == [ref] and gw.authorizations[ref].status == "voided"


async def test_a_replayed_refusal_stays_a_refusal(gw):
    ref = await authorized(gw, "10")
    refusal = await gw.capture(ref, D("11"), "k")
    assert await gw.capture(ref, D("11"), "k") == refusal
    refused(refusal, "amount_exceeds_authorization")


async def test_same_key_with_other_parameters_is_a_conflict_and_changes_nothing(gw):
    ref = await authorized(gw, "100")
    await gw.capture(ref, D("40"), "k")
    with pytest.raises(p.IdempotencyConflict):
        await gw.capture(ref, D("41"), "k")
    await gw.refund(ref, D("5"), "r")
    with pytest.raises(p.IdempotencyConflict):
        await gw.refund(ref, D("6"), "r")
    first = await gw.authorize(D("10"), "USD", "tok_approve", "a")
    with pytest.raises(p.IdempotencyConflict):
        await gw.authorize(D("11"), "USD", "tok_approve", "a")
    assert state(gw, ref) == ("captured", D("40"), D("5"))
    assert state(gw, first.reference) == ("authorized", 0, 0)


async def test_keys_are_scoped_per_operation(gw):
    ref = await authorized(gw, "100")
    assert (await gw.capture(ref, D("40"), "k")).success
    assert (await gw.refund(ref, D("40"), "k")).success
    assert state(gw, ref) == ("captured", D("40"), D("40"))


# -- with_retries --------------------------------------------------------------------------------


class Counted:
    def __init__(self, gw: p.LocalGateway, token: str) -> None:
        self.gw, self.token, self.calls = gw, token, 0

    async def __call__(self) -> p.AuthorizationResult:
        self.calls += 1
        return await self.gw.authorize(D("10"), "USD", self.token, "retry-key")


async def test_with_retries_succeeds_on_the_second_attempt_for_a_transient_failure(gw):
    call = Counted(gw, "tok_transient")
    result = await p.with_retries(call, attempts=3, base_delay=0)
    assert result.approved and call.calls == 2


async def test_with_retries_reraises_after_exhausting_attempts_with_backoff(gw):
    call = Counted(gw, "tok_gateway_down")
    started = time.monotonic()
    with pytest.raises(p.GatewayUnavailable):
        await p.with_retries(call, attempts=3, base_delay=0.02)
    assert call.calls == 3
    assert time.monotonic() - started >= 0.02 + 0.04  # slept 0.02 then 0.04


async def test_with_retries_does_not_retry_declines_or_other_errors(gw):
    decline = Counted(gw, "tok_decline")
    assert (await p.with_retries(decline, base_delay=0)).decline_code == "card_declined"
    assert decline.calls == 1
    attempts = []

    async def conflict():
        attempts.append(1)
        raise p.IdempotencyConflict("no")

    with pytest.raises(p.IdempotencyConflict):
        await p.with_retries(conflict, base_delay=0)
    assert len(attempts) == 1
    with pytest.raises(ValueError):
        await p.with_retries(conflict, attempts=0)


# -- registry ------------------------------------------------------------------------------------


def test_local_gateway_is_a_process_wide_singleton_until_reset():
    p.reset_local_gateway()
    first = p.get_gateway("local")
    assert isinstance(first, p.LocalGateway) and p.get_gateway("local") is first
    p.reset_local_gateway()
    assert p.get_gateway("local") is not first


def test_http_gateway_is_configured_from_the_environment(monkeypatch):
    monkeypatch.setenv("PAYMENT_HTTP_BASE_URL", "https://pay.example.test/")
    monkeypatch.setenv("PAYMENT_HTTP_API_KEY", "sk_test_1")
    gw = p.get_gateway("http")
    assert isinstance(gw, p.HttpGateway) and gw.base_url == "https://pay.example.test"
    assert "sk_test_1" not in repr(gw)
    monkeypatch.delenv("PAYMENT_HTTP_API_KEY")
    with pytest.raises(p.GatewayConfigurationError, match="PAYMENT_HTTP_API_KEY"):
        p.get_gateway("http")


def test_unknown_gateway_name_is_a_configuration_error():
    with pytest.raises(p.GatewayConfigurationError, match="stripe"):
        p.get_gateway("stripe")
