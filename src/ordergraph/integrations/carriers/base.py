"""The carrier interface: addresses, parcels, quotes, labels, tracking updates, errors.

Every carrier — the built-in local ones (`ordergraph.integrations.carriers.local`) and the
REST adapter (`ordergraph.integrations.carriers.http`) — implements the `Carrier` Protocol:

    quotes = await carrier.rates(ship_from, ship_to, parcels, "USD")        # cheapest first
    label = await carrier.buy_label(ship_from, ship_to, parcels, quotes[0].service,
                                    reference="SO-1001", idempotency_key="fo-17-label")
    await carrier.void_label(label.tracking_number)                          # before pickup
    updates = await carrier.track(label.tracking_number)                     # oldest first
    updates = carrier.parse_webhook(raw_body)      # the carrier's own webhook JSON, no I/O

Every failure is a `CarrierError` with a `CarrierErrorCode` and a ``retryable`` flag. Only
``CARRIER_UNAVAILABLE`` (timeouts, 5xx, connection errors, a carrier that is down) is retryable:
call again with the *same* idempotency key and no second label is bought. Money is `Decimal`
with an ISO-4217 currency; every datetime is timezone-aware UTC; ``transit_days`` counts
business days (Monday to Friday) and ``estimated_delivery`` is a calendar `date`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, TypeVar, runtime_checkable


class ServiceLevel(StrEnum):
    ECONOMY = "ECONOMY"
    STANDARD = "STANDARD"
    EXPRESS = "EXPRESS"
    OVERNIGHT = "OVERNIGHT"


# Other names for service levels: the order model's NEXT_DAY is the carriers' OVERNIGHT.
SERVICE_LEVEL_ALIASES = {"NEXT_DAY": ServiceLevel.OVERNIGHT}


def service_level_of(value: str) -> ServiceLevel | None:
    """The ServiceLevel named `value` (its name or an alias such as NEXT_DAY), else None."""
    if value in SERVICE_LEVEL_ALIASES:
        return SERVICE_LEVEL_ALIASES[value]
    try:
        return ServiceLevel(value)
    except ValueError:
        return None


class TrackingStatus(StrEnum):
    LABEL_CREATED = "LABEL_CREATED"
    PICKED_UP = "PICKED_UP"
    IN_TRANSIT = "IN_TRANSIT"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    DELAYED = "DELAYED"
    FAILED_ATTEMPT = "FAILED_ATTEMPT"
    EXCEPTION = "EXCEPTION"
    RETURNED_TO_SENDER = "RETURNED_TO_SENDER"


# Statuses after which the parcel is in the carrier's hands: a label can no longer be voided.
SCANNED_STATUSES = frozenset(TrackingStatus) - {TrackingStatus.LABEL_CREATED}
# Statuses that end a shipment's tracking.
FINAL_STATUSES = frozenset({TrackingStatus.DELIVERED, TrackingStatus.RETURNED_TO_SENDER})


class CarrierErrorCode(StrEnum):
    ADDRESS_INVALID = "ADDRESS_INVALID"  # a required field is empty, a country is not ISO-2
    ADDRESS_UNSERVICEABLE = "ADDRESS_UNSERVICEABLE"  # valid, but the carrier does not go there
    PARCEL_INVALID = "PARCEL_INVALID"  # no parcels, or a weight or dimension that is not > 0
    PARCEL_TOO_HEAVY = "PARCEL_TOO_HEAVY"  # above the carrier's limit per parcel
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"  # unknown service, or not offered on this lane
    CURRENCY_UNSUPPORTED = "CURRENCY_UNSUPPORTED"
    CARRIER_UNAVAILABLE = "CARRIER_UNAVAILABLE"  # retryable: down, timeout, 5xx, 429
    CARRIER_MISCONFIGURED = "CARRIER_MISCONFIGURED"  # rejected API key, wrong URL, unknown code
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"  # same key, different label request
    LABEL_ALREADY_USED = "LABEL_ALREADY_USED"  # void after the carrier scanned the parcel
    UNKNOWN_TRACKING_NUMBER = "UNKNOWN_TRACKING_NUMBER"
    INVALID_WEBHOOK_PAYLOAD = "INVALID_WEBHOOK_PAYLOAD"


class CarrierError(Exception):
    """A carrier refused or failed a request. ``retryable`` only for CARRIER_UNAVAILABLE."""

    def __init__(self, code: CarrierErrorCode, message: str, retryable: bool | None = None) -> None:
        self.code = CarrierErrorCode(code)
        self.message = message
        self.retryable = (
            self.code is CarrierErrorCode.CARRIER_UNAVAILABLE if retryable is None else retryable
        )
        super().__init__(f"{self.code}: {message}")

    def __repr__(self) -> str:
        return f"CarrierError({self.code.value!r}, {self.message!r}, retryable={self.retryable})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    """A postal address; keyword arguments only, so no field is ever filled by position."""

    name: str
    company: str | None = None
    line1: str
    line2: str | None = None
    city: str
    region: str | None = None  # state, province, county
    postal_code: str
    country: str  # ISO 3166-1 alpha-2, upper case
    phone: str | None = None
    email: str | None = None

    def lines(self) -> list[str]:
        """The address as printed on a label, one line per entry, empty parts left out."""
        city_line = " ".join(p for p in (self.postal_code, self.city, self.region or "") if p)
        return [
            p
            for p in (self.name, self.company, self.line1, self.line2, city_line, self.country)
            if p
        ]


@dataclass(frozen=True, slots=True)
class Parcel:
    weight_grams: int
    length_cm: Decimal | int = 0
    width_cm: Decimal | int = 0
    height_cm: Decimal | int = 0


@dataclass(frozen=True, slots=True)
class RateQuote:
    carrier: str  # the carrier's code, e.g. "econopost"
    service: str  # the carrier's service code, passed back to buy_label
    service_level: ServiceLevel
    amount: Decimal
    currency: str
    transit_days: int  # business days
    estimated_delivery: date


@dataclass(frozen=True, slots=True)
class Label:
    carrier: str
    service: str
    service_level: ServiceLevel
    tracking_number: str
    amount: Decimal
    currency: str
    document: bytes = field(repr=False)  # the printable label, `format` says which kind
    estimated_delivery: date
    created_at: datetime  # timezone-aware UTC
    reference: str | None = None  # ours, e.g. the order number, printed on the label
    format: str = "PDF"


@dataclass(frozen=True, slots=True)
class TrackingUpdate:
    carrier_event_id: str  # unique per carrier: the key to deduplicate webhook deliveries
    tracking_number: str
    status: TrackingStatus
    occurred_at: datetime  # timezone-aware UTC
    location: str | None = None
    description: str | None = None
    estimated_delivery: date | None = None


@runtime_checkable
class Carrier(Protocol):
    """A shipping carrier. See the module docstring for the contract of each method."""

    @property
    def code(self) -> str: ...

    @property
    def name(self) -> str: ...

    async def rates(
        self, ship_from: Address, ship_to: Address, parcels: list[Parcel], currency: str
    ) -> list[RateQuote]:
        """Every service the carrier offers on this lane for these parcels, cheapest first."""
        ...

    async def buy_label(
        self,
        ship_from: Address,
        ship_to: Address,
        parcels: list[Parcel],
        service: str,
        reference: str,
        idempotency_key: str,
    ) -> Label:
        """Buy a label; the same key returns the same label, a different request refuses."""
        ...

    async def void_label(self, tracking_number: str) -> None:
        """Cancel an unused label (idempotent); LABEL_ALREADY_USED once the parcel is scanned."""
        ...

    async def track(self, tracking_number: str) -> list[TrackingUpdate]:
        """Every tracking event of the label, oldest first."""
        ...

    def parse_webhook(self, body: bytes) -> list[TrackingUpdate]:
        """The updates in a webhook body in this carrier's format; INVALID_WEBHOOK_PAYLOAD."""
        ...


T = TypeVar("T")


async def with_retries(
    call: Callable[[], Awaitable[T]], attempts: int = 3, base_delay: float = 0.2
) -> T:
    """Await `call()` up to `attempts` times, retrying only a retryable `CarrierError`.

    The delay doubles after each failure (base_delay, 2×base_delay, …); after the last attempt
    the last error is raised, and any other error propagates at once. For ``buy_label`` the
    call must reuse the same idempotency key, so a retry never buys a second label.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(attempts):
        try:
            return await call()
        except CarrierError as exc:
            if not exc.retryable or attempt == attempts - 1:
                raise
            await asyncio.sleep(base_delay * 2**attempt)
    raise AssertionError("unreachable")
