"""stock.move_many: several changes in few statements, exactly as the same moves one by one."""

import pytest

from ordergraph.db import transaction
from ordergraph.models import Event, InventoryLevel, StockMovement
from ordergraph.models.enums import MovementKind
from ordergraph.workflows.stock import Change, StockConflict, move, move_many
from tests import factories as f

ACTOR = "staff:test"
ALLOC = MovementKind.ALLOCATION


async def _levels():
    east, west = await f.warehouse("EAST"), await f.warehouse("WEST")
    a, b = await f.variant("SKU-A"), await f.variant("SKU-B")
    return (
        await f.stock(east, a, 10, safety=2, reorder_point=5),
        await f.stock(west, a, 4),
        await f.stock(east, b, 6),
    )


async def _state():
    levels = [(lv.id, lv.on_hand, lv.allocated, lv.reserved) for lv in await InventoryLevel.all().order_by("id")]
    ledger = [(m.warehouse_id, m.variant_id, m.kind.value, m.quantity, m.on_hand_after, m.allocated_after,
               m.reserved_after, m.reference, m.order_id) for m in await StockMovement.all().order_by("id")]
    events = [(e.aggregate_id, e.sequence, e.type, {k: v for k, v in e.data.items()})
              for e in await Event.filter(aggregate_type="InventoryLevel").order_by("id")]
    return levels, ledger, events


def _changes(x, y, z):
    # x appears twice: the second change of x sees the first one's result.
    return [
        Change(x.id, ALLOC, d_allocated=3, reference="SO-1", order_id=1, reason="r"),
        Change(y.id, ALLOC, d_allocated=4, reference="SO-1", order_id=1, reason="r"),
        Change(x.id, ALLOC, d_allocated=2, reference="SO-1", order_id=1, reason="r"),
        Change(z.id, MovementKind.RECEIPT, d_on_hand=5, reference="PO-9"),
    ]


class _RollBack(Exception):
    pass


async def test_a_batch_writes_what_the_same_moves_one_by_one_write(db):
    x, y, z = await _levels()
    with pytest.raises(_RollBack):
        async with transaction():
            one_by_one = [
                await move(c.level_id, c.kind, actor=ACTOR, d_on_hand=c.d_on_hand, d_allocated=c.d_allocated,
                           reference=c.reference, order_id=c.order_id, reason=c.reason)
                for c in _changes(x, y, z)
            ]
            expected = await _state()
            raise _RollBack
    async with transaction():
        batched = await move_many(_changes(x, y, z), actor=ACTOR)
    assert batched == one_by_one
    assert [(s.on_hand, s.allocated, s.reserved) for s in batched] == [(10, 3, 0), (4, 4, 0), (10, 5, 0), (11, 0, 0)]
    got = await _state()
    assert got == expected
    # x's events: STOCK_CHANGED then LOW_STOCK (available 8 -> 5, the reorder point) for its
    # first change, STOCK_CHANGED for its second, in that order and sequence.
    assert [(e[1], e[2]) for e in got[2] if e[0] == x.id] == [(1, "STOCK_CHANGED"), (2, "LOW_STOCK"), (3, "STOCK_CHANGED")]


async def test_a_refused_change_puts_back_the_batch_and_writes_nothing(db):
    x, y, z = await _levels()
    before = await _state()
    changes = [
        Change(x.id, ALLOC, d_allocated=3),
        Change(y.id, ALLOC, d_allocated=4),
        Change(x.id, ALLOC, d_allocated=6),  # 3 + 6 > 10 - 2 safety stock: refused in the second round
        Change(z.id, ALLOC, d_allocated=1),
    ]
    with pytest.raises(StockConflict) as exc:
        await move_many(changes, actor=ACTOR)
    assert (exc.value.level_id, exc.value.available) == (x.id, 8)
    assert await _state() == before


async def test_a_refused_change_in_the_first_round_leaves_the_others_untouched(db):
    x, y, z = await _levels()
    before = await _state()
    with pytest.raises(StockConflict) as exc:
        await move_many([Change(x.id, ALLOC, d_allocated=1), Change(y.id, ALLOC, d_allocated=5)], actor=ACTOR)
    assert (exc.value.level_id, exc.value.available) == (y.id, 4)
    assert await _state() == before


async def _locked(*levels):
    from ordergraph.workflows.stock import get_level  # noqa: PLC0415

    return {lv.id: await get_level(lv.id) for lv in levels}


async def test_changes_given_the_locked_state_write_what_the_plain_batch_writes(db):
    x, y, z = await _levels()
    with pytest.raises(_RollBack):
        async with transaction():
            plain = await move_many(_changes(x, y, z), actor=ACTOR)
            expected = await _state()
            raise _RollBack
    async with transaction():
        given = await move_many(_changes(x, y, z), actor=ACTOR, locked=await _locked(x, y, z))
    assert given == plain
    got = await _state()
    assert got == expected
    assert [(e[1], e[2]) for e in got[2] if e[0] == x.id] == [(1, "STOCK_CHANGED"), (2, "LOW_STOCK"), (3, "STOCK_CHANGED")]


