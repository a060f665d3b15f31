"""LocalCarrier: built-in carriers that behave like real ones, with their state in the process.

`LocalCarrier(profile)` quotes from its tariff (`profiles.ECONOPOST`, `profiles.SWIFTSHIP`),
buys labels (real PDFs with the tracking number's barcode), voids them until the parcel is
scanned, answers tracking queries and parses its own webhook format. It is the embedded
default, what the tests and the demo run against; `registry.get_carrier` hands out one
instance per carrier per process.

Failure triggers, on the ship-to address's ``line1`` (case-insensitive), as for the local
payment gateway's card tokens:

- ``[carrier-down]``: every call raises CARRIER_UNAVAILABLE (retryable);
- ``[carrier-flaky]``: the FIRST buy_label for an idempotency key raises CARRIER_UNAVAILABLE;
  a retry with the same key buys the label;
- ``[unserviceable]``: ADDRESS_UNSERVICEABLE, as for a country the carrier does not serve.

Setting ``carrier.down = True`` makes every call (void and track too) raise
CARRIER_UNAVAILABLE until it is set back to False: an outage.

Validation, in this order: both addresses (ADDRESS_INVALID: an empty name, line1, city or
postal code, or a country that is not two upper-case letters), the parcels (PARCEL_INVALID:
none, a weight that is not a positive int, a negative dimension; PARCEL_TOO_HEAVY: above the
carrier's limit per parcel), the currency (CURRENCY_UNSUPPORTED), the lane
(ADDRESS_UNSERVICEABLE: a country the carrier does not serve, either end), the service
(SERVICE_UNAVAILABLE: unknown, or not offered in the lane's zone). `rates` returns every service
offered on the lane (possibly none), cheapest first.

`buy_label` accepts the carrier's service code (``RateQuote.service``) or a `ServiceLevel`
(``NEXT_DAY``, the order model's name, is OVERNIGHT). The
same idempotency key with the same request returns the same `Label`; with a different request
it raises IDEMPOTENCY_KEY_REUSED. Buying writes a LABEL_CREATED tracking event.

The simulator: `webhook_event(tracking_number, status, ...)` records a carrier scan (so
`track` shows it and `void_label` refuses with LABEL_ALREADY_USED after any scan) and returns
the JSON body the carrier would POST to our webhook. Giving an ``event_id`` already recorded
returns the same body without recording it twice: a redelivery.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from ordergraph.integrations.carriers import webhook_formats as wf
from ordergraph.integrations.carriers.base import (
    SCANNED_STATUSES,
    Address,
    CarrierError,
    Label,
    Parcel,
    RateQuote,
    TrackingStatus,
    TrackingUpdate,
    service_level_of,
)
from ordergraph.integrations.carriers.base import CarrierErrorCode as E
from ordergraph.integrations.carriers.checks import (
    add_business_days,
    billable_grams,
    check_address,
)
from ordergraph.integrations.carriers.documents import render_label
from ordergraph.integrations.carriers.profiles import (
    ECONOPOST,
    FX_FROM_USD,
    CarrierProfile,
    ServiceSpec,
    Zone,
    zone_of,
)
from ordergraph.integrations.carriers.tracking import (
    s10_number,
    swiftship_number,
    validate_tracking_number,
)

DOWN_MARKER = "[carrier-down]"
FLAKY_MARKER = "[carrier-flaky]"
UNSERVICEABLE_MARKER = "[unserviceable]"
_CENT = Decimal("0.01")

DEFAULT_DESCRIPTIONS = {
    TrackingStatus.LABEL_CREATED: "Shipping label created",
    TrackingStatus.PICKED_UP: "Picked up by the carrier",
    TrackingStatus.IN_TRANSIT: "In transit",
    TrackingStatus.OUT_FOR_DELIVERY: "Out for delivery",
    TrackingStatus.DELIVERED: "Delivered",
    TrackingStatus.DELAYED: "Delayed",
    TrackingStatus.FAILED_ATTEMPT: "Delivery attempted, nobody available",
    TrackingStatus.EXCEPTION: "Shipment exception",
    TrackingStatus.RETURNED_TO_SENDER: "Returned to sender",
}


@dataclass(frozen=True, slots=True)
class LabelRecord:
    """A snapshot of one label held by a LocalCarrier."""

    label: Label
    ship_from: Address
    ship_to: Address
    parcels: tuple[Parcel, ...]
    voided: bool
    events: tuple[TrackingUpdate, ...]  # oldest first

    @property
    def status(self) -> TrackingStatus:
        """The status of the latest event in time."""
        return self.events[-1].status


@dataclass(slots=True)
class _State:
    label: Label
    ship_from: Address
    ship_to: Address
    parcels: tuple[Parcel, ...]
    voided: bool = False
    events: list[TrackingUpdate] = field(default_factory=list)
    bodies: dict[str, bytes] = field(default_factory=dict)  # event id → webhook body


def _fail(code: E, message: str) -> CarrierError:
    return CarrierError(code, message)


class LocalCarrier:
    """An in-process `Carrier` following a `CarrierProfile`; see the module docstring."""

    def __init__(
        self,
        profile: CarrierProfile = ECONOPOST,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.profile = profile
        self.code = profile.code
        self.name = profile.name
        self.down = False
        self._clock = clock or (lambda: datetime.now(UTC))
        self._labels: dict[str, _State] = {}
        self._replies: dict[str, tuple[Hashable, Label]] = {}
        self._flaky_failed: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalCarrier({self.code!r})"

    # -- inspection ----------------------------------------------------------------------------

    def label_record(self, tracking_number: str) -> LabelRecord | None:
        """The state of a label bought here, or None."""
        with self._lock:
            state = self._labels.get(tracking_number)
            if state is None:
                return None
            return LabelRecord(
                state.label,
                state.ship_from,
                state.ship_to,
                state.parcels,
                state.voided,
                tuple(sorted(state.events, key=lambda e: e.occurred_at)),
            )

    def tracking_url(self, tracking_number: str) -> str:
        """The carrier's public tracking page for a tracking number."""
        return self.profile.tracking_url.format(tracking_number=tracking_number)

    def service(self, service: str) -> ServiceSpec:
        """The service spec for a service code or a ServiceLevel (NEXT_DAY is OVERNIGHT);
        SERVICE_UNAVAILABLE when the carrier has no such service."""
        for spec in self.profile.services:
            if service == spec.code:
                return spec
        level = service_level_of(str(service))
        for spec in self.profile.services:
            if level is spec.level:
                return spec
        offered = ", ".join(s.code for s in self.profile.services)
        raise _fail(E.SERVICE_UNAVAILABLE, f"{self.name} has no service {service!r} ({offered})")

    # -- Carrier -------------------------------------------------------------------------------

    async def rates(
        self, ship_from: Address, ship_to: Address, parcels: list[Parcel], currency: str
    ) -> list[RateQuote]:
        zone, weights, fx = self._check_request(ship_from, ship_to, parcels, currency)
        today = self._clock().astimezone(UTC).date()
        quotes = [
            self._quote(spec, zone, weights, currency, fx, today)
            for spec in self.profile.services
            if zone in spec.prices
        ]
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
        params = (ship_from, ship_to, tuple(parcels), str(service), reference)
        with self._lock:
            if self.down:  # a carrier that is down answers nothing, not even a replay
                raise _fail(E.CARRIER_UNAVAILABLE, f"{self.name} is unavailable")
            stored = self._replies.get(idempotency_key)
            if stored is not None:
                if stored[0] != params:
                    raise _fail(
                        E.IDEMPOTENCY_KEY_REUSED,
                        f"idempotency key {idempotency_key!r} was used for another label",
                    )
                return stored[1]
            if FLAKY_MARKER in ship_to.line1.lower() and idempotency_key not in self._flaky_failed:
                self._flaky_failed.add(idempotency_key)
                raise _fail(E.CARRIER_UNAVAILABLE, f"{self.name} timed out; retry with the key")
            label = self._buy(ship_from, ship_to, parcels, str(service), reference)
            self._replies[idempotency_key] = (params, label)
            return label

    async def void_label(self, tracking_number: str) -> None:
        with self._lock:
            state = self._state(tracking_number)
            if state.voided:
                return
            scanned = [e for e in state.events if e.status in SCANNED_STATUSES]
            if scanned:
                raise _fail(
                    E.LABEL_ALREADY_USED,
                    f"{tracking_number} was scanned ({scanned[0].status}) and cannot be voided",
                )
            state.voided = True

    async def track(self, tracking_number: str) -> list[TrackingUpdate]:
        with self._lock:
            return sorted(self._state(tracking_number).events, key=lambda e: e.occurred_at)

    def parse_webhook(self, body: bytes) -> list[TrackingUpdate]:
        if self.code == "swiftship":
            return wf.parse_swiftship(body)
        return wf.parse_econopost(body)

    # -- simulator -----------------------------------------------------------------------------

    def webhook_event(
        self,
        tracking_number: str,
        status: TrackingStatus,
        *,
        location: str | None,
        occurred_at: datetime,
        event_id: str | None = None,
        estimated_delivery: date | None = None,
        description: str | None = None,
    ) -> bytes:
        """Record a carrier scan and return the webhook body announcing it (module docstring).

        ``occurred_at`` must be timezone-aware; econopost writes it with its own UTC offset,
        swiftship as unix seconds (so sub-second precision is dropped).
        """
        if occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        status = TrackingStatus(status)
        with self._lock:
            state = self._labels.get(tracking_number)
            if state is None:
                raise _fail(E.UNKNOWN_TRACKING_NUMBER, f"no {self.name} label {tracking_number}")
            if event_id is not None and event_id in state.bodies:
                return state.bodies[event_id]
            if state.voided:
                raise ValueError(f"{tracking_number} was voided: the carrier never scans it")
            update = TrackingUpdate(
                carrier_event_id=event_id or self._event_id(),
                tracking_number=tracking_number,
                status=status,
                occurred_at=occurred_at.astimezone(UTC),
                location=location,
                description=description or DEFAULT_DESCRIPTIONS[status],
                estimated_delivery=estimated_delivery,
            )
            if self.code == "swiftship":
                update = replace(update, occurred_at=update.occurred_at.replace(microsecond=0))
                body = wf.encode_swiftship(update)
            else:
                body = wf.encode_econopost(update, occurred_at)
            state.events.append(update)
            state.bodies[update.carrier_event_id] = body
            return body

    # -- internals -----------------------------------------------------------------------------

    def _event_id(self) -> str:
        prefix = "evt_" if self.code == "swiftship" else "EP-EVT-"
        return prefix + secrets.token_hex(8)

    def _state(self, tracking_number: str) -> _State:
        if self.down:
            raise _fail(E.CARRIER_UNAVAILABLE, f"{self.name} is unavailable")
        state = self._labels.get(tracking_number)
        if state is None:
            raise _fail(E.UNKNOWN_TRACKING_NUMBER, f"no {self.name} label {tracking_number!r}")
        return state

    def _check_request(
        self, ship_from: Address, ship_to: Address, parcels: Sequence[Parcel], currency: str
    ) -> tuple[Zone, list[int], Decimal]:
        if self.down or DOWN_MARKER in ship_to.line1.lower():
            raise _fail(E.CARRIER_UNAVAILABLE, f"{self.name} is unavailable")
        check_address("ship-from", ship_from)
        check_address("ship-to", ship_to)
        if not parcels:
            raise _fail(E.PARCEL_INVALID, "at least one parcel is needed")
        weights = [billable_grams(self.profile, p) for p in parcels]
        fx = FX_FROM_USD.get(currency)
        if fx is None:
            raise _fail(E.CURRENCY_UNSUPPORTED, f"{self.name} does not quote in {currency!r}")
        for role, address in (("ship-from", ship_from), ("ship-to", ship_to)):
            if address.country not in self.profile.countries:
                raise _fail(
                    E.ADDRESS_UNSERVICEABLE,
                    f"{self.name} does not serve the {role} country {address.country}",
                )
        if UNSERVICEABLE_MARKER in ship_to.line1.lower():
            raise _fail(E.ADDRESS_UNSERVICEABLE, f"{self.name} does not deliver to this address")
        return zone_of(ship_from.country, ship_to.country), weights, fx

    def _quote(
        self,
        spec: ServiceSpec,
        zone: Zone,
        weights: list[int],
        currency: str,
        fx: Decimal,
        today: date,
    ) -> RateQuote:
        usd = sum((spec.price_usd(zone, w) or Decimal(0) for w in weights), Decimal(0))
        days = spec.transit_days[zone]
        return RateQuote(
            carrier=self.code,
            service=spec.code,
            service_level=spec.level,
            amount=(usd * fx).quantize(_CENT, ROUND_HALF_UP),
            currency=currency,
            transit_days=days,
            estimated_delivery=add_business_days(today, days),
        )

    def _new_tracking_number(self, spec: ServiceSpec, ship_from: Address) -> str:
        while True:
            if self.code == "swiftship":
                number = swiftship_number(secrets.randbelow(10**11))
            else:
                serial = secrets.randbelow(10**8)
                number = s10_number(spec.s10_indicator, serial, ship_from.country)
            if number not in self._labels:
                assert validate_tracking_number(self.code, number)
                return number

    def _buy(
        self,
        ship_from: Address,
        ship_to: Address,
        parcels: list[Parcel],
        service: str,
        reference: str,
    ) -> Label:
        zone, weights, fx = self._check_request(ship_from, ship_to, parcels, "USD")
        spec = self.service(service)
        if zone not in spec.prices:
            raise _fail(E.SERVICE_UNAVAILABLE, f"{spec.name} is not offered on {zone} lanes")
        now = self._clock().astimezone(UTC)
        quote = self._quote(spec, zone, weights, "USD", fx, now.date())
        number = self._new_tracking_number(spec, ship_from)
        document = render_label(
            carrier_name=self.name,
            service_name=spec.name,
            tracking_number=number,
            ship_from=ship_from,
            ship_to=ship_to,
            parcels=parcels,
            reference=reference,
            ship_date=now.date(),
            estimated_delivery=quote.estimated_delivery,
        )
        label = Label(
            carrier=self.code,
            service=spec.code,
            service_level=spec.level,
            tracking_number=number,
            amount=quote.amount,
            currency=quote.currency,
            document=document,
            estimated_delivery=quote.estimated_delivery,
            created_at=now,
            reference=reference,
        )
        created = TrackingUpdate(
            carrier_event_id=self._event_id(),
            tracking_number=number,
            status=TrackingStatus.LABEL_CREATED,
            occurred_at=now,
            location=ship_from.city,
            description=DEFAULT_DESCRIPTIONS[TrackingStatus.LABEL_CREATED],
            estimated_delivery=quote.estimated_delivery,
        )
        self._labels[number] = _State(label, ship_from, ship_to, tuple(parcels), events=[created])
        return label
