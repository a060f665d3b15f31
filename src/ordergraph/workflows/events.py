"""Writing events: every state change records one row in the same transaction."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from tortoise.backends.base.client import TransactionalDBClient
from tortoise.functions import Max

from ordergraph.db import after_commit, conn
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
# aggregate in that transaction need no MAX() query. Keyed by the transaction's client.
_sequences: ContextVar[tuple[Any, dict[tuple[str, int], int]] | None] = ContextVar("_sequences", default=None)


def _tx_cache() -> dict[tuple[str, int], int] | None:
    client = conn()
    if not isinstance(client, TransactionalDBClient):
        return None
    current = _sequences.get()
    if current is None or current[0] is not client:
        current = (client, {})
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
    that statement holds the row lock which makes `max(sequence) + 1` safe; the unique
    (aggregate_type, aggregate_id, sequence) constraint is the last line.
    """
    cache = _tx_cache()
    key = (aggregate_type, aggregate_id)
    if cache is not None and key in cache:
        last = cache[key]
    elif new_aggregate:
        last = 0  # created in this transaction: no earlier events can exist
    else:
        row = (
            await Event.filter(aggregate_type=aggregate_type, aggregate_id=aggregate_id)
            .annotate(m=Max("sequence"))
            .first()
            .values("m")
        )
        last = (row or {}).get("m") or 0
    sequence = last + 1
    if cache is not None:
        cache[key] = sequence
    event = await Event.create(
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        sequence=sequence,
        order_id=order_id,
        type=type_,
        data=jsonable(data or {}),
        actor=actor,
    )
    _publish_after_commit(event, routing or {})
    return event


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
    return await record_event(
        "Order", order.id, type_, actor, data, order_id=order.id, new_aggregate=new, routing=order_routing(order)
    )