async def test_a_change_refused_against_the_locked_state_writes_nothing(db):
    x, y, z = await _levels()
    before = await _state()
    changes = [Change(x.id, ALLOC, d_allocated=3), Change(y.id, ALLOC, d_allocated=4), Change(x.id, ALLOC, d_allocated=6)]
    with pytest.raises(StockConflict) as exc:
        async with transaction():
            await move_many(changes, actor=ACTOR, locked=await _locked(x, y, z))
    assert (exc.value.level_id, exc.value.available) == (x.id, 8)  # as the plain batch reports it: before the batch
    assert await _state() == before


def _distinct(x, y, z):
    # each level once (what move_fitting takes): x crosses its reorder point (available 8 -> 5)
    return [
        Change(x.id, ALLOC, d_allocated=3, reference="SO-1", order_id=1, reason="r"),
        Change(y.id, ALLOC, d_allocated=4, reference="SO-1", order_id=1, reason="r"),
        Change(z.id, MovementKind.RECEIPT, d_on_hand=5, reference="PO-9"),
    ]


def _postgres_only(backend):
    if backend != "postgres":
        pytest.skip("PostgreSQL-only test (run with --backend postgres)")


async def test_one_statement_writes_what_the_plain_batch_writes_and_publishes_it(db, backend):
    from ordergraph.workflows.events import set_event_sink  # noqa: PLC0415
    from ordergraph.workflows.stock import fits_in_one_statement, move_fitting  # noqa: PLC0415

    _postgres_only(backend)
    x, y, z = await _levels()
    assert fits_in_one_statement(_distinct(x, y, z)) and not fits_in_one_statement(_changes(x, y, z))
    with pytest.raises(_RollBack):
        async with transaction():
            plain = await move_many(_distinct(x, y, z), actor=ACTOR)
            expected = await _state()
            raise _RollBack
    published = []
    previous = set_event_sink(lambda e, routing: published.append((e, routing)))
    try:
        async with transaction():
            fitted = await move_fitting(_distinct(x, y, z), actor=ACTOR)
    finally:
        set_event_sink(previous)
    assert fitted == plain
    got = await _state()
    assert got == expected  # levels, ledger, and every event's sequence, type and data
    assert [(e[0], e[1], e[2]) for e in got[2]] == [
        (x.id, 1, "STOCK_CHANGED"), (x.id, 2, "LOW_STOCK"), (y.id, 1, "STOCK_CHANGED"), (z.id, 1, "STOCK_CHANGED")]
    # What goes to subscribers is what the table holds, with the level's routing.
    stored = {e.id: e for e in await Event.filter(aggregate_type="InventoryLevel")}
    assert sorted(e.id for e, _ in published) == sorted(stored)
    for e, routing in published:
        s = stored[e.id]
        assert (e.aggregate_id, e.sequence, e.type, e.data, e.actor) == (s.aggregate_id, s.sequence, s.type, s.data, s.actor)
        level = next(lv for lv in (x, y, z) if lv.id == e.aggregate_id)
        assert routing == {"inventory": {"warehouse_id": level.warehouse_id, "variant_id": level.variant_id}}


async def test_one_statement_that_no_longer_fits_returns_none_and_the_rollback_leaves_nothing(db, backend):
    from ordergraph.workflows.stock import move_fitting  # noqa: PLC0415

    _postgres_only(backend)
    x, y, z = await _levels()
    before = await _state()
    changes = [Change(x.id, ALLOC, d_allocated=3), Change(y.id, ALLOC, d_allocated=5)]  # y has 4
    with pytest.raises(_RollBack):
        async with transaction():
            assert await move_fitting(changes, actor=ACTOR) is None
            raise _RollBack
    assert await _state() == before


async def test_one_statement_waiting_for_a_lock_numbers_its_events_after_the_holder_s(db, backend):
    """The statement's snapshot predates the commit of the transaction whose lock it waited for;
    the sequences are read once the lock is held (og_last_sequence), so they follow that
    transaction's events instead of colliding with them."""
    import asyncio  # noqa: PLC0415

    from ordergraph.workflows.stock import move_fitting  # noqa: PLC0415

    _postgres_only(backend)
    x, y, z = await _levels()
    holding, release = asyncio.Event(), asyncio.Event()

    async def holder():
        async with transaction():
            await move_many([Change(x.id, ALLOC, d_allocated=1, reference="SO-A")], actor=ACTOR)  # x locked
            holding.set()
            await release.wait()

    async def waiter():
        await holding.wait()
        async with transaction():
            return await move_fitting([Change(x.id, ALLOC, d_allocated=2, reference="SO-B"),
                                       Change(y.id, ALLOC, d_allocated=1, reference="SO-B")], actor=ACTOR)

    first = asyncio.create_task(holder())
    second = asyncio.create_task(waiter())
    await holding.wait()
    await asyncio.sleep(0.3)
    assert not second.done()  # waiting for x's row lock
    release.set()
    await first
    after = await asyncio.wait_for(second, 10)
    assert [(s.id, s.allocated) for s in after] == [(x.id, 3), (y.id, 1)]
    events = [(e[0], e[1], e[2], e[3].get("reference")) for e in (await _state())[2]]
    assert events == [(x.id, 1, "STOCK_CHANGED", "SO-A"), (x.id, 2, "STOCK_CHANGED", "SO-B"), (x.id, 3, "LOW_STOCK", None),
                      (y.id, 1, "STOCK_CHANGED", "SO-B")]
