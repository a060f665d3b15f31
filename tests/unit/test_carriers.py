"""LocalCarrier: tariffs by zone and weight, validation codes, labels, idempotency, void, track."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from ordergraph.integrations import carriers as c
from ordergraph.integrations.carriers import CarrierErrorCode as E
from ordergraph.integrations.carriers import ServiceLevel as L
from ordergraph.integrations.carriers import TrackingStatus as S

T0 = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday


def addr(country: str = "US", **kw) -> c.Address:
    base = dict(name="Ada Buyer", line1="1 Main St", city="Springfield", postal_code="12345")
    return c.Address(**(base | kw), country=country)


WAREHOUSE = c.Address(
    name="Ordergraph Fulfilment",
    line1="100 Dock Rd",
    city="Reno",
    postal_code="89501",
    country="US",
    company="Ordergraph Inc.",
)
UK, FR, PL, MX = addr("GB", postal_code="SW1A 1AA"), addr("FR"), addr("PL"), addr("MX")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def eco(clock) -> c.LocalCarrier:
    return c.LocalCarrier(c.ECONOPOST, clock=clock)


@pytest.fixture
def swift(clock) -> c.LocalCarrier:
    return c.LocalCarrier(c.SWIFTSHIP, clock=clock)


async def refused(code: E, call) -> c.CarrierError:
    with pytest.raises(c.CarrierError) as info:
        await call
    assert info.value.code == code, info.value
    assert info.value.retryable is (code == E.CARRIER_UNAVAILABLE)
    return info.value


def summary(quotes: list[c.RateQuote]) -> list[tuple]:
    return [
        (
            q.carrier,
            q.service,
            q.service_level,
            q.amount,
            q.currency,
            q.transit_days,
            q.estimated_delivery,
        )
        for q in quotes
    ]


async def test_protocol_and_identity(eco, swift):
    assert isinstance(eco, c.Carrier) and isinstance(swift, c.Carrier)
    assert (eco.code, eco.name, swift.code, swift.name) == (
        "econopost",
        "Econopost",
        "swiftship",
        "SwiftShip",
    )


async def test_econopost_domestic_rates_cheapest_first(eco):
    quotes = await eco.rates(WAREHOUSE, addr(), [c.Parcel(1200, 10, 10, 10)], "USD")
    assert summary(quotes) == [
        ("econopost", "econopost_economy", L.ECONOMY, D("6.90"), "USD", 5, date(2026, 11, 25)),
        ("econopost", "econopost_standard", L.STANDARD, D("8.90"), "USD", 3, date(2026, 11, 23)),
    ]


async def test_swiftship_domestic_rates_have_three_services(swift):
    quotes = await swift.rates(WAREHOUSE, addr(), [c.Parcel(1200, 10, 10, 10)], "USD")
    assert summary(quotes) == [
        ("swiftship", "swiftship_standard", L.STANDARD, D("11.00"), "USD", 3, date(2026, 11, 23)),
        ("swiftship", "swiftship_express", L.EXPRESS, D("16.50"), "USD", 2, date(2026, 11, 20)),
        ("swiftship", "swiftship_overnight", L.OVERNIGHT, D("34.00"), "USD", 1, date(2026, 11, 19)),
    ]


async def test_transit_skips_weekends(swift, clock):
    clock.now = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)  # Friday night
    quotes = {
        q.service_level: q for q in await swift.rates(WAREHOUSE, addr(), [c.Parcel(500)], "USD")
    }
    assert quotes[L.OVERNIGHT].estimated_delivery == date(2026, 11, 23)  # Monday
    assert quotes[L.STANDARD].estimated_delivery == date(2026, 11, 25)
    assert c.add_business_days(date(2026, 11, 21), 1) == date(2026, 11, 23)  # from a Saturday


async def test_swiftship_bills_volumetric_weight_econopost_actual(eco, swift):
    bulky = [c.Parcel(1000, 40, 40, D("40.0"))]  # 64 000 cm³ / 5000 = 12.8 kg volumetric
    swift_q = {q.service: q.amount for q in await swift.rates(WAREHOUSE, addr(), bulky, "USD")}
    eco_q = {q.service: q.amount for q in await eco.rates(WAREHOUSE, addr(), bulky, "USD")}
    assert swift_q == {
        "swiftship_standard": D("24.00"),
        "swiftship_express": D("36.00"),
        "swiftship_overnight": D("69.00"),
    }
    assert eco_q == {"econopost_economy": D("6.90"), "econopost_standard": D("8.90")}


async def test_zones_parcels_add_up_and_currency_converts(eco, swift):
    parcels = [c.Parcel(400), c.Parcel(2500)]
    quotes = await eco.rates(WAREHOUSE, UK, parcels, "EUR")  # US → GB: international
    assert [(q.service, q.amount, q.currency, q.transit_days) for q in quotes] == [
        ("econopost_economy", D("46.00"), "EUR", 12),  # (12.00 + 38.00) × 0.92
        ("econopost_standard", D("59.80"), "EUR", 8),  # (16.00 + 49.00) × 0.92
    ]
    regional = await eco.rates(UK, FR, [c.Parcel(600)], "GBP")
    assert [(q.service, q.amount) for q in regional] == [
        ("econopost_economy", D("10.98")),  # 13.90 × 0.79 = 10.981
        ("econopost_standard", D("14.62")),  # 18.50 × 0.79 = 14.615, half-up
    ]
    # swiftship offers only EXPRESS internationally, STANDARD and EXPRESS regionally
    assert [q.service for q in await swift.rates(WAREHOUSE, UK, parcels, "USD")] == [
        "swiftship_express"
    ]
    assert [q.service for q in await swift.rates(WAREHOUSE, MX, parcels, "USD")] == [
        "swiftship_standard",
        "swiftship_express",
    ]


@pytest.mark.parametrize(
    ("carrier", "ship_to", "parcels", "currency", "code"),
    [
        ("eco", addr(city=" "), [c.Parcel(100)], "USD", E.ADDRESS_INVALID),
        ("eco", addr("usa"), [c.Parcel(100)], "USD", E.ADDRESS_INVALID),
        ("swift", addr(postal_code=""), [c.Parcel(100)], "USD", E.ADDRESS_INVALID),
        ("eco", addr(), [], "USD", E.PARCEL_INVALID),
        ("eco", addr(), [c.Parcel(0)], "USD", E.PARCEL_INVALID),
        ("swift", addr(), [c.Parcel(100, -1, 5, 5)], "USD", E.PARCEL_INVALID),
        ("eco", addr(), [c.Parcel(100), c.Parcel(20_001)], "USD", E.PARCEL_TOO_HEAVY),
        ("swift", addr(), [c.Parcel(30_001)], "USD", E.PARCEL_TOO_HEAVY),
        ("eco", addr(), [c.Parcel(100)], "XYZ", E.CURRENCY_UNSUPPORTED),
        ("eco", MX, [c.Parcel(100)], "USD", E.ADDRESS_UNSERVICEABLE),
        ("swift", PL, [c.Parcel(100)], "USD", E.ADDRESS_UNSERVICEABLE),
        (
            "swift",
            addr(line1="[Unserviceable] 9 Lost Rd"),
            [c.Parcel(100)],
            "USD",
            E.ADDRESS_UNSERVICEABLE,
        ),
        (
            "eco",
            addr(line1="1 Main St [carrier-down]"),
            [c.Parcel(100)],
            "USD",
            E.CARRIER_UNAVAILABLE,
        ),
    ],
)
async def test_refusals_of_rates_and_label_purchase(
    request, carrier, ship_to, parcels, currency, code
):
    carrier = request.getfixturevalue(carrier)
    await refused(code, carrier.rates(WAREHOUSE, ship_to, parcels, currency))
    if code != E.CURRENCY_UNSUPPORTED:
        service = carrier.profile.services[0].code
        await refused(code, carrier.buy_label(WAREHOUSE, ship_to, parcels, service, "SO-1", "k"))
        assert carrier._labels == {}  # nothing bought


async def test_weight_limits_differ(eco, swift):
    heavy = [c.Parcel(25_000)]
    await refused(E.PARCEL_TOO_HEAVY, eco.rates(WAREHOUSE, addr(), heavy, "USD"))
    assert len(await swift.rates(WAREHOUSE, addr(), heavy, "USD")) == 3


async def test_a_ship_from_outside_the_network_is_unserviceable(swift):
    await refused(E.ADDRESS_UNSERVICEABLE, swift.rates(PL, addr(), [c.Parcel(100)], "USD"))


async def test_buy_label(eco):
    parcels = [c.Parcel(1200, 30, 20, 10), c.Parcel(300)]
    label = await eco.buy_label(WAREHOUSE, UK, parcels, "econopost_standard", "SO-1001", "fo-1")
    assert (label.carrier, label.service, label.service_level) == (
        "econopost",
        "econopost_standard",
        L.STANDARD,
    )
    assert (label.amount, label.currency) == (D("44.00"), "USD")  # 28.00 + 16.00
    assert (label.estimated_delivery, label.created_at, label.reference) == (
        date(2026, 11, 30),
        T0,
        "SO-1001",
    )
    assert label.format == "PDF" and label.document.startswith(b"%PDF-")
    n = label.tracking_number
    assert n.startswith("CP") and n.endswith("US") and c.validate_tracking_number("econopost", n)
    [created] = await eco.track(n)
    assert (created.status, created.occurred_at, created.tracking_number) == (
        S.LABEL_CREATED,
        T0,
        n,
    )
    assert created.estimated_delivery == label.estimated_delivery
    record = eco.label_record(n)
    assert (record.label, record.voided, record.status, record.parcels) == (
        label,
        False,
        S.LABEL_CREATED,
        tuple(parcels),
    )


async def test_buy_by_service_level_and_refusals_of_the_service(swift):
    label = await swift.buy_label(WAREHOUSE, addr(), [c.Parcel(500)], L.OVERNIGHT, "SO-2", "k1")
    assert (label.service, label.amount, label.estimated_delivery) == (
        "swiftship_overnight",
        D("24.00"),
        date(2026, 11, 19),
    )
    assert label.tracking_number.startswith("SW")
    next_day = await swift.buy_label(WAREHOUSE, addr(), [c.Parcel(500)], "NEXT_DAY", "SO-2", "k5")
    assert next_day.service == "swiftship_overnight"  # the order model's name for OVERNIGHT
    assert (c.service_level_of("NEXT_DAY"), c.service_level_of("EXPRESS")) == (
        L.OVERNIGHT,
        L.EXPRESS,
    )
    assert c.service_level_of("TELEPORT") is None
    assert c.validate_tracking_number("swiftship", label.tracking_number)
    await refused(
        E.SERVICE_UNAVAILABLE,
        swift.buy_label(WAREHOUSE, UK, [c.Parcel(500)], "swiftship_overnight", "SO-3", "k2"),
    )
    await refused(
        E.SERVICE_UNAVAILABLE,
        swift.buy_label(WAREHOUSE, addr(), [c.Parcel(500)], L.ECONOMY, "SO-3", "k3"),
    )
    await refused(
        E.SERVICE_UNAVAILABLE,
        swift.buy_label(WAREHOUSE, addr(), [c.Parcel(500)], "econopost_economy", "SO-3", "k4"),
    )
    assert len(swift._labels) == 2


async def test_same_key_same_label_different_request_refused(eco):
    args = (WAREHOUSE, addr(), [c.Parcel(800)], "econopost_economy", "SO-7")
    first = await eco.buy_label(*args, "key-7")
    assert await eco.buy_label(*args, "key-7") is first
    err = await refused(
        E.IDEMPOTENCY_KEY_REUSED,
        eco.buy_label(WAREHOUSE, addr(), [c.Parcel(801)], "econopost_economy", "SO-7", "key-7"),
    )
    assert "key-7" in err.message
    other = await eco.buy_label(*args, "key-8")
    assert other.tracking_number != first.tracking_number
    assert set(eco._labels) == {first.tracking_number, other.tracking_number}


async def test_flaky_address_fails_once_per_key_then_retry_succeeds(eco):
    flaky = addr(line1="7 Wobbly Way [CARRIER-FLAKY]")
    args = (WAREHOUSE, flaky, [c.Parcel(800)], "econopost_economy", "SO-9")
    await refused(E.CARRIER_UNAVAILABLE, eco.buy_label(*args, "k9"))
    assert eco._labels == {}
    label = await eco.buy_label(*args, "k9")
    assert await eco.buy_label(*args, "k9") is label
    await refused(E.CARRIER_UNAVAILABLE, eco.buy_label(*args, "k10"))
    assert len(await eco.rates(WAREHOUSE, flaky, [c.Parcel(800)], "USD")) == 2


async def test_an_outage_fails_every_call_until_it_ends(eco):
    label = await eco.buy_label(WAREHOUSE, addr(), [c.Parcel(800)], "econopost_economy", "SO", "k")
    eco.down = True
    await refused(
        E.CARRIER_UNAVAILABLE,
        eco.buy_label(WAREHOUSE, addr(), [c.Parcel(800)], "econopost_economy", "SO", "k"),
    )  # not even a replay of a label already bought
    await refused(E.CARRIER_UNAVAILABLE, eco.rates(WAREHOUSE, addr(), [c.Parcel(1)], "USD"))
    await refused(E.CARRIER_UNAVAILABLE, eco.track(label.tracking_number))
    await refused(E.CARRIER_UNAVAILABLE, eco.void_label(label.tracking_number))
    eco.down = False
    assert len(await eco.track(label.tracking_number)) == 1


async def test_void_before_pickup_is_idempotent_after_pickup_refused(eco, swift):
    a = await eco.buy_label(WAREHOUSE, addr(), [c.Parcel(800)], "econopost_economy", "SO", "a")
    assert await eco.void_label(a.tracking_number) is None
    await eco.void_label(a.tracking_number)
    assert eco.label_record(a.tracking_number).voided is True
    with pytest.raises(ValueError, match="voided"):
        eco.webhook_event(a.tracking_number, S.PICKED_UP, location="Reno", occurred_at=T0)

    b = await swift.buy_label(WAREHOUSE, addr(), [c.Parcel(800)], L.EXPRESS, "SO", "b")
    swift.webhook_event(b.tracking_number, S.PICKED_UP, location="Reno, NV", occurred_at=T0)
    err = await refused(E.LABEL_ALREADY_USED, swift.void_label(b.tracking_number))
    assert "PICKED_UP" in err.message
    assert swift.label_record(b.tracking_number).voided is False


async def test_unknown_and_malformed_tracking_numbers(eco):
    await refused(E.UNKNOWN_TRACKING_NUMBER, eco.track("CP123456785US"))
    await refused(E.UNKNOWN_TRACKING_NUMBER, eco.void_label("nope"))
    with pytest.raises(c.CarrierError) as info:
        eco.webhook_event("CP123456785US", S.IN_TRANSIT, location=None, occurred_at=T0)
    assert info.value.code == E.UNKNOWN_TRACKING_NUMBER


async def test_track_returns_every_scan_in_time_order(swift):
    label = await swift.buy_label(WAREHOUSE, addr(), [c.Parcel(800)], L.EXPRESS, "SO", "t")
    n = label.tracking_number
    later = T0 + timedelta(hours=30)
    swift.webhook_event(n, S.IN_TRANSIT, location="Memphis, TN", occurred_at=later, event_id="e2")
    swift.webhook_event(n, S.PICKED_UP, location="Reno, NV", occurred_at=T0 + timedelta(hours=2))
    events = await swift.track(n)
    assert [e.status for e in events] == [S.LABEL_CREATED, S.PICKED_UP, S.IN_TRANSIT]
    assert events[2].carrier_event_id == "e2" and events[2].description == "In transit"
    assert swift.label_record(n).status == S.IN_TRANSIT  # the latest in time, not recorded


async def test_with_retries_retries_only_unavailability_with_the_same_key(eco):
    flaky = addr(line1="[carrier-flaky] 3 Rd")
    calls = []

    def buy():
        calls.append(1)
        return eco.buy_label(WAREHOUSE, flaky, [c.Parcel(100)], "econopost_economy", "SO", "rk")

    label = await c.with_retries(buy, base_delay=0.001)
    assert len(calls) == 2 and eco.label_record(label.tracking_number) is not None
    eco.down = True
    calls.clear()
    await refused(
        E.CARRIER_UNAVAILABLE,
        c.with_retries(
            lambda: (calls.append(1), eco.track(label.tracking_number))[1],
            attempts=3,
            base_delay=0.001,
        ),
    )
    assert len(calls) == 3
    eco.down = False
    calls.clear()
    await refused(
        E.PARCEL_TOO_HEAVY,
        c.with_retries(
            lambda: (calls.append(1), eco.rates(WAREHOUSE, addr(), [c.Parcel(99_999)], "USD"))[1]
        ),
    )
    assert len(calls) == 1
    with pytest.raises(ValueError):
        await c.with_retries(buy, attempts=0)
