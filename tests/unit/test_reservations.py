"""Checkout reservations: reserve, release, expire, consume (no GraphQL)."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from ordergraph.models import Event, InventoryLevel, Reservation, ReservationLine, SalesChannel, StockMovement
from ordergraph.models.enums import ReservationStatus
from ordergraph.workflows import reservations as res
from ordergraph.workflows.errors import DomainError, TransitionError, ValidationFailed
from tests import factories as f
from tests.unit.test_inventory import codes, increased, ledger  # noqa: F401 (increased is a fixture)

ACTOR = "partner:P1"


async def network():
    """Channel WEB ships from A (priority 1), B (priority 2) and an inactive C; D is elsewhere."""
    a = await f.warehouse("A", priority=1)
    b = await f.warehouse("B", priority=2)
    c = await f.warehouse("C", priority=0, active=False)
    d = await f.warehouse("D", priority=0)
    web = await f.channel("WEB", [b, a, c])
    v = await f.variant("SKU-1")
    for w, qty in ((a, 3), (b, 10), (c, 50), (d, 50)):
        await f.stock(w, v, qty)
    return web, v, (a, b, c, d)


async def reserved(v) -> dict[str, int]:
    rows = await InventoryLevel.filter(variant=v).prefetch_related("warehouse")
    return {lvl.warehouse.code: lvl.reserved for lvl in rows if lvl.reserved}


async def test_reserve_splits_over_active_channel_warehouses_in_priority_order(db):
    web, v, _ = await network()
    before = datetime.now(UTC)
    r = await res.reserve_stock("WEB", [("SKU-1", 5)], "cart-9", owner="partner:P1", actor=ACTOR)
    assert r.token.startswith("RES-") and len(r.token) == 24
    assert (r.status, r.channel_id, r.cart_reference, r.owner) == (ReservationStatus.ACTIVE, web.id, "cart-9", "partner:P1")
    assert before + timedelta(seconds=899) < r.expires_at <= datetime.now(UTC) + timedelta(seconds=900)
    assert await reserved(v) == {"A": 3, "B": 2}
    lines = await ReservationLine.filter(reservation=r).order_by("id").values_list("warehouse__code", "quantity")
    assert lines == [("A", 3), ("B", 2)]
    assert await ledger() == [
        ("A", "RESERVATION", 3, 3, 0, 3, "", ACTOR),
        ("B", "RESERVATION", 2, 10, 0, 2, "", ACTOR),
    ]
    assert set(await StockMovement.all().values_list("reference", flat=True)) == {r.token}
    [event] = await Event.filter(aggregate_type="Reservation")
    assert (event.type, event.data["lines"]) == ("RESERVATION_CREATED", [{"sku": "SKU-1", "quantity": 5}])


async def test_reserve_respects_safety_stock(db):
    w = await f.warehouse("A")
    await f.channel("WEB", [w])
    v = await f.variant("SKU-1")
    await f.stock(w, v, 5, safety=2)
    with pytest.raises(DomainError) as err:
        await res.reserve_stock("WEB", [("SKU-1", 4)], "", owner="o", actor=ACTOR)
    assert err.value.details == {"shortages": [{"sku": "SKU-1", "requested": 4, "available": 3}]}
    r = await res.reserve_stock("WEB", [("SKU-1", 3)], "", owner="o", actor=ACTOR, ttl_seconds=60)
    assert r.expires_at <= datetime.now(UTC) + timedelta(seconds=60)


async def test_reserve_is_all_or_nothing(db):
    web, v, _ = await network()
    await f.variant("SKU-2")
    other = await f.variant("SKU-3")
    await f.stock(await f.warehouse("E"), other, 100)  # not a WEB warehouse
    with pytest.raises(DomainError) as err:
        await res.reserve_stock("WEB", [("SKU-1", 13), ("SKU-2", 1), ("SKU-3", 2)], "", owner="o", actor=ACTOR)
    assert err.value.code.value == "INSUFFICIENT_STOCK"
    assert err.value.details == {"shortages": [
        {"sku": "SKU-2", "requested": 1, "available": 0},
        {"sku": "SKU-3", "requested": 2, "available": 0},
    ]}
    assert await reserved(v) == {}
    assert await Reservation.all().count() == 0
    assert await StockMovement.all().count() == 0
    assert await Event.all().count() == 0


async def test_reserve_validation_reports_every_problem(db):
    await network()
    await f.variant("OLD", active=False)
    with pytest.raises(ValidationFailed) as err:
        await res.reserve_stock(
            "WEB", [("GHOST", 1), ("OLD", 1), ("SKU-1", 0), ("SKU-1", 1)], "", owner="o", actor=ACTOR, ttl_seconds=0
        )
    assert codes(err.value) == sorted([
        ("UNKNOWN_SKU", ("lines", "0", "sku")),
        ("INACTIVE_SKU", ("lines", "1", "sku")),
        ("QUANTITY_OUT_OF_RANGE", ("lines", "2", "quantity")),
        ("DUPLICATE_LINE", ("lines", "3", "sku")),
        ("INVALID_VALUE", ("ttlSeconds",)),
    ])
    with pytest.raises(ValidationFailed) as err:
        await res.reserve_stock("NOPE", [], "", owner="o", actor=ACTOR)
    assert codes(err.value) == [("REQUIRED", ("lines",)), ("UNKNOWN_CHANNEL", ("channel",))]
    await f.channel("OFF", [])
    await SalesChannel.filter(code="OFF").update(active=False)
    with pytest.raises(ValidationFailed) as err:
        await res.reserve_stock("OFF", [("SKU-1", 1)], "", owner="o", actor=ACTOR)
    assert codes(err.value) == [("CHANNEL_INACTIVE", ("channel",))]
    assert await Reservation.all().count() == 0


async def test_reserve_on_a_channel_not_allowed_answers_like_an_unknown_channel(db):
    web, v, _ = await network()
    with pytest.raises(ValidationFailed) as err:
        await res.reserve_stock("WEB", [("SKU-1", 1)], "", owner="o", actor=ACTOR, allowed_channel_ids=frozenset({web.id + 1}))
    assert codes(err.value) == [("UNKNOWN_CHANNEL", ("channel",))]
    assert await reserved(v) == {}


async def test_release_gives_the_units_back_once(db, increased):
    web, v, _ = await network()
    r = await res.reserve_stock("WEB", [("SKU-1", 5)], "", owner="o", actor=ACTOR)
    released = await res.release_reservation(r.token, "staff:s1")
    assert released.status is ReservationStatus.RELEASED
    assert await reserved(v) == {}
    assert (await ledger())[2:] == [
        ("A", "RESERVATION_RELEASE", -3, 3, 0, 0, "released", "staff:s1"),
        ("B", "RESERVATION_RELEASE", -2, 10, 0, 0, "released", "staff:s1"),
    ]
    assert increased == [v.id]
    with pytest.raises(TransitionError) as err:
        await res.release_reservation(r.token, "staff:s1")
    assert (err.value.code.value, err.value.current_state, err.value.allowed_actions) == ("INVALID_TRANSITION", "RELEASED", [])
    assert await StockMovement.all().count() == 4


async def test_release_unknown_or_foreign_reservation_is_not_found(db):
    web, v, _ = await network()
    r = await res.reserve_stock("WEB", [("SKU-1", 1)], "", owner="o", actor=ACTOR)
    for token, allowed in (("RES-NOPE", None), (r.token, frozenset({web.id + 1}))):
        with pytest.raises(DomainError) as err:
            await res.release_reservation(token, "x", allowed_channel_ids=allowed)
        assert err.value.code.value == "RESERVATION_NOT_FOUND"
    assert await reserved(v) == {"A": 1}


async def test_expiry_frees_stock_of_due_reservations_only(db, increased):
    web, v, _ = await network()
    due = await res.reserve_stock("WEB", [("SKU-1", 4)], "", owner="o", actor=ACTOR)
    live = await res.reserve_stock("WEB", [("SKU-1", 2)], "", owner="o", actor=ACTOR)
    await Reservation.filter(id=due.id).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert await res.expire_due_reservations() == 1
    assert await res.expire_due_reservations() == 0
    await due.refresh_from_db()
    await live.refresh_from_db()
    assert (due.status, live.status) == (ReservationStatus.EXPIRED, ReservationStatus.ACTIVE)
    assert await reserved(v) == {"B": 2}
    expired_rows = await StockMovement.filter(reference=due.token, kind="RESERVATION_RELEASE").values_list("quantity", "actor")
    assert sorted(expired_rows) == [(-3, "system"), (-1, "system")]
    assert increased == [v.id]
    assert await Event.filter(aggregate_type="Reservation", type="RESERVATION_EXPIRED").count() == 1


async def test_concurrent_expiry_frees_each_reservation_once(db):
    w = await f.warehouse("A")
    await f.channel("WEB", [w])
    v = await f.variant("SKU-1")
    await f.stock(w, v, 20)
    for _ in range(8):
        await res.reserve_stock("WEB", [("SKU-1", 2)], "", owner="o", actor=ACTOR)
    await Reservation.all().update(expires_at=datetime.now(UTC) - timedelta(minutes=1))
    counts = await asyncio.gather(*(res.expire_due_reservations() for _ in range(4)))
    assert sum(counts) == 8
    assert await reserved(v) == {}
    assert await StockMovement.filter(kind="RESERVATION_RELEASE").count() == 8
    assert await Reservation.filter(status=ReservationStatus.EXPIRED).count() == 8


async def test_consume_turns_reserved_into_allocated(db):
    web, v, warehouses = await network()
    v2 = await f.variant("SKU-2")
    a, b, *_ = warehouses
    await f.stock(b, v2, 4)
    r = await res.reserve_stock("WEB", [("SKU-1", 4), ("SKU-2", 1)], "", owner="o", actor=ACTOR)
    taken = await res.consume_reservation(r.token, web.id, {v.id: 5, v2.id: 1}, 4242, "staff:s1")
    assert taken == {(a.id, v.id): 3, (b.id, v.id): 1, (b.id, v2.id): 1}
    await r.refresh_from_db()
    assert (r.status, r.order_id) == (ReservationStatus.CONSUMED, 4242)
    assert await reserved(v) == {}
    allocations = await StockMovement.filter(kind="ALLOCATION").order_by("id").values_list(
        "warehouse__code", "quantity", "on_hand_after", "allocated_after", "reserved_after", "order_id", "actor")
    assert allocations == [
        ("A", 3, 3, 3, 0, 4242, "staff:s1"),
        ("B", 1, 10, 1, 0, 4242, "staff:s1"),
        ("B", 1, 4, 1, 0, 4242, "staff:s1"),
    ]
    with pytest.raises(TransitionError) as err:
        await res.consume_reservation(r.token, web.id, {v.id: 5, v2.id: 1}, 4243, "staff:s1")
    assert (err.value.code.value, err.value.current_state) == ("INVALID_TRANSITION", "CONSUMED")


async def test_consume_refusals_change_nothing(db):
    web, v, _ = await network()
    other = await f.channel("MKT", [])
    v2 = await f.variant("SKU-2")
    r = await res.reserve_stock("WEB", [("SKU-1", 4)], "", owner="o", actor=ACTOR)
    cases = [
        (("RES-NOPE", web.id, {v.id: 4}), "RESERVATION_NOT_FOUND"),
        ((r.token, other.id, {v.id: 4}), "RESERVATION_MISMATCH"),
        ((r.token, web.id, {v2.id: 4}), "RESERVATION_MISMATCH"),  # holds a SKU the order does not need
        ((r.token, web.id, {v.id: 3}), "RESERVATION_MISMATCH"),  # holds more than needed
    ]
    for (token, channel_id, needs), code in cases:
        with pytest.raises(DomainError) as err:
            await res.consume_reservation(token, channel_id, needs, 1, "x")
        assert err.value.code.value == code
    await Reservation.filter(id=r.id).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(DomainError) as err:
        await res.consume_reservation(r.token, web.id, {v.id: 4}, 1, "x")
    assert err.value.code.value == "RESERVATION_EXPIRED"
    await res.expire_due_reservations()
    with pytest.raises(DomainError) as err:
        await res.consume_reservation(r.token, web.id, {v.id: 4}, 1, "x")
    assert err.value.code.value == "RESERVATION_EXPIRED"
    assert await StockMovement.filter(kind="ALLOCATION").count() == 0
    assert await InventoryLevel.filter(allocated__gt=0).count() == 0


@pytest.mark.postgres_only
async def test_concurrent_reservations_never_oversell(db):
    w = await f.warehouse("A")
    await f.channel("WEB", [w])
    v = await f.variant("SKU-1")
    await f.stock(w, v, 5)

    async def attempt(i: int):
        try:
            return await res.reserve_stock("WEB", [("SKU-1", 1)], f"cart-{i}", owner="o", actor=ACTOR)
        except DomainError as exc:
            return exc.code.value

    results = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert sum(isinstance(r, Reservation) for r in results) == 5
    assert sorted(r for r in results if not isinstance(r, Reservation)) == ["INSUFFICIENT_STOCK"] * 15
    level = await InventoryLevel.get(warehouse=w, variant=v)
    assert (level.on_hand, level.reserved) == (5, 5)
    assert await StockMovement.filter(kind="RESERVATION").count() == 5
