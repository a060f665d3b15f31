"""HttpGateway against a real local HTTP server speaking the payment REST API.

The server is a small Starlette app backed by a LocalGateway, served by uvicorn on a free
127.0.0.1 port inside the test event loop. It records every request exactly as received and can
be told to answer with a given status or to stall, to drive the adapter's failure mapping.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal as D

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ordergraph.integrations import payments as p
from tests.servers import free_port, serve

API_KEY = "sk_test_51abc"
STATUS_FOR_CODE = {p.AUTHORIZATION_NOT_FOUND: 404, p.INVALID_AMOUNT: 400}


@dataclass
class Seen:
    path: str
    authorization: str | None
    idempotency_key: str | None
    body: bytes


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class FakePaymentApi:
    """The REST API over a LocalGateway, with request recording and fault injection."""

    def __init__(self) -> None:
        self.gateway = p.LocalGateway()
        self.seen: list[Seen] = []
        self.force_status: int | None = None
        self.delay = 0.0
        ops = {"capture": self._capture, "void": self._void, "refunds": self._refund}
        routes = [Route("/v1/authorizations", self._endpoint(self._authorize), methods=["POST"])]
        routes += [
            Route(f"/v1/authorizations/{{ref}}/{name}", self._endpoint(op), methods=["POST"])
            for name, op in ops.items()
        ]
        self.app = Starlette(routes=routes)

    def _endpoint(self, op):
        async def endpoint(request: Request) -> JSONResponse:
            raw = await request.body()
            h = request.headers
            key = h.get("idempotency-key")
            self.seen.append(Seen(request.url.path, h.get("authorization"), key, raw))
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.force_status:
                return _error(self.force_status, "forced", "forced failure")
            if h.get("authorization") != f"Bearer {API_KEY}":
                return _error(401, "invalid_api_key", "Invalid API key.")
            body = json.loads(raw)
            if not isinstance(body.get("amount", ""), str):
                return _error(400, "invalid_request", "amount must be a string")
            try:
                return await op(request.path_params.get("ref"), body, key)
            except p.GatewayUnavailable as exc:
                return _error(503, "gateway_unavailable", str(exc))
            except p.IdempotencyConflict as exc:
                return _error(409, p.IDEMPOTENCY_KEY_REUSED, str(exc))

        return endpoint

    async def _authorize(self, _ref, body, key) -> JSONResponse:
        r = await self.gateway.authorize(D(body["amount"]), body["currency"], body["token"], key)
        if not r.approved:
            return _error(402, r.decline_code, r.message)
        data = {"id": r.reference, "status": "authorized", "amount": str(r.amount)}
        return JSONResponse(data | {"expires_at": r.expires_at.isoformat()})

    async def _capture(self, ref, body, key) -> JSONResponse:
        return self._reply(await self.gateway.capture(ref, D(body["amount"]), key), body)

    async def _void(self, ref, body, key) -> JSONResponse:
        return self._reply(await self.gateway.void(ref, key), body)

    async def _refund(self, ref, body, key) -> JSONResponse:
        return self._reply(await self.gateway.refund(ref, D(body["amount"]), key), body)

    @staticmethod
    def _reply(r: p.GatewayResult, body: dict) -> JSONResponse:
        if not r.success:
            return _error(STATUS_FOR_CODE.get(r.error_code, 402), r.error_code, r.message)
        return JSONResponse({"id": r.reference, "status": "succeeded"} | body)


@pytest.fixture(scope="module")
async def payment_api() -> AsyncIterator[tuple[FakePaymentApi, str]]:
    api = FakePaymentApi()
    async with serve(api.app, lifespan="off") as base_url:
        yield api, base_url


@pytest.fixture
def api(payment_api) -> FakePaymentApi:
    fake, _ = payment_api
    fake.gateway = p.LocalGateway()  # fresh state and idempotency keys for every test
    fake.seen.clear()
    fake.force_status, fake.delay = None, 0.0
    return fake


@pytest.fixture
def gw(payment_api, api) -> p.HttpGateway:
    return p.HttpGateway(payment_api[1], API_KEY, timeout=5)


async def test_approved_authorization_and_the_request_the_server_received(gw, api):
    result = await gw.authorize(D("25.50"), "USD", "tok_approve", "order-1-auth")
    assert isinstance(gw, p.PaymentGateway)
    assert result.approved and result.decline_code is None
    assert result.reference.startswith("auth_") and result.amount == D("25.50")
    assert result.expires_at.tzinfo == UTC
    assert result.expires_at == api.gateway.authorization(result.reference).expires_at
    [seen] = api.seen
    assert (seen.path, seen.authorization, seen.idempotency_key) == (
        "/v1/authorizations", f"Bearer {API_KEY}", "order-1-auth",
    )
    assert json.loads(seen.body) == {"amount": "25.50", "currency": "USD", "token": "tok_approve"}


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("tok_decline", "card_declined"),
        ("tok_insufficient_funds", "insufficient_funds"),
        ("tok_x", "invalid_token"),
    ],
)
async def test_a_402_decline_becomes_a_declined_result(gw, token, code):
    result = await gw.authorize(D("10"), "USD", token, f"k-{token}")
    assert (result.approved, result.reference, result.expires_at) == (False, None, None)
    assert (result.decline_code, result.amount) == (code, D("10")) and result.message


async def test_capture_and_refund_send_amounts_as_decimal_strings(gw, api):
    ref = (await gw.authorize(D("100.00"), "EUR", "tok_visa", "a1")).reference
    cap = await gw.capture(ref, D("10.10"), "c1")
    again = await gw.capture(ref, D("1E+1"), "c2")  # exponent form goes out as plain "10"
    rfd = await gw.refund(ref, D("2.5"), "r1")
    assert cap.success and cap.reference.startswith("cap_") and again.success
    assert rfd.success and rfd.reference.startswith("ref_") and rfd.error_code is None
    bodies = [(s.path, s.idempotency_key, json.loads(s.body)) for s in api.seen[1:]]
    assert bodies == [
        (f"/v1/authorizations/{ref}/capture", "c1", {"amount": "10.10"}),
        (f"/v1/authorizations/{ref}/capture", "c2", {"amount": "10"}),
        (f"/v1/authorizations/{ref}/refunds", "r1", {"amount": "2.5"}),
    ]
    assert all(s.authorization == f"Bearer {API_KEY}" for s in api.seen)
    state = api.gateway.authorization(ref)
    assert (state.captured, state.refunded) == (D("20.10"), D("2.5"))


async def test_refusals_map_to_failed_results_with_the_code(gw, api):
    ref = (await gw.authorize(D("10"), "USD", "tok_approve", "a2")).reference
    for result, code in [
        (await gw.capture(ref, D("10.01"), "c1"), "amount_exceeds_authorization"),
        (await gw.refund(ref, D("1"), "r1"), "amount_exceeds_captured"),
        (await gw.capture("auth_missing", D("1"), "c2"), "authorization_not_found"),
        (await gw.capture(ref, D("0"), "c3"), "invalid_amount"),
    ]:
        assert (result.success, result.reference, result.error_code) == (False, None, code), result
    voided = await gw.void(ref, "v1")
    assert (voided.success, voided.reference) == (True, ref)
    assert json.loads(api.seen[-1].body) == {} and api.seen[-1].path.endswith("/void")
    assert (await gw.void(ref, "v2")).error_code == "authorization_voided"


async def test_replayed_key_returns_the_first_result_and_a_changed_request_conflicts(gw, api):
    ref = (await gw.authorize(D("50"), "USD", "tok_approve", "a3")).reference
    first = await gw.capture(ref, D("20"), "same")
    assert await gw.capture(ref, D("20"), "same") == first
    with pytest.raises(p.IdempotencyConflict):
        await gw.capture(ref, D("21"), "same")
    assert api.gateway.authorization(ref).captured == D("20")


async def test_transient_failure_is_retried_with_the_same_key(gw, api):
    result = await p.with_retries(
        lambda: gw.authorize(D("10"), "USD", "tok_transient", "t1"), base_delay=0.01
    )
    assert result.approved
    assert [s.idempotency_key for s in api.seen] == ["t1", "t1"]


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_server_errors_raise_gateway_unavailable(gw, api, status):
    api.force_status = status
    with pytest.raises(p.GatewayUnavailable, match=str(status)):
        await gw.capture("auth_x", D("1"), "k")


async def test_an_unreadable_success_raises_gateway_unavailable(gw, api):
    api.force_status = 200  # a 200 carrying an error body and no id
    with pytest.raises(p.GatewayUnavailable, match="no id"):
        await gw.authorize(D("1"), "USD", "tok_approve", "k")
    with pytest.raises(p.GatewayUnavailable, match="no id"):
        await gw.refund("auth_x", D("1"), "k")


async def test_gateway_down_answers_503_and_exhausts_retries(gw, api):
    with pytest.raises(p.GatewayUnavailable):
        await p.with_retries(
            lambda: gw.authorize(D("1"), "USD", "tok_gateway_down", "d1"), base_delay=0
        )
    assert len(api.seen) == 3


async def test_a_server_slower_than_the_timeout_raises_gateway_unavailable(payment_api, api):
    api.delay = 0.5
    slow = p.HttpGateway(payment_api[1], API_KEY, timeout=0.1)
    with pytest.raises(p.GatewayUnavailable, match="Timeout"):
        await slow.authorize(D("1"), "USD", "tok_approve", "slow")


async def test_connection_refused_raises_gateway_unavailable():
    closed = p.HttpGateway(f"http://127.0.0.1:{free_port()}", API_KEY, timeout=2)
    with pytest.raises(p.GatewayUnavailable, match="ConnectError"):
        await closed.void("auth_x", "k")


async def test_rejected_api_key_raises_configuration_error(payment_api, api):
    wrong = p.HttpGateway(payment_api[1], "sk_wrong")
    with pytest.raises(p.GatewayConfigurationError, match="401"):
        await wrong.authorize(D("1"), "USD", "tok_approve", "k")
    assert api.seen[0].authorization == "Bearer sk_wrong"


async def test_wrong_base_url_raises_configuration_error(payment_api, api):
    lost = p.HttpGateway(payment_api[1] + "/nowhere", API_KEY)
    with pytest.raises(p.GatewayConfigurationError, match="404"):
        await lost.authorize(D("1"), "USD", "tok_approve", "k")


async def test_an_injected_client_is_used_and_left_open(payment_api, api):
    async with httpx.AsyncClient() as client:
        shared = p.HttpGateway(payment_api[1], API_KEY, client=client)
        assert (await shared.authorize(D("3"), "USD", "tok_approve", "i1")).approved
        declined = await shared.authorize(D("3"), "USD", "tok_decline", "i2")
        assert declined.decline_code == "card_declined"
        assert not client.is_closed
    assert [s.idempotency_key for s in api.seen] == ["i1", "i2"]
