"""workflows.events: batches in one INSERT, the events held back by `deferred()`, the sink."""

import logging
from datetime import datetime

import pytest

from ordergraph.db import transaction
from ordergraph.models import Event
from ordergraph.workflows.events import NewEvent, deferred, record_event, record_events, set_event_sink


class _Statements(logging.Handler):
    """Counts the statements Tortoise's clients send (raw SQL included)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.sent: list[str] = []

    def emit(self, record):
        self.sent.append(str(record.msg if isinstance(record.msg, str) and not record.args else record.args[0]))

    def __enter__(self):
        self.logger = logging.getLogger("tortoise.db_client")
        self.level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)

    def writes(self) -> list[str]:
        return [s for s in self.sent if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]


@pytest.fixture
def published():
    seen: list[tuple[str, int, int, str]] = []
    previous = set_event_sink(lambda e, routing: seen.append((e.aggregate_type, e.aggregate_id, e.sequence, e.type)))
    yield seen
    set_event_sink(previous)


async def _rows():
    return [(e.aggregate_type, e.aggregate_id, e.sequence, e.type) for e in await Event.all().order_by("id")]


class _RollBack(Exception):
    pass


async def test_a_batch_is_one_insert_with_each_aggregate_s_next_sequences_in_order(db, published):
    async with transaction():
        await record_event("A", 1, "A1", "test")
        await record_event("A", 1, "A2", "test")
    with _Statements() as log:
        async with transaction():
            written = await record_events([
                NewEvent("A", 1, "A3", "test", {"n": 3}),
                NewEvent("B", 7, "B1", "test"),
                NewEvent("A", 1, "A4", "test"),
                NewEvent("C", 9, "C1", "test", new_aggregate=True),
                NewEvent("A", 2, "X1", "test"),
            ])
    # A has two events here: its last sequence is read once first; B and A/2 get theirs in the INSERT.
    assert len(log.writes()) == 1
    assert len(log.sent) == 2
    assert [(e.aggregate_type, e.aggregate_id, e.sequence, e.type) for e in written] == [
        ("A", 1, 3, "A3"), ("B", 7, 1, "B1"), ("A", 1, 4, "A4"), ("C", 9, 1, "C1"), ("A", 2, 1, "X1")]
    assert await _rows() == [("A", 1, 1, "A1"), ("A", 1, 2, "A2"), *[
        (e.aggregate_type, e.aggregate_id, e.sequence, e.type) for e in written]]
    stored = {e.id: e for e in await Event.all()}
    for e in written:
        assert (stored[e.id].sequence, stored[e.id].type, stored[e.id].data) == (e.sequence, e.type, e.data)
        assert stored[e.id].created_at == e.created_at and e.created_at.tzinfo is not None
    assert published == await _rows()


async def test_one_event_is_one_statement_and_the_transaction_remembers_its_sequence(db):
    with _Statements() as log:
        async with transaction():
            await record_event("A", 1, "A1", "test")
            await record_event("A", 1, "A2", "test", {"x": [1, "y"]})
    assert len(log.sent) == 2  # no SELECT max(sequence): read inside the INSERT, then remembered
    assert await _rows() == [("A", 1, 1, "A1"), ("A", 1, 2, "A2")]
    assert (await Event.get(type="A2")).data == {"x": [1, "y"]}


async def test_deferred_events_are_written_at_the_end_of_the_block_in_one_insert(db, published):
    async with transaction():
        await record_event("A", 1, "A1", "test")
    with _Statements() as log:
        async with transaction(), deferred():
            first = await record_event("O", 5, "PLACED", "test", new_aggregate=True)
            await record_events([NewEvent("A", 1, "A2", "test"), NewEvent("B", 2, "B1", "test")])
            await record_event("O", 5, "CONFIRMED", "test")
            await record_event("A", 1, "A3", "test")
            assert await Event.all().count() == 1  # nothing written yet
            assert first.id is None
            assert published == [("A", 1, 1, "A1")]
    assert len(log.writes()) == 1
    assert first.id is not None
    assert await _rows() == [("A", 1, 1, "A1"), ("O", 5, 1, "PLACED"), ("A", 1, 2, "A2"), ("B", 2, 1, "B1"),
                             ("O", 5, 2, "CONFIRMED"), ("A", 1, 3, "A3")]
    assert published == await _rows()


async def test_a_deferred_block_that_raises_writes_and_publishes_nothing(db, published):
    with pytest.raises(_RollBack):
        async with transaction(), deferred():
            await record_event("O", 5, "PLACED", "test", new_aggregate=True)
            raise _RollBack
    assert await _rows() == []
    assert published == []


async def test_a_savepoint_in_a_deferred_block_sees_the_held_events_and_its_rollback_drops_only_its_own(db, published):
    async with transaction(), deferred():
        await record_event("O", 5, "PLACED", "test", new_aggregate=True)
        with pytest.raises(_RollBack):
            async with transaction():
                assert await _rows() == [("O", 5, 1, "PLACED")]  # flushed before the savepoint
                await record_event("O", 5, "IN_SAVEPOINT", "test")
                raise _RollBack
        async with transaction():
            await record_event("O", 5, "KEPT", "test")
        await record_event("O", 5, "LAST", "test")
    assert await _rows() == [("O", 5, 1, "PLACED"), ("O", 5, 2, "KEPT"), ("O", 5, 3, "LAST")]
    assert published == await _rows()


async def test_outside_a_transaction_events_are_written_at_once(db, published):
    async with deferred():  # no transaction: nothing to hold them for
        event = await record_event("A", 1, "A1", "test")
        assert isinstance(event.id, int)
        assert await _rows() == [("A", 1, 1, "A1")]
    assert published == [("A", 1, 1, "A1")]
    assert isinstance((await Event.get(id=event.id)).created_at, datetime)
