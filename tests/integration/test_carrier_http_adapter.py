"""HttpCarrier against a real local HTTP server speaking the generic carrier REST API.

The server is a small Starlette app backed by a LocalCarrier (swiftship's tariff), served by
uvicorn on a free 127.0.0.1 port inside the test event loop. It writes its JSON by hand (not
with the adapter's helpers), records every request as received, and can be told to answer
with a given status, a given body, or to stall, to drive the adapter's failure mapping.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal as D

import anyio
import httpx
import pytest
from pypdf import PdfReader
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ordergraph.integrations import carriers as c
from ordergraph.integrations.carriers import CarrierErrorCode as E
from ordergraph.integrations.carriers import TrackingStatus as S
from tests.servers import free_port, serve

API_KEY = "ck_test_123"
T0 = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
FROM = c.Address(
    name="Warehouse",
    line1="100 Dock Rd",
    city="Reno",
    postal_code="89501",
    country="US",
    region="NV",
)
TO = c.Address(
    name="Ada Buyer",
    line1="1 Main St",
    city="Austin",
    postal_code="78701",
    country="US",
    phone="+1 512 555 0100",
)
STATUS_FOR = {
    E.UNKNOWN_TRACKING_NUMBER: 404,
    E.LABEL_ALREADY_USED: 409,
    E.IDEMPOTENCY_KEY_REUSED: 409,
}


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    idempotency_key: str | None
    body: bytes


def _error(status: int, code: str, message: str = "refused") -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _address(d: dict) -> c.Address:
    return c.Address(**d)


def _parcels(items: list[dict]) -> list[c.Parcel]:
    return [
        c.Parcel(p["weight_grams"], D(p["length_cm"]), D(p["width_cm"]), D(p["height_cm"]))
        for p in items
    ]


def _event(u: c.TrackingUpdate) -> dict:
    return {
        "id": u.carrier_event_id,
        "tracking_number": u.tracking_number,
        "status": u.status.value,
        "occurred_at": u.occurred_at.isoformat(),
        "location": u.location,
        "description": u.description,
        "estimated_delivery": u.estimated_delivery and u.estimated_delivery.isoformat(),
    }


class FakeCarrierApi:
    def __init__(self) -> None:
        self.carrier = c.LocalCarrier(c.SWIFTSHIP, clock=lambda: T0)
        self.seen: list[Seen] = []
        self.force: tuple[int, bytes] | None = None
        self.delay = 0.0
        self.app = Starlette(
            routes=[
                Route("/v1/rates", self._wrap(self._rates), methods=["POST"]),
                Route("/v1/labels", self._wrap(self._labels), methods=["POST"]),
                Route("/v1/labels/{tn}/void", self._wrap(self._void), methods=["POST"]),
                Route("/v1/tracking/{tn}", self._wrap(self._track), methods=["GET"]),
            ]
        )

    def _wrap(self, op):
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            h = request.headers
            self.seen.append(
                Seen(
                    request.method,
                    request.url.path,
                    h.get("authorization"),
                    h.get("idempotency-key"),
                    raw,
                )
            )
            if self.delay:
                await anyio.sleep(self.delay)
            if self.force:
                status, body = self.force
                return Response(body, status_code=status, media_type="application/json")
            if h.get("authorization") != f"Bearer {API_KEY}":
                return _error(401, "UNAUTHENTICATED")
            try:
                return await op(request, json.loads(raw) if raw else None)
            except c.CarrierError as exc:
                return _error(STATUS_FOR.get(exc.code, 422), exc.code.value, exc.message)

        return endpoint

    async def _rates(self, request, body) -> JSONResponse:
        quotes = await self.carrier.rates(
            _address(body["ship_from"]),
            _address(body["ship_to"]),
            _parcels(body["parcels"]),
            body["currency"],
        )
        return JSONResponse(
            {
                "rates": [
                    {
                        "service": q.service,
                        "service_level": q.service_level.value,
                        "amount": str(q.amount),
                        "currency": q.currency,
                        "transit_days": q.transit_days,
                        "estimated_delivery": q.estimated_delivery.isoformat(),
                    }
                    for q in reversed(quotes)  # in no particular order: the adapter sorts
                ]
            }
        )

    async def _labels(self, request, body) -> JSONResponse:
        label = await self.carrier.buy_label(
            _address(body["ship_from"]),
            _address(body["ship_to"]),
            _parcels(body["parcels"]),
            body["service"],
            body["reference"],
            request.headers["idempotency-key"],
        )
        return JSONResponse(
            {
                "tracking_number": label.tracking_number,
                "service": label.service,
                "service_level": label.service_level.value,
                "amount": str(label.amount),
                "currency": label.currency,
                "format": "PDF",
                "document": base64.b64encode(label.document).decode(),
                "estimated_delivery": label.estimated_delivery.isoformat(),
                "created_at": label.created_at.isoformat(),
            },
            status_code=201,
        )

    async def _void(self, request, body) -> JSONResponse:
        await self.carrier.void_label(request.path_params["tn"])
        return JSONResponse({"tracking_number": request.path_params["tn"], "status": "voided"})

    async def _track(self, request, body) -> JSONResponse:
        tn = request.path_params["tn"]
        if tn not in self.carrier._labels:
            return JSONResponse({"detail": "Not Found"}, status_code=404)  # no error code
        events = await self.carrier.track(tn)
        return JSONResponse({"tracking_number": tn, "events": [_event(e) for e in events]})


@pytest.fixture(scope="module")
async def carrier_api() -> AsyncIterator[tuple[FakeCarrierApi, str]]:
    api = FakeCarrierApi()
    async with serve(api.app, lifespan="off") as base_url:
        yield api, base_url


@pytest.fixture
def api(carrier_api) -> FakeCarrierApi:
    fake, _ = carrier_api
    fake.carrier = c.LocalCarrier(c.SWIFTSHIP, clock=lambda: T0)
    fake.seen.clear()
    fake.force, fake.delay = None, 0.0
    return fake


@pytest.fixture
def http(carrier_api, api) -> c.HttpCarrier:
    return c.HttpCarrier(
        code="restship",
        name="RestShip",
        base_url=carrier_api[1] + "/v1/",
        api_key=API_KEY,
        timeout=5,
    )


async def refused(code: E, call) -> c.CarrierError:
    with pytest.raises(c.CarrierError) as info:
        await call
    assert info.value.code == code, info.value
    assert info.value.retryable is (code == E.CARRIER_UNAVAILABLE)
    return info.value


async def test_rates_request_and_reply(http, api):
    quotes = await http.rates(FROM, TO, [c.Parcel(1200, 10, D("10.5"), 10)], "USD")
    assert isinstance(http, c.Carrier)
    assert [
        (q.carrier, q.service, q.service_level, q.amount, q.transit_days, q.estimated_delivery)
        for q in quotes
    ] == [
        (
            "restship",
            "swiftship_standard",
            c.ServiceLevel.STANDARD,
            D("11.00"),
            3,
            date(2026, 11, 23),
        ),
        (
            "restship",
            "swiftship_express",
            c.ServiceLevel.EXPRESS,
            D("16.50"),
            2,
            date(2026, 11, 20),
        ),
        (
            "restship",
            "swiftship_overnight",
            c.ServiceLevel.OVERNIGHT,
            D("34.00"),
            1,
            date(2026, 11, 19),
        ),
    ]
    [seen] = api.seen
    assert (seen.method, seen.path, seen.authorization, seen.idempotency_key) == (
        "POST",
        "/v1/rates",
        f"Bearer {API_KEY}",
        None,
    )
    assert json.loads(seen.body) == {
        "ship_from": {
            "name": "Warehouse",
            "company": None,
            "line1": "100 Dock Rd",
            "line2": None,
            "city": "Reno",
            "region": "NV",
            "postal_code": "89501",
            "country": "US",
            "phone": None,
            "email": None,
        },
        "ship_to": {
            "name": "Ada Buyer",
            "company": None,
            "line1": "1 Main St",
            "line2": None,
            "city": "Austin",
            "region": None,
            "postal_code": "78701",
            "country": "US",
            "phone": "+1 512 555 0100",
            "email": None,
        },
        "parcels": [
            {"weight_grams": 1200, "length_cm": "10", "width_cm": "10.5", "height_cm": "10"}
        ],
        "currency": "USD",
    }


async def test_buy_label_sends_the_idempotency_key_and_decodes_the_pdf(http, api):
    label = await http.buy_label(FROM, TO, [c.Parcel(900)], "swiftship_express", "SO-5", "fo-5")
    again = await http.buy_label(FROM, TO, [c.Parcel(900)], "swiftship_express", "SO-5", "fo-5")
    assert again == label
    assert (label.carrier, label.service, label.amount, label.currency, label.reference) == (
        "restship",
        "swiftship_express",
        D("11.00"),
        "USD",
        "SO-5",
    )
    assert (label.created_at, label.estimated_delivery, label.format) == (
        T0,
        date(2026, 11, 20),
        "PDF",
    )
    assert label.document == api.carrier.label_record(label.tracking_number).label.document
    assert len(PdfReader(io.BytesIO(label.document)).pages) == 1
    assert [(s.path, s.idempotency_key) for s in api.seen] == [("/v1/labels", "fo-5")] * 2
    assert json.loads(api.seen[0].body)["service"] == "swiftship_express"
    assert json.loads(api.seen[0].body)["reference"] == "SO-5"
    await refused(
        E.IDEMPOTENCY_KEY_REUSED,
        http.buy_label(FROM, TO, [c.Parcel(901)], "swiftship_express", "SO-5", "fo-5"),
    )
    assert len(api.carrier._labels) == 1


async def test_void_and_track(http, api):
    label = await http.buy_label(FROM, TO, [c.Parcel(900)], "EXPRESS", "SO-6", "fo-6")
    n = label.tracking_number
    api.carrier.webhook_event(n, S.PICKED_UP, location="Reno, NV", occurred_at=T0)
    events = await http.track(n)
    assert [(e.status, e.occurred_at, e.tracking_number) for e in events] == [
        (S.LABEL_CREATED, T0, n),
        (S.PICKED_UP, T0, n),
    ]
    assert events[0].estimated_delivery == date(2026, 11, 20) and events[1].location == "Reno, NV"
    assert api.seen[-1].method == "GET" and api.seen[-1].path == f"/v1/tracking/{n}"
    err = await refused(E.LABEL_ALREADY_USED, http.void_label(n))
    assert "scanned" in err.message
    other = await http.buy_label(FROM, TO, [c.Parcel(900)], "EXPRESS", "SO-7", "fo-7")
    assert await http.void_label(other.tracking_number) is None
    assert api.carrier.label_record(other.tracking_number).voided
    assert (api.seen[-1].path, json.loads(api.seen[-1].body)) == (
        f"/v1/labels/{other.tracking_number}/void",
        {},
    )


async def test_refusals_carry_the_api_codes(http, api):
    await refused(
        E.ADDRESS_UNSERVICEABLE,
        http.rates(
            FROM,
            c.Address(name="A", line1="1 ul.", city="Kraków", postal_code="31-147", country="PL"),
            [c.Parcel(1)],
            "USD",
        ),
    )
    await refused(E.PARCEL_TOO_HEAVY, http.rates(FROM, TO, [c.Parcel(30_001)], "USD"))
    await refused(
        E.SERVICE_UNAVAILABLE, http.buy_label(FROM, TO, [c.Parcel(1)], "ECONOMY", "S", "k")
    )
    await refused(E.UNKNOWN_TRACKING_NUMBER, http.void_label("SW123456789015"))  # coded 404
    await refused(E.UNKNOWN_TRACKING_NUMBER, http.track("SW123456789015"))  # bare 404


async def test_a_wrong_api_key_is_a_configuration_error(carrier_api, api):
    bad = c.HttpCarrier(code="r", name="R", base_url=carrier_api[1] + "/v1", api_key="wrong")
    err = await refused(E.CARRIER_MISCONFIGURED, bad.rates(FROM, TO, [c.Parcel(1)], "USD"))
    assert "wrong" not in err.message
    wrong_path = c.HttpCarrier(code="r", name="R", base_url=carrier_api[1] + "/v2", api_key=API_KEY)
    await refused(E.CARRIER_MISCONFIGURED, wrong_path.rates(FROM, TO, [c.Parcel(1)], "USD"))


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_server_errors_are_retryable_unavailability(http, api, status):
    api.force = (status, b'{"error": {"code": "PARCEL_TOO_HEAVY", "message": "x"}}')
    err = await refused(
        E.CARRIER_UNAVAILABLE, http.buy_label(FROM, TO, [c.Parcel(1)], "EXPRESS", "S", "k")
    )
    assert str(status) in err.message


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (200, b"not json", E.CARRIER_UNAVAILABLE),
        (200, b'{"rates": [{"service": "x"}]}', E.CARRIER_UNAVAILABLE),
        (
            200,
            b'{"rates": [{"service": "x", "service_level": "STANDARD", "amount": 1.5, '
            b'"currency": "USD", "transit_days": 1, "estimated_delivery": "2026-11-19"}]}',
            E.CARRIER_UNAVAILABLE,
        ),  # a float amount is refused
        (422, b'{"error": {"code": "SOMETHING_NEW"}}', E.CARRIER_MISCONFIGURED),
        (400, b"<html>bad request</html>", E.CARRIER_MISCONFIGURED),
        (302, b"", E.CARRIER_MISCONFIGURED),
        (
            409,
            b'{"error": {"code": "IDEMPOTENCY_KEY_REUSED", "message": "m"}}',
            E.IDEMPOTENCY_KEY_REUSED,
        ),
    ],
)
async def test_odd_replies(http, api, status, body, code):
    api.force = (status, body)
    await refused(code, http.rates(FROM, TO, [c.Parcel(1)], "USD"))


async def test_unreadable_label_and_tracking_replies_are_unavailability(http, api):
    api.force = (
        201,
        b'{"tracking_number": "X1", "service": "s", "service_level": "EXPRESS", '
        b'"amount": "1.00", "currency": "USD", "document": "***", '
        b'"estimated_delivery": "2026-11-20", "created_at": "2026-11-18T10:00:00Z"}',
    )
    await refused(
        E.CARRIER_UNAVAILABLE, http.buy_label(FROM, TO, [c.Parcel(1)], "EXPRESS", "S", "k")
    )
    api.force = (
        200,
        b'{"events": [{"id": "e", "tracking_number": "X1", "status": "LOST", '
        b'"occurred_at": "2026-11-18T10:00:00Z"}]}',
    )
    await refused(E.CARRIER_UNAVAILABLE, http.track("X1"))


async def test_a_stalled_server_times_out_as_unavailable(carrier_api, api):
    api.delay = 1.0
    slow = c.HttpCarrier(
        code="r", name="R", base_url=carrier_api[1] + "/v1", api_key=API_KEY, timeout=0.2
    )
    err = await refused(E.CARRIER_UNAVAILABLE, slow.track("X1"))
    assert "Timeout" in err.message


async def test_a_closed_port_and_a_bad_url():
    closed = c.HttpCarrier(
        code="r", name="R", base_url=f"http://127.0.0.1:{free_port()}", api_key=API_KEY, timeout=2
    )
    await refused(E.CARRIER_UNAVAILABLE, closed.track("X1"))
    bad = c.HttpCarrier(code="r", name="R", base_url="ftp://carrier.example", api_key=API_KEY)
    await refused(E.CARRIER_MISCONFIGURED, bad.track("X1"))


async def test_an_injected_client_is_used_and_left_open(carrier_api, api):
    async with httpx.AsyncClient() as client:
        http = c.HttpCarrier(
            code="r", name="R", base_url=carrier_api[1] + "/v1", api_key=API_KEY, client=client
        )
        assert len(await http.rates(FROM, TO, [c.Parcel(1)], "USD")) == 3
        assert not client.is_closed


def test_generic_webhook_format():
    http = c.HttpCarrier(code="r", name="R", base_url="http://x", api_key="k")
    body = json.dumps(
        {
            "events": [
                {
                    "id": "e1",
                    "tracking_number": "R1",
                    "status": "OUT_FOR_DELIVERY",
                    "occurred_at": "2026-11-20T08:00:00-05:00",
                    "location": "Austin",
                    "description": None,
                    "estimated_delivery": "2026-11-20",
                },
            ]
        }
    ).encode()
    assert http.parse_webhook(body) == [
        c.TrackingUpdate(
            "e1",
            "R1",
            S.OUT_FOR_DELIVERY,
            datetime(2026, 11, 20, 13, tzinfo=UTC),
            "Austin",
            None,
            date(2026, 11, 20),
        )
    ]
    for bad in [
        b"{}",
        b'{"events": [{"id": "e1"}]}',
        b"nope",
        body.replace(b"OUT_FOR_DELIVERY", b"out_for_delivery"),
    ]:
        with pytest.raises(c.CarrierError) as info:
            http.parse_webhook(bad)
        assert info.value.code == E.INVALID_WEBHOOK_PAYLOAD
