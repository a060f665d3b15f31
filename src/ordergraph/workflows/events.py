"""Writing events: every state change records one row in the same transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from ordergraph.db import (
    Params,
    Raw,
    after_commit,
    current_scope,
    fetch,
    flush_before_savepoints,
    insert_rows,
    insert_sql,
    model_rows,
)
from ordergraph.models import Event

# Where committed events go (the outbox publisher, installed by the app); None: nowhere yet,
# and the relay publishes them from the table. Called with the event and its routing facts.
EventSink = Callable[[Event, dict[str, Any]], None]
_sink: EventSink | None = None


def set_event_sink(sink: EventSink | None) -> EventSink | None:
    """Install the sink; returns the previous one."""
    global _sink  # noqa: PLW0603 - one sink per process
    previous, _sink = _sink, sink
    return previous


def _publish_after_commit(event: Event, routing: dict[str, Any]) -> None:
    sink = _sink
    if sink is not None:
        after_commit(lambda: sink(event, routing))

# Last sequence written per aggregate in the current transaction: later events of the same
# aggregate in that transaction need no MAX() query. Keyed by the transaction (or savepoint).
_sequences: ContextVar[tuple[Any, dict[tuple[str, int], int]] | None] = ContextVar("_sequences", default=None)


def _tx_cache() -> dict[tuple[str, int], int] | None:
    scope = current_scope()
    if scope is None:
        return None
    current = _sequences.get()
    if current is None or current[0] is not scope:
        # A new transaction, or a savepoint entered or left: what it knew may be wrong now.
        current = (scope, {})
        _sequences.set(current)
    return current[1]


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One event to append (the arguments of `record_event`)."""

    aggregate_type: str
    aggregate_id: int
    type: str
    actor: str
    data: dict[str, Any] | None = None
    order_id: int | None = None
    new_aggregate: bool = False
    routing: dict[str, Any] | None = None


def new_event(e: NewEvent, sequence: int | None, now: datetime) -> Event:
    """The Event `e` becomes (its id set once written)."""
    return Event._init_from_db(
        id=None, aggregate_type=e.aggregate_type, aggregate_id=e.aggregate_id, sequence=sequence,
        order_id=e.order_id, type=e.type, data=jsonable(e.data or {}), actor=e.actor, created_at=now,
        published_at=None,
    )


def _written(events: Sequence[tuple[Event, dict[str, Any]]], cache: dict[tuple[str, int], int] | None) -> None:
    """Events just inserted (ids and sequences set), with their routing: remembered in `cache`
    as the transaction's last sequences, and published after commit."""
    for event, routing in events:
        if cache is not None:
            key = (event.aggregate_type, event.aggregate_id)
            cache[key] = max(cache.get(key, 0), event.sequence)
        _publish_after_commit(event, routing)


def written_by_caller(events: Sequence[tuple[Event, dict[str, Any]]]) -> None:
    """Events a caller's own statement has just inserted (ids and sequences set), with their
    routing: remembered as this transaction's last sequences and published after commit, as
    the events `record_events` writes are."""
    _written(events, _tx_cache())


# The aggregate's last sequence: one entry of the (aggregate_type, aggregate_id, sequence) index,
# however long its history. (max(sequence) read every event of the aggregate whenever the
# planner's statistics were older than its history: thousands for a busy inventory level.)
_LAST = "(SELECT sequence FROM events WHERE aggregate_type = {} AND aggregate_id = {} ORDER BY sequence DESC LIMIT 1)"
# The aggregate's next sequence, read in the INSERT itself: the caller holds the aggregate's row
# lock (see `record_event`).
_NEXT = f"coalesce({_LAST}, 0) + {{}}"


