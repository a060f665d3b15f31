"""Exceptions in the graph."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.types import Info

from ordergraph.models import Order, OrderException
from ordergraph.schema.enums import ExceptionKind, ExceptionStatus, Severity, Team
from ordergraph.workflows.exceptions import EXCEPTION


@strawberry.type(name="Exception", description="A problem of the workflow with an owner, a deadline and a resolution.")
class ExceptionType(relay.Node):
    id: relay.NodeID[int]
    number: str
    kind: ExceptionKind
    severity: Severity
    status: ExceptionStatus
    team: Team
    assignee: str | None
    summary: str
    details: JSON
    sla_due_at: datetime
    escalation_level: int
    raised_at: datetime
    acknowledged_at: datetime | None
    escalated_at: datetime | None
    resolved_at: datetime | None
    resolution_action: str | None
    resolution_note: str | None
    resolved_by: str | None
    model: strawberry.Private[OrderException]

    @classmethod
    def from_model(cls, e: OrderException) -> ExceptionType:
        return cls(id=e.id, number=e.number, kind=e.kind, severity=e.severity, status=e.status, team=e.team,
                   assignee=e.assignee, summary=e.summary, details=e.details, sla_due_at=e.sla_due_at,
                   escalation_level=e.escalation_level, raised_at=e.raised_at, acknowledged_at=e.acknowledged_at,
                   escalated_at=e.escalated_at, resolved_at=e.resolved_at, resolution_action=e.resolution_action,
                   resolution_note=e.resolution_note or None, resolved_by=e.resolved_by, model=e)

    @strawberry.field(description="Past its SLA and not resolved or dismissed.")
    def overdue(self) -> bool:
        return self.resolved_at is None and self.sla_due_at < datetime.now(UTC)

    @strawberry.field
    async def order_number(self) -> str | None:
        if self.model.order_id is None:
            return None
        order = await Order.get_or_none(id=self.model.order_id)
        return order.number if order else None

    @strawberry.field(description="Lifecycle actions allowed now.")
    def available_actions(self) -> list[str]:
        return EXCEPTION.available(self.model)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids, required: bool = False):
        viewer = info.context.viewer
        if not (viewer.is_staff and viewer.has_scope("orders:read")):
            return [None for _ in node_ids]
        rows = {e.id: e for e in await OrderException.filter(id__in=[int(i) for i in node_ids])}
        return [cls.from_model(rows[int(i)]) if int(i) in rows else None for i in node_ids]
