"""The built-in local carriers' tariffs: countries, zones, services, weight brackets, limits.

Two carriers with deliberately different shapes, so choosing between them means something:

=============  =======================================  ==========================================
               econopost (cheap, slow, postal)          swiftship (fast courier)
=============  =======================================  ==========================================
services       ECONOMY, STANDARD on every lane          OVERNIGHT (domestic), EXPRESS (all),
                                                        STANDARD (domestic and regional)
limit/parcel   20 kg, actual weight                     30 kg, billed on max(actual, volumetric
                                                        L×W×H cm / 5000 kg)
countries      no MX                                    no PL, PT, CZ, NO, FI, NZ
tracking       UPU S10 (mod 11), e.g. CP123456785GB     SW + 11 digits + Luhn, e.g. SW123456789015
webhooks       batches of events, ISO times with the    one event per delivery, unix seconds,
               local offset, UPU-like event codes       lower-case status names
=============  =======================================  ==========================================

Zones come from the lane: ``DOMESTIC`` (same country), ``REGIONAL`` (both in the same region:
the EU plus GB/CH/NO, North America, Oceania) or ``INTERNATIONAL``. Tariffs are in USD and
converted at the fixed rates of `FX_FROM_USD`; a price is the sum over parcels of the price of
the first weight bracket that holds the parcel's billable weight, converted once and rounded
half-up to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from ordergraph.integrations.carriers.base import ServiceLevel


class Zone(StrEnum):
    DOMESTIC = "DOMESTIC"
    REGIONAL = "REGIONAL"
    INTERNATIONAL = "INTERNATIONAL"


_EUROPE = frozenset("AT BE CH CZ DE DK ES FI FR GB IE IT LU NL NO PL PT SE".split())
_REGIONS = (_EUROPE, frozenset({"US", "CA", "MX"}), frozenset({"AU", "NZ"}))

FX_FROM_USD = MappingProxyType(
    {
        "USD": Decimal("1"),
        "EUR": Decimal("0.92"),
        "GBP": Decimal("0.79"),
        "CAD": Decimal("1.38"),
        "AUD": Decimal("1.52"),
        "CHF": Decimal("0.88"),
    }
)


def zone_of(origin: str, destination: str) -> Zone:
    """The tariff zone of a lane between two ISO-2 countries."""
    if origin == destination:
        return Zone.DOMESTIC
    if any(origin in r and destination in r for r in _REGIONS):
        return Zone.REGIONAL
    return Zone.INTERNATIONAL


Brackets = tuple[tuple[int, Decimal], ...]  # (up to grams inclusive, price in USD)


def _brackets(limits: tuple[int, ...], prices: str) -> Brackets:
    values = [Decimal(p) for p in prices.split()]
    assert len(values) == len(limits)
    return tuple(zip(limits, values, strict=True))


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    code: str
    level: ServiceLevel
    name: str
    transit_days: MappingProxyType[Zone, int]  # the zones the service is offered in
    prices: MappingProxyType[Zone, Brackets]
    s10_indicator: str = "UA"  # the S10 service indicator, for econopost

    def price_usd(self, zone: Zone, billable_grams: int) -> Decimal | None:
        for up_to, price in self.prices[zone]:
            if billable_grams <= up_to:
                return price
        return None


@dataclass(frozen=True, slots=True)
class CarrierProfile:
    code: str
    name: str
    countries: frozenset[str]
    max_parcel_grams: int
    volumetric_divisor: int | None  # cm³ per kg; None: billed on actual weight
    services: tuple[ServiceSpec, ...]
    tracking_url: str  # the carrier's public tracking page, {tracking_number} filled in


def _service(code, level, name, indicator, limits, table) -> ServiceSpec:
    return ServiceSpec(
        code=code,
        level=level,
        name=name,
        transit_days=MappingProxyType({zone: days for zone, (days, _) in table.items()}),
        prices=MappingProxyType(
            {zone: _brackets(limits, prices) for zone, (_, prices) in table.items()}
        ),
        s10_indicator=indicator,
    )


_ECO_LIMITS = (500, 2_000, 5_000, 10_000, 20_000)
_SWIFT_LIMITS = (1_000, 5_000, 10_000, 20_000, 30_000)
DOM, REG, INTL = Zone.DOMESTIC, Zone.REGIONAL, Zone.INTERNATIONAL

ECONOPOST = CarrierProfile(
    code="econopost",
    name="Econopost",
    countries=frozenset(
        "US CA GB IE FR DE NL BE LU ES PT IT AT CH DK SE NO FI PL CZ AU NZ JP".split()
    ),
    max_parcel_grams=20_000,
    volumetric_divisor=None,
    services=(
        _service(
            "econopost_economy",
            ServiceLevel.ECONOMY,
            "Econopost Economy",
            "UE",
            _ECO_LIMITS,
            {
                DOM: (5, "4.20 6.90 9.80 14.50 21.00"),
                REG: (8, "8.50 13.90 22.00 34.00 52.00"),
                INTL: (12, "12.00 21.50 38.00 61.00 95.00"),
            },
        ),
        _service(
            "econopost_standard",
            ServiceLevel.STANDARD,
            "Econopost Standard",
            "CP",
            _ECO_LIMITS,
            {
                DOM: (3, "5.90 8.90 12.90 18.90 27.50"),
                REG: (5, "11.50 18.50 29.00 44.00 66.00"),
                INTL: (8, "16.00 28.00 49.00 78.00 120.00"),
            },
        ),
    ),
    tracking_url="https://track.econopost.example/items/{tracking_number}",
)

SWIFTSHIP = CarrierProfile(
    code="swiftship",
    name="SwiftShip",
    countries=frozenset("US CA MX GB IE FR DE NL BE LU ES IT AT CH DK SE AU JP".split()),
    max_parcel_grams=30_000,
    volumetric_divisor=5000,
    services=(
        _service(
            "swiftship_standard",
            ServiceLevel.STANDARD,
            "SwiftShip Ground",
            "",
            _SWIFT_LIMITS,
            {
                DOM: (3, "7.50 11.00 16.00 24.00 33.00"),
                REG: (4, "13.00 20.00 30.00 45.00 61.00"),
            },
        ),
        _service(
            "swiftship_express",
            ServiceLevel.EXPRESS,
            "SwiftShip Express",
            "",
            _SWIFT_LIMITS,
            {
                DOM: (2, "11.00 16.50 24.00 36.00 49.00"),
                REG: (3, "19.00 29.00 44.00 66.00 89.00"),
                INTL: (4, "32.00 52.00 79.00 118.00 155.00"),
            },
        ),
        _service(
            "swiftship_overnight",
            ServiceLevel.OVERNIGHT,
            "SwiftShip Overnight",
            "",
            _SWIFT_LIMITS,
            {DOM: (1, "24.00 34.00 48.00 69.00 92.00")},
        ),
    ),
    tracking_url="https://swiftship.example/track?number={tracking_number}",
)

PROFILES = MappingProxyType({p.code: p for p in (ECONOPOST, SWIFTSHIP)})