class _Batch:
    """Events waiting to be written in one INSERT, in the order they were recorded."""

    def __init__(self, scope: object | None) -> None:
        self.scope = scope
        self.events: list[tuple[Event, dict[str, Any], int]] = []  # event, routing, offset (0: sequence known)
        self.unknown: dict[tuple[str, int], int] = {}  # aggregates whose last sequence is read at flush time

    def add(self, e: NewEvent, cache: dict[tuple[str, int], int] | None, now: datetime) -> Event:
        key = (e.aggregate_type, e.aggregate_id)
        offset = 0
        if key in self.unknown:
            offset = self.unknown[key] = self.unknown[key] + 1
            sequence = None
        elif cache is not None and key in cache:
            sequence = cache[key] = cache[key] + 1
        elif e.new_aggregate:
            sequence = 1  # created in this transaction: no earlier events can exist
            if cache is not None:
                cache[key] = 1
        else:
            offset = self.unknown[key] = 1
            sequence = None
        event = new_event(e, sequence, now)
        self.events.append((event, e.routing or {}, offset))
        return event

    async def flush(
        self, cache: dict[tuple[str, int], int] | None, before: Callable[[Params], str] | None = None,
        returning: str = "",
    ) -> list[dict[str, Any]]:
        """One INSERT for every held event; ids, sequences, the cache and the sink follow it.
        `before`/`returning`: see `record_events_with`; returns the INSERT's rows.

        An aggregate whose last sequence is not known yet and that has one event here gets its
        sequence inside the INSERT; one with several gets it from one SELECT before (a later row
        of a multi-row INSERT may or may not see the earlier ones, depending on the database).
        """
        if not self.events:
            return []
        pending, self.events = self.events, []
        unknown, self.unknown = self.unknown, {}
        several = [k for k, n in unknown.items() if n > 1]
        last = await _last_sequences(several) if several else {}
        for i, (event, routing, offset) in enumerate(pending):
            key = (event.aggregate_type, event.aggregate_id)
            if key in last:
                event.sequence = last[key] + offset
                pending[i] = (event, routing, 0)
        rows = [_row(event) for event, _, _ in pending]
        written = await insert_rows(
            Event, rows, returning="id, aggregate_type, aggregate_id, sequence" + (f", {returning}" if returning else ""),
            before=before,
        )
        # RETURNING promises no order: match each row on its aggregate and sequence (an aggregate
        # whose sequence was read in the INSERT has exactly one row).
        by_key = {(r["aggregate_type"], r["aggregate_id"]): r for r in written}
        by_seq = {(r["aggregate_type"], r["aggregate_id"], r["sequence"]): r for r in written}
        for event, _, offset in pending:
            key = (event.aggregate_type, event.aggregate_id)
            row = by_key[key] if offset else by_seq[(*key, event.sequence)]
            event.id, event.sequence = row["id"], row["sequence"]
        _written([(event, routing) for event, routing, _ in pending], cache)
        return written

    def take_as_cte(self, p: Params, cache: dict[tuple[str, int], int] | None) -> tuple[str, Callable[[list[int]], None]] | None:
        """PostgreSQL: every held event, if all their sequences are known, as the CTE `_ev` (an
        INSERT returning `id`) of a statement the caller runs, and the function to call with
        `ARRAY(SELECT id FROM _ev ORDER BY id)` from its result (one INSERT numbers its rows in
        the order they are listed). None (nothing taken) when some sequence must still be read."""
        if not self.events or self.unknown:
            return None
        pending, self.events = self.events, []
        columns, values = model_rows(Event, [_row(event) for event, _, _ in pending])
        sql = f"_ev AS ({insert_sql('events', columns, values, 'id', params=p)[0]})"

        def written(ids: list[int]) -> None:
            for (event, _, _), id_ in zip(pending, ids, strict=True):
                event.id = id_
            _written([(event, routing) for event, routing, _ in pending], cache)

        return sql, written


def _row(event: Event) -> dict[str, Any]:
    """The INSERT row of a held event (its sequence read in the INSERT when not known yet)."""
    key = (event.aggregate_type, event.aggregate_id)
    return {"aggregate_type": event.aggregate_type, "aggregate_id": event.aggregate_id,
            "sequence": Raw(_NEXT, *key, 1) if event.sequence is None else event.sequence,
            "order_id": event.order_id, "type": event.type, "data": event.data, "actor": event.actor,
            "created_at": event.created_at}


def deferred_as_cte(p: Params) -> tuple[str, Callable[[list[int]], None]] | None:
    """The events `deferred()` holds in the current transaction as a CTE of the caller's
    statement (see `_Batch.take_as_cte`); None when there are none or they cannot go."""
    held = _deferred.get()
    if held is None or held.scope is not current_scope():
        return None
    return held.take_as_cte(p, _tx_cache())


