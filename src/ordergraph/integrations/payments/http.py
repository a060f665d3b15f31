"""HttpGateway: the adapter for a Stripe-like REST payment API, over httpx.

    POST {base}/v1/authorizations               {amount, currency, token}
         200 {"id", "status": "authorized", "amount", "expires_at"}
    POST {base}/v1/authorizations/{id}/capture  {amount}  200 {"id", "status", "amount"}
    POST {base}/v1/authorizations/{id}/void     {}        200 {"id", "status"}
    POST {base}/v1/authorizations/{id}/refunds  {amount}  200 {"id", "status", "amount"}
    4xx  {"error": {"code", "message"}}                    a decline or refusal

Every request carries ``Authorization: Bearer <api_key>`` and ``Idempotency-Key: <key>``;
amounts travel as decimal strings, never floats. Mapping of failures:

- timeouts, connection errors, 429 and 5xx, a 2xx body that cannot be read: `GatewayUnavailable`
  (retry with the same idempotency key);
- 401 and 403, an unusable base URL, a 4xx or 3xx without an error body (wrong endpoint):
  `GatewayConfigurationError`;
- a 4xx whose error code is ``idempotency_key_reused``: `IdempotencyConflict`;
- any other 4xx with an error body: a declined `AuthorizationResult` / failed `GatewayResult`
  carrying the API's code and message.

Without an injected `client` each call uses its own short-lived `httpx.AsyncClient`, so the
gateway holds no connection pool bound to an event loop and needs no closing; inject a client
(which the caller owns and closes) to reuse connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx

from ordergraph.integrations.payments import base as b


@dataclass(frozen=True, slots=True)
class _Refusal:
    code: str
    message: str


def _amount_str(amount: Decimal) -> str:
    if not isinstance(amount, Decimal):
        raise TypeError(f"amount must be a Decimal, not {type(amount).__name__}")
    return format(amount, "f")


def _parse_amount(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"amount must be a decimal string, got {value!r}")
    return Decimal(str(value))


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _reply_id(reply: dict[str, Any], path: str) -> str:
    if not isinstance(reply.get("id"), str) or not reply["id"]:
        raise b.GatewayUnavailable(f"unreadable response to {path}, no id: {reply!r}")
    return reply["id"]


def _refusal(body: Any) -> _Refusal | None:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return None
    return _Refusal(error["code"], str(error.get("message") or error["code"]))


class HttpGateway:
    """`PaymentGateway` over the REST API described in the module docstring."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 10,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self._client = client

    def __repr__(self) -> str:  # never show the API key
        return f"HttpGateway(base_url={self.base_url!r}, timeout={self.timeout!r})"

    async def authorize(
        self, amount: Decimal, currency: str, token: str, idempotency_key: str
    ) -> b.AuthorizationResult:
        payload = {"amount": _amount_str(amount), "currency": currency, "token": token}
        path = "/v1/authorizations"
        reply = await self._post(path, payload, idempotency_key)
        if isinstance(reply, _Refusal):
            return b.AuthorizationResult(False, None, amount, None, reply.code, reply.message)
        reference = _reply_id(reply, path)
        try:
            return b.AuthorizationResult(
                approved=True,
                reference=reference,
                amount=_parse_amount(reply["amount"]),
                expires_at=_parse_time(reply.get("expires_at")),
                decline_code=None,
                message=str(reply.get("message") or "Approved."),
            )
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise b.GatewayUnavailable(f"unreadable authorization response: {exc}") from exc

    async def capture(
        self, authorization_ref: str, amount: Decimal, idempotency_key: str
    ) -> b.GatewayResult:
        return await self._act(authorization_ref, "capture", idempotency_key, "Captured.", amount)

    async def void(self, authorization_ref: str, idempotency_key: str) -> b.GatewayResult:
        return await self._act(authorization_ref, "void", idempotency_key, "Voided.")

    async def refund(
        self, authorization_ref: str, amount: Decimal, idempotency_key: str
    ) -> b.GatewayResult:
        return await self._act(authorization_ref, "refunds", idempotency_key, "Refunded.", amount)

    # -- internals -----------------------------------------------------------------------------

    async def _act(
        self, reference: str, action: str, key: str, message: str, amount: Decimal | None = None
    ) -> b.GatewayResult:
        """POST to one authorization's `action` endpoint and read the reply as a GatewayResult."""
        payload = {} if amount is None else {"amount": _amount_str(amount)}
        path = f"/v1/authorizations/{quote(reference, safe='')}/{action}"
        reply = await self._post(path, payload, key)
        if isinstance(reply, _Refusal):
            return b.GatewayResult(False, None, reply.code, reply.message)
        message = str(reply.get("message") or message)
        return b.GatewayResult(True, _reply_id(reply, path), None, message)

    async def _post(
        self, path: str, payload: dict[str, str], key: str
    ) -> dict[str, Any] | _Refusal:
        url = self.base_url + path
        headers = {"Authorization": f"Bearer {self._api_key}", "Idempotency-Key": key}
        try:
            if self._client is not None:
                resp = await self._client.post(
                    url, json=payload, headers=headers, timeout=self.timeout
                )
            else:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    resp = await client.post(url, json=payload, headers=headers)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise b.GatewayConfigurationError(f"unusable payment API URL {url!r}: {exc}") from exc
        except httpx.TransportError as exc:  # timeouts, connection and protocol errors
            raise b.GatewayUnavailable(f"{type(exc).__name__} calling {path}: {exc}") from exc
        return self._interpret(resp, path)

    @staticmethod
    def _interpret(resp: httpx.Response, path: str) -> dict[str, Any] | _Refusal:
        status = resp.status_code
        if status in (401, 403):
            raise b.GatewayConfigurationError(f"payment API rejected the credentials ({status})")
        if status == 429 or status >= 500:
            raise b.GatewayUnavailable(f"payment API answered {status} to {path}")
        try:
            body = resp.json()
        except ValueError:
            body = None
        if 200 <= status < 300:
            if not isinstance(body, dict):
                raise b.GatewayUnavailable(f"unreadable {status} response to {path}")
            return body
        refusal = _refusal(body) if 400 <= status < 500 else None
        if refusal is None:
            raise b.GatewayConfigurationError(
                f"unexpected {status} from {path}: is the base URL right?"
            )
        if refusal.code == b.IDEMPOTENCY_KEY_REUSED:
            raise b.IdempotencyConflict(refusal.message)
        return refusal
