"""Writing events: every state change records one row in the same transaction."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from tortoise.functions import Max

from ordergraph.models import Event


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
) -> Event:
    """Append an event to an aggregate's stream.

    Call it after the statement that changed the aggregate's row in the same transaction:
    that statement holds the row lock which makes `max(sequence) + 1` safe; the unique
    (aggregate_type, aggregate_id, sequence) constraint is the last line.
    """
    row = (
        await Event.filter(aggregate_type=aggregate_type, aggregate_id=aggregate_id)
        .annotate(m=Max("sequence"))
        .first()
        .values("m")
    )
    sequence = ((row or {}).get("m") or 0) + 1
    return await Event.create(
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        sequence=sequence,
        order_id=order_id,
        type=type_,
        data=jsonable(data or {}),
        actor=actor,
    )


async def order_event(order: Any, type_: str, actor: str, **data: Any) -> Event:
    return await record_event("Order", order.id, type_, actor, data, order_id=order.id)