async def _last_sequences(keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    p = Params()
    sql = " UNION ALL ".join(f"SELECT {i} AS k, {_LAST.format(p(t), p(a))} AS m" for i, (t, a) in enumerate(keys))
    rows = await fetch(sql, p.values)
    found = {r["k"]: r["m"] for r in rows}
    return {key: found.get(i) or 0 for i, key in enumerate(keys)}


# The batch held back by `deferred()` in the current transaction, if any.
_deferred: ContextVar[_Batch | None] = ContextVar("_deferred", default=None)


async def record_events(events: Sequence[NewEvent]) -> list[Event]:
    """Append several events (in order) in one INSERT: `record_event` for each, in one statement.

    Inside `deferred()` they join the transaction's held-back batch instead; their ids are set
    when it is written.
    """
    if not events:
        return []
    cache = _tx_cache()
    now = datetime.now(UTC)
    held = _deferred.get()
    batch = held if held is not None and held.scope is current_scope() else _Batch(None)
    out = [batch.add(e, cache, now) for e in events]
    if batch is not held:
        await batch.flush(cache)
    return out


async def record_events_with(
    before: Callable[[Params], str], events: Sequence[NewEvent], returning: str
) -> dict[str, Any]:
    """Write `events` at once, with any this transaction holds back (`deferred`), in one INSERT
    that `before(params)` gives a WITH clause (PostgreSQL only: other writes in the same
    statement). Returns the `returning` columns of one row of the INSERT."""
    if not events:
        raise ValueError("record_events_with needs at least one event")
    cache = _tx_cache()
    now = datetime.now(UTC)
    held = _deferred.get()
    batch = held if held is not None and held.scope is current_scope() else _Batch(None)
    for e in events:
        batch.add(e, cache, now)
    return (await batch.flush(cache, before, returning))[0]


async def record_event(
    aggregate_type: str,
    aggregate_id: int,
    type_: str,
    actor: str,
    data: dict[str, Any] | None = None,
    order_id: int | None = None,
    new_aggregate: bool = False,
    routing: dict[str, Any] | None = None,
) -> Event:
    """Append an event to an aggregate's stream.

    Call it after the statement that changed the aggregate's row in the same transaction:
    that statement holds the row lock which makes the next sequence safe; the unique
    (aggregate_type, aggregate_id, sequence) constraint is the last line. One statement: the
    sequence is read inside the INSERT unless this transaction already knows it.
    """
    event = NewEvent(aggregate_type, aggregate_id, type_, actor, data, order_id, new_aggregate, routing)
    return (await record_events([event]))[0]


@asynccontextmanager
async def deferred() -> AsyncIterator[None]:
    """Inside a transaction: hold the events recorded in the block and write them all in one
    INSERT when it ends (and before any savepoint opens within it), still in the transaction.

    Each event keeps its place (ids in recording order), its sequence and its time of
    recording; the sink still gets them only after commit. Nothing is written if the block
    raises. Code in the block must not read back the events it recorded.
    """
    scope = current_scope()
    if scope is None or _deferred.get() is not None:
        yield  # outside a transaction (or already deferring): write as usual
        return
    batch = _Batch(scope)
    token = _deferred.set(batch)

    async def flush() -> None:
        await batch.flush(_tx_cache() if current_scope() is scope else None)

    try:
        with flush_before_savepoints(flush):
            yield
    finally:
        _deferred.reset(token)
    await flush()


def order_routing(order: Any) -> dict[str, Any]:
    """What subscribers are routed and authorized by, known without reading the order again."""
    return {
        "order": {
            "id": order.id,
            "number": order.number,
            "status": str(order.status),
            "channel_id": order.channel_id,
            "email": order.customer_email,
        }
    }


async def order_event(order: Any, type_: str, actor: str, *, new: bool = False, **data: Any) -> Event:
    return await order_part_event("Order", order.id, order, type_, actor, data, new=new)


async def order_part_event(aggregate_type: str, aggregate_id: int, order: Any, type_: str, actor: str,
                           data: dict[str, Any], *, new: bool = False, routing: dict[str, Any] | None = None) -> Event:
    """An event of the order or of something of it (a fulfillment order, a shipment, a return):
    on its own stream, on the order's timeline, and routed as the order's events are (plus
    `routing`)."""
    return await record_event(aggregate_type, aggregate_id, type_, actor, data, order_id=order.id, new_aggregate=new,
                              routing={**order_routing(order), **(routing or {})})
