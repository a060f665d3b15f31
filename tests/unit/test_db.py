"""The database layer: what one pooled query costs."""

import pytest
from asyncpg.connection import Connection

from ordergraph.db import fetch
from ordergraph.models import Warehouse


@pytest.mark.postgres_only
async def test_a_pooled_query_is_one_statement_with_no_reset_on_release(db, monkeypatch):
    sent: list[str] = []
    for name in ("execute", "fetch", "fetchrow", "fetchval"):
        original = getattr(Connection, name)

        async def logged(self, query, *args, _original=original, **kwargs):
            if not query.startswith("UPDATE events SET published_at"):  # a running app's outbox marking its events
                sent.append(query)
            return await _original(self, query, *args, **kwargs)

        monkeypatch.setattr(Connection, name, logged)
    await Warehouse.filter(code="NOPE").first()
    await fetch("SELECT 1 AS one")
    assert len(sent) == 2, sent
    assert not any("RESET" in q.upper() or "advisory" in q for q in sent)
    # The session is what a fresh connection has: nothing was ever SET on it to another value
    # (asyncpg's type introspection, for placeOrder's rows read as records of their table's type,
    # turns jit off and back to what it was: the same value, with source 'session').
    rows = await fetch("SELECT name FROM pg_settings WHERE source = 'session' AND setting IS DISTINCT FROM reset_val")
    assert rows == []


async def test_rows_written_by_create_rows_read_back_as_model_create_writes_them(db):
    """Plain INSERTs through the model's fields: same columns, defaults and conversions."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from ordergraph.db import create_rows, save_fields
    from ordergraph.models import Order
    from ordergraph.models.enums import OrderStatus, ServiceLevel
    from tests import factories as f

    channel = await f.channel("WEB", [await f.warehouse("EAST")])
    now = datetime(2026, 11, 22, 5, 0, 0, 123456, tzinfo=UTC)
    values = {"channel_id": channel.id, "customer_email": "a@example.com", "shipping_address": {"city": "Zürich", "n": 1},
              "service_level": ServiceLevel.EXPRESS, "currency": "USD", "subtotal": Decimal("12.50"),
              "total": Decimal("12.5"), "placed_at": now}
    by_orm = await Order.create(number="SO-A", **values)
    [by_sql] = await create_rows(Order, [{"number": "SO-B", **values}])
    assert by_sql.id == by_orm.id + 1

    def fields(o):
        return {k: getattr(o, k) for k in Order._meta.db_fields if k not in ("id", "number", "updated_at")}

    stored_orm, stored_sql = await Order.get(id=by_orm.id), await Order.get(id=by_sql.id)
    assert fields(stored_sql) == fields(stored_orm)
    assert fields(by_sql) == fields(stored_sql)  # what create_rows returns is what was stored
    assert stored_sql.status is OrderStatus.PENDING and stored_sql.notes == "" and stored_sql.cancelled_at is None
    assert stored_sql.updated_at.tzinfo is not None
    by_sql.status = OrderStatus.CONFIRMED
    by_sql.number = "SO-C"
    await save_fields(by_sql, ["number", "status", "updated_at"])
    again = await Order.get(id=by_sql.id)
    assert (again.number, again.status, again.updated_at) == ("SO-C", OrderStatus.CONFIRMED, by_sql.updated_at)
    assert (await Order.get(id=by_orm.id)).number == "SO-A"


async def test_writes_go_in_one_statement_on_postgres_and_one_each_elsewhere(db, backend):
    import logging

    from ordergraph.db import Writes, insert_sql, model_rows, transaction
    from ordergraph.models import Event

    first = await Event.create(aggregate_type="T", aggregate_id=1, sequence=1, type="A", actor="t")
    other = await Event.create(aggregate_type="T", aggregate_id=3, sequence=1, type="C", actor="t")
    columns, rows = model_rows(Event, [{"aggregate_type": "T", "aggregate_id": 2, "sequence": 1, "type": "B", "actor": "t"}])
    writes = Writes()
    writes.add(lambda p: f"WITH v(x) AS (VALUES (1)) UPDATE events SET type = {p('A2')} FROM v WHERE id = {p(first.id)}")
    writes.add(lambda p: insert_sql("events", columns, rows, params=p)[0])
    writes.add(lambda p: f"UPDATE events SET actor = {p('u')} WHERE id = {p(other.id)}")  # not a row changed above
    sent: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: sent.append(str(record.msg))
    logger = logging.getLogger("tortoise.db_client")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        async with transaction():
            await writes.run()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert len(sent) == (1 if backend == "postgres" else 3)
    stored = [(e.aggregate_id, e.type, e.actor) for e in await Event.all().order_by("id")]
    assert stored == [(1, "A2", "t"), (3, "C", "u"), (2, "B", "t")]
