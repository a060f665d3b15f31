"""The message an event becomes on the bus, and the topics it is routed to."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

Topic = tuple[str, ...]


@dataclass(frozen=True)
class EventMessage:
    id: int  # the event's row id: the global cursor
    aggregate_type: str
    aggregate_id: int
    sequence: int  # per aggregate: orders and de-duplicates
    type: str
    data: dict[str, Any]
    actor: str
    created_at: str
    order_id: int | None = None
    routing: dict[str, Any] = field(default_factory=dict)

    @property
    def aggregate(self) -> tuple[str, int]:
        return (self.aggregate_type, self.aggregate_id)

    def topics(self) -> list[Topic]:
        """Where local subscribers listen for it (see Hub)."""
        out: list[Topic] = [("all",)]
        order = self.routing.get("order")
        if order:
            out += [("order", order["id"]), ("orders",), ("channel", order["channel_id"]), ("customer", order["email"])]
        inventory = self.routing.get("inventory")
        if inventory:
            out.append(("inventory",))
            if self.type == "LOW_STOCK":
                out.append(("low-stock",))
        if self.aggregate_type == "Exception":
            out.append(("exceptions",))
        return out

    def encode(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str | bytes) -> EventMessage:
        return cls(**json.loads(raw))

    @classmethod
    def from_event(cls, event: Any, routing: dict[str, Any]) -> EventMessage:
        created = event.created_at
        return cls(
            id=event.id,
            aggregate_type=event.aggregate_type,
            aggregate_id=event.aggregate_id,
            sequence=event.sequence,
            type=event.type,
            data=event.data,
            actor=event.actor,
            created_at=created.isoformat() if isinstance(created, datetime) else str(created),
            order_id=event.order_id,
            routing=routing,
        )
