"""The local carriers' webhook payloads: how each encodes tracking events, and parsing them.

econopost posts batches (UPU-like event codes, ISO-8601 times with the office's UTC offset)::

    {"carrier": "econopost",
     "events": [{"eventId": "EP-EVT-…", "itemId": "CP123456785GB", "eventCode": "EMC",
                 "eventTime": "2026-11-23T09:15:00+01:00", "office": "Paris CTC",
                 "remark": "In transit", "expectedDeliveryDate": "2026-11-27"}]}

swiftship posts one event per delivery (unix seconds, lower-case statuses)::

    {"id": "evt_…", "type": "shipment.tracking_updated", "created": 1795000000,
     "data": {"tracking_number": "SW123456789015", "status": "out_for_delivery",
              "occurred_at": 1795000000, "scan_location": "Memphis, TN, US",
              "message": "Out for delivery", "eta": "2026-11-27"}}

``remark``/``message``, ``office``/``scan_location`` and the expected date are optional (absent
or null). Anything else wrong — not JSON, a missing or mistyped field, an unknown code or
status, a time without an offset, a malformed tracking number — raises `CarrierError`
``INVALID_WEBHOOK_PAYLOAD``.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from ordergraph.integrations.carriers.base import (
    CarrierError,
    CarrierErrorCode,
    TrackingStatus,
    TrackingUpdate,
)
from ordergraph.integrations.carriers.tracking import validate_tracking_number

S = TrackingStatus
ECONOPOST_EVENT_CODES = {
    S.LABEL_CREATED: "PRE",
    S.PICKED_UP: "EMA",
    S.IN_TRANSIT: "EMC",
    S.OUT_FOR_DELIVERY: "EMG",
    S.DELIVERED: "EMI",
    S.FAILED_ATTEMPT: "EMH",
    S.DELAYED: "EMJ",
    S.EXCEPTION: "EMX",
    S.RETURNED_TO_SENDER: "EMR",
}
_ECONOPOST_STATUS = {code: status for status, code in ECONOPOST_EVENT_CODES.items()}


def invalid(message: str) -> CarrierError:
    return CarrierError(CarrierErrorCode.INVALID_WEBHOOK_PAYLOAD, message)


def load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise invalid(f"the body is not JSON: {exc}") from exc


def field(obj: Any, key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    if not isinstance(obj, dict):
        raise invalid(f"expected an object holding {key!r}")
    value = obj.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, kind) or value == "":
        raise invalid(f"{key!r} is missing or not a {getattr(kind, '__name__', kind)}")
    return value


def iso_time(value: str, key: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise invalid(f"{key!r} is not an ISO-8601 time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise invalid(f"{key!r} has no UTC offset: {value!r}")
    return parsed.astimezone(UTC)


def iso_date(value: str | None, key: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise invalid(f"{key!r} is not a date: {value!r}") from exc


def tracking_number(carrier: str, value: str) -> str:
    if not validate_tracking_number(carrier, value):
        raise invalid(f"{value!r} is not a {carrier} tracking number")
    return value


def encode_econopost(update: TrackingUpdate, local_time: datetime) -> bytes:
    event: dict[str, Any] = {
        "eventId": update.carrier_event_id,
        "itemId": update.tracking_number,
        "eventCode": ECONOPOST_EVENT_CODES[update.status],
        "eventTime": local_time.isoformat(),
        "office": update.location,
        "remark": update.description,
    }
    if update.estimated_delivery is not None:
        event["expectedDeliveryDate"] = update.estimated_delivery.isoformat()
    return json.dumps({"carrier": "econopost", "events": [event]}).encode()


def parse_econopost(body: bytes) -> list[TrackingUpdate]:
    payload = load_json(body)
    events = field(payload, "events", list)
    updates = []
    for event in events:
        code = field(event, "eventCode", str)
        if code not in _ECONOPOST_STATUS:
            raise invalid(f"unknown econopost event code {code!r}")
        updates.append(
            TrackingUpdate(
                carrier_event_id=field(event, "eventId", str),
                tracking_number=tracking_number("econopost", field(event, "itemId", str)),
                status=_ECONOPOST_STATUS[code],
                occurred_at=iso_time(field(event, "eventTime", str), "eventTime"),
                location=field(event, "office", str, optional=True),
                description=field(event, "remark", str, optional=True),
                estimated_delivery=iso_date(
                    field(event, "expectedDeliveryDate", str, optional=True),
                    "expectedDeliveryDate",
                ),
            )
        )
    return updates


def encode_swiftship(update: TrackingUpdate) -> bytes:
    seconds = int(update.occurred_at.timestamp())
    eta = update.estimated_delivery
    return json.dumps(
        {
            "id": update.carrier_event_id,
            "type": "shipment.tracking_updated",
            "created": seconds,
            "data": {
                "tracking_number": update.tracking_number,
                "status": update.status.value.lower(),
                "occurred_at": seconds,
                "scan_location": update.location,
                "message": update.description,
                "eta": None if eta is None else eta.isoformat(),
            },
        }
    ).encode()


def parse_swiftship(body: bytes) -> list[TrackingUpdate]:
    payload = load_json(body)
    if field(payload, "type", str) != "shipment.tracking_updated":
        raise invalid(f"unknown swiftship event type {payload['type']!r}")
    data = field(payload, "data", dict)
    status = field(data, "status", str)
    try:
        parsed_status = TrackingStatus(status.upper()) if status.islower() else None
    except ValueError:
        parsed_status = None
    if parsed_status is None:
        raise invalid(f"unknown swiftship status {status!r}")
    seconds = field(data, "occurred_at", int)
    if seconds < 0:
        raise invalid("'occurred_at' must be unix seconds")
    return [
        TrackingUpdate(
            carrier_event_id=field(payload, "id", str),
            tracking_number=tracking_number("swiftship", field(data, "tracking_number", str)),
            status=parsed_status,
            occurred_at=datetime.fromtimestamp(seconds, UTC),
            location=field(data, "scan_location", str, optional=True),
            description=field(data, "message", str, optional=True),
            estimated_delivery=iso_date(field(data, "eta", str, optional=True), "eta"),
        )
    ]
