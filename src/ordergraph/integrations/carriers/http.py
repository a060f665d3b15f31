"""HttpCarrier: the adapter for a generic REST carrier API, over httpx.

    POST {base}/rates                 {ship_from, ship_to, parcels, currency}
         200 {"rates": [{"service", "service_level", "amount", "currency", "transit_days",
                         "estimated_delivery"}]}
    POST {base}/labels                {ship_from, ship_to, parcels, service, reference}
         header Idempotency-Key: <key>
         200|201 {"tracking_number", "service", "service_level", "amount", "currency",
                  "format": "PDF", "document": <base64>, "estimated_delivery", "created_at"}
    POST {base}/labels/{tracking}/void   {}   200 {"tracking_number", "status": "voided"}
    GET  {base}/tracking/{tracking}           200 {"tracking_number", "events": [event, …]}
    4xx  {"error": {"code", "message"}}       the code is a CarrierErrorCode name

An address is ``{"name", "company", "line1", "line2", "city", "region", "postal_code",
"country", "phone", "email"}`` (absent parts null); a parcel ``{"weight_grams": int,
"length_cm", "width_cm", "height_cm"}`` with dimensions as decimal strings; amounts are decimal
strings, never floats; dates ``YYYY-MM-DD``; times ISO-8601 with an offset. An event is
``{"id", "tracking_number", "status": TrackingStatus name, "occurred_at", "location",
"description", "estimated_delivery"}``, and the carrier's webhook body is ``{"events": [event,
…]}``. Every request carries ``Authorization: Bearer <api_key>``.

Mapping of failures to `CarrierError` codes:

- timeouts, connection errors, 429 and 5xx, a 2xx body that cannot be read:
  CARRIER_UNAVAILABLE (retryable; retry ``buy_label`` with the same idempotency key);
- 401 and 403, an unusable base URL, a 3xx, a 4xx without an error body or with a code that is
  not a CarrierErrorCode: CARRIER_MISCONFIGURED;
- 404 without an error code on a tracking-number endpoint: UNKNOWN_TRACKING_NUMBER;
- any other 4xx: the code in its error body (ADDRESS_UNSERVICEABLE, PARCEL_TOO_HEAVY,
  LABEL_ALREADY_USED, IDEMPOTENCY_KEY_REUSED, …) with its message.

Without an injected `client` each call uses its own short-lived `httpx.AsyncClient`, so the
carrier holds no pool bound to an event loop and needs no closing.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx

from ordergraph.integrations.carriers import webhook_formats as wf
from ordergraph.integrations.carriers.base import (
    Address,
    CarrierError,
    Label,
    Parcel,
    RateQuote,
    ServiceLevel,
    TrackingStatus,
    TrackingUpdate,
)
from ordergraph.integrations.carriers.base import CarrierErrorCode as E

_CODES = {code.value: code for code in E}


def address_json(address: Address) -> dict[str, Any]:
    return asdict(address)


def parcel_json(parcel: Parcel) -> dict[str, Any]:
    def dim(value: Decimal | int) -> str:
        return format(Decimal(value), "f")

    return {
        "weight_grams": parcel.weight_grams,
        "length_cm": dim(parcel.length_cm),
        "width_cm": dim(parcel.width_cm),
        "height_cm": dim(parcel.height_cm),
    }


def parse_event(event: Any) -> TrackingUpdate:
    """One event of the generic format (tracking replies and webhooks); INVALID_WEBHOOK_PAYLOAD."""
    status = wf.field(event, "status", str)
    if status not in TrackingStatus.__members__:
        raise wf.invalid(f"unknown status {status!r}")
    return TrackingUpdate(
        carrier_event_id=wf.field(event, "id", str),
        tracking_number=wf.field(event, "tracking_number", str),
        status=TrackingStatus(status),
        occurred_at=wf.iso_time(wf.field(event, "occurred_at", str), "occurred_at"),
        location=wf.field(event, "location", str, optional=True),
        description=wf.field(event, "description", str, optional=True),
        estimated_delivery=wf.iso_date(
            wf.field(event, "estimated_delivery", str, optional=True), "estimated_delivery"
        ),
    )


class HttpCarrier:
    """`Carrier` over the REST API described in the module docstring."""

    def __init__(
        self,
        *,
        code: str,
        name: str,
        base_url: str,
        api_key: str,
        timeout: float = 10,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.code = code
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self._client = client

    def __repr__(self) -> str:  # never show the API key
        return f"HttpCarrier(code={self.code!r}, base_url={self.base_url!r})"

    async def rates(
        self, ship_from: Address, ship_to: Address, parcels: list[Parcel], currency: str
    ) -> list[RateQuote]:
        payload = {
            "ship_from": address_json(ship_from),
            "ship_to": address_json(ship_to),
            "parcels": [parcel_json(p) for p in parcels],
            "currency": currency,
        }
        reply = await self._call("POST", "/rates", payload)
        try:
            quotes = [
                RateQuote(
                    carrier=self.code,
                    service=_str(q, "service"),
                    service_level=ServiceLevel(_str(q, "service_level")),
                    amount=_amount(q["amount"]),
                    currency=_str(q, "currency"),
                    transit_days=_int(q, "transit_days"),
                    estimated_delivery=date.fromisoformat(q["estimated_delivery"]),
                )
                for q in reply["rates"]
            ]
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise _unavailable(f"unreadable rates response: {exc!r}") from exc
        return sorted(quotes, key=lambda q: (q.amount, q.transit_days))

    async def buy_label(
        self,
        ship_from: Address,
        ship_to: Address,
        parcels: list[Parcel],
        service: str,
        reference: str,
        idempotency_key: str,
    ) -> Label:
        if not idempotency_key:
            raise ValueError("an idempotency key is required")
        payload = {
            "ship_from": address_json(ship_from),
            "ship_to": address_json(ship_to),
            "parcels": [parcel_json(p) for p in parcels],
            "service": str(service),
            "reference": reference,
        }
        reply = await self._call("POST", "/labels", payload, idempotency_key=idempotency_key)
        try:
            created_at = wf.iso_time(_str(reply, "created_at"), "created_at")
            return Label(
                carrier=self.code,
                service=_str(reply, "service"),
                service_level=ServiceLevel(_str(reply, "service_level")),
                tracking_number=_str(reply, "tracking_number"),
                amount=_amount(reply["amount"]),
                currency=_str(reply, "currency"),
                document=base64.b64decode(_str(reply, "document"), validate=True),
                estimated_delivery=date.fromisoformat(reply["estimated_delivery"]),
                created_at=created_at,
                reference=reference,
                format=str(reply.get("format") or "PDF"),
            )
        except (KeyError, TypeError, ValueError, InvalidOperation, binascii.Error) as exc:
            raise _unavailable(f"unreadable label response: {exc!r}") from exc
        except CarrierError as exc:
            raise _unavailable(f"unreadable label response: {exc.message}") from exc

    async def void_label(self, tracking_number: str) -> None:
        path = f"/labels/{quote(tracking_number, safe='')}/void"
        await self._call("POST", path, {}, tracking=True)

    async def track(self, tracking_number: str) -> list[TrackingUpdate]:
        path = f"/tracking/{quote(tracking_number, safe='')}"
        reply = await self._call("GET", path, None, tracking=True)
        try:
            events = [parse_event(e) for e in reply["events"]]
        except (KeyError, TypeError) as exc:
            raise _unavailable(f"unreadable tracking response: {exc!r}") from exc
        except CarrierError as exc:
            raise _unavailable(f"unreadable tracking response: {exc.message}") from exc
        return sorted(events, key=lambda e: e.occurred_at)

    def parse_webhook(self, body: bytes) -> list[TrackingUpdate]:
        events = wf.field(wf.load_json(body), "events", list)
        return [parse_event(e) for e in events]

    # -- internals -----------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        *,
        idempotency_key: str | None = None,
        tracking: bool = False,
    ) -> dict[str, Any]:
        url = self.base_url + path
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        kwargs: dict[str, Any] = {"headers": headers}
        if payload is not None:
            kwargs["json"] = payload
        try:
            if self._client is not None:
                resp = await self._client.request(method, url, timeout=self.timeout, **kwargs)
            else:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    resp = await client.request(method, url, **kwargs)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise CarrierError(
                E.CARRIER_MISCONFIGURED, f"unusable carrier API URL {url!r}: {exc}"
            ) from exc
        except httpx.TransportError as exc:  # timeouts, connection and protocol errors
            raise _unavailable(f"{type(exc).__name__} calling {method} {path}: {exc}") from exc
        return self._interpret(resp, f"{method} {path}", tracking)

    def _interpret(self, resp: httpx.Response, what: str, tracking: bool) -> dict[str, Any]:
        status = resp.status_code
        if status in (401, 403):
            raise CarrierError(E.CARRIER_MISCONFIGURED, f"{self.name} rejected the API key")
        if status == 429 or status >= 500:
            raise _unavailable(f"{self.name} answered {status} to {what}")
        try:
            body = resp.json()
        except (ValueError, json.JSONDecodeError):
            body = None
        if 200 <= status < 300:
            if not isinstance(body, dict):
                raise _unavailable(f"unreadable {status} response to {what}")
            return body
        error = body.get("error") if isinstance(body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        if 400 <= status < 500 and code in _CODES:
            message = str(error.get("message") or code)
            raise CarrierError(_CODES[code], message)
        if status == 404 and tracking and code is None:
            raise CarrierError(E.UNKNOWN_TRACKING_NUMBER, f"{self.name} answered 404 to {what}")
        raise CarrierError(
            E.CARRIER_MISCONFIGURED,
            f"unexpected {status} from {what} (code {code!r}): is the base URL right?",
        )


def _unavailable(message: str) -> CarrierError:
    return CarrierError(E.CARRIER_UNAVAILABLE, message)


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key!r} must be a non-empty string")
    return value


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key!r} must be an integer")
    return value


def _amount(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise ValueError(f"an amount must be a decimal string, got {value!r}")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"an amount must be finite, got {value!r}")
    return amount
