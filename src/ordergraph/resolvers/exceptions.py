"""Exceptions: the queue for operations staff (read with orders:read, act with orders:write)."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry import relay
from strawberry.types import Info

from ordergraph.models import OrderException
from ordergraph.resolvers.mutation import run_mutation
from ordergraph.schema.common import Connection, paginate, require_scope
from ordergraph.schema.enums import ExceptionKind, ExceptionStatus, Severity, Team
from ordergraph.schema.errors import (
    IdempotencyKeyReusedError,
    InvalidInputError,
    InvalidTransitionError,
    NotAuthorizedError,
    NotFoundError,
    OperationError,
)
from ordergraph.schema.exceptions import ExceptionType
from ordergraph.auth.permissions import can_write_order
from ordergraph.resolvers.orders import AddressInput, OrderResult, _address, _order_payload, writable_order
from ordergraph.workflows import exceptions as wf
from ordergraph.workflows import resolutions
from ordergraph.workflows.errors import DomainError, ErrorCode

SCOPE = "orders:write"

@strawberry.type
class ExceptionPayload:
    exception: ExceptionType


ExceptionResult = Annotated[
    ExceptionPayload | InvalidInputError | NotFoundError | NotAuthorizedError | InvalidTransitionError
    | IdempotencyKeyReusedError | OperationError,
    strawberry.union("ExceptionResult"),
]


@strawberry.input
class ExceptionFilter:
    kind: list[ExceptionKind] | None = None
    severity: list[Severity] | None = None
    team: list[Team] | None = None
    status: list[ExceptionStatus] | None = None
    order_number: str | None = None
    overdue: bool | None = None


def _exc_id(info: Info, gid: relay.GlobalID) -> int:
    if not info.context.viewer.is_staff:
        raise DomainError(ErrorCode.FORBIDDEN, "exceptions are handled by staff")
    if gid.type_name != "Exception" or not gid.node_id.isdigit():
        raise DomainError(ErrorCode.NOT_FOUND, "no such exception", ["id"])
    return int(gid.node_id)


async def _payload(exc: OrderException) -> ExceptionPayload:
    return ExceptionPayload(exception=ExceptionType.from_model(await OrderException.get(id=exc.id)))


@strawberry.type
class ExceptionQuery:
    @strawberry.field(description="Exceptions, most severe and oldest first; filter by kind, severity, team, status.")
    async def exceptions(self, info: Info, filter: ExceptionFilter | None = None, first: int | None = None,
                         after: str | None = None) -> Connection[ExceptionType]:
        require_scope(info, "orders:read")
        from datetime import UTC, datetime  # noqa: PLC0415

        qs = OrderException.all() if info.context.viewer.is_staff else OrderException.filter(id=-1)
        if filter is not None:
            if filter.kind:
                qs = qs.filter(kind__in=[k.value for k in filter.kind])
            if filter.severity:
                qs = qs.filter(severity__in=[s.value for s in filter.severity])
            if filter.team:
                qs = qs.filter(team__in=[t.value for t in filter.team])
            if filter.status:
                qs = qs.filter(status__in=[s.value for s in filter.status])
            if filter.order_number:
                from ordergraph.models import Order  # noqa: PLC0415

                order = await Order.get_or_none(number=filter.order_number)
                qs = qs.filter(order_id=order.id if order else -1)
            if filter.overdue is not None:
                now = datetime.now(UTC)
                qs = qs.filter(resolved_at__isnull=True, sla_due_at__lt=now) if filter.overdue else \
                    qs.exclude(resolved_at__isnull=True, sla_due_at__lt=now)

        async def nodes(rows):
            return [ExceptionType.from_model(e) for e in rows]

        return await paginate(info, qs.order_by("sla_due_at", "id"), first, after, nodes)

    @strawberry.field
    async def exception(self, info: Info, number: str) -> ExceptionType | None:
        if not (info.context.viewer.is_staff and info.context.viewer.has_scope("orders:read")):
            return None
        exc = await OrderException.get_or_none(number=number)
        return ExceptionType.from_model(exc) if exc else None


@strawberry.type
class ExceptionMutation:
    @strawberry.mutation(description="Someone owns it now: escalation stops.")
    async def acknowledge_exception(self, info: Info, id: relay.GlobalID, assignee: str | None = None,
                                    idempotency_key: str | None = None) -> ExceptionResult:
        return await run_mutation(info, "acknowledgeException", idempotency_key, {"id": str(id), "assignee": assignee},
                                  lambda: wf.acknowledge(_exc_id(info, id), info.context.viewer.actor, assignee=assignee),
                                  _payload, scope=SCOPE)

    @strawberry.mutation
    async def assign_exception(self, info: Info, id: relay.GlobalID, assignee: str, team: Team | None = None,
                               idempotency_key: str | None = None) -> ExceptionResult:
        return await run_mutation(info, "assignException", idempotency_key,
                                  {"id": str(id), "assignee": assignee, "team": team},
                                  lambda: wf.assign(_exc_id(info, id), assignee, info.context.viewer.actor, team=team),
                                  _payload, scope=SCOPE)

    @strawberry.mutation
    async def escalate_exception(self, info: Info, id: relay.GlobalID, reason: str = "",
                                 idempotency_key: str | None = None) -> ExceptionResult:
        return await run_mutation(info, "escalateException", idempotency_key, {"id": str(id), "reason": reason},
                                  lambda: wf.escalate(_exc_id(info, id), info.context.viewer.actor, reason),
                                  _payload, scope=SCOPE)

    @strawberry.mutation(description="Record what was done (the workflow's own mutations resolve their exceptions too).")
    async def resolve_exception(self, info: Info, id: relay.GlobalID, action: str, note: str = "",
                                idempotency_key: str | None = None) -> ExceptionResult:
        return await run_mutation(info, "resolveException", idempotency_key,
                                  {"id": str(id), "action": action, "note": note},
                                  lambda: wf.resolve(_exc_id(info, id), action, note, info.context.viewer.actor),
                                  _payload, scope=SCOPE)

    @strawberry.mutation
    async def dismiss_exception(self, info: Info, id: relay.GlobalID, reason: str,
                                idempotency_key: str | None = None) -> ExceptionResult:
        return await run_mutation(info, "dismissException", idempotency_key, {"id": str(id), "reason": reason},
                                  lambda: wf.dismiss(_exc_id(info, id), reason, info.context.viewer.actor),
                                  _payload, scope=SCOPE)

    @strawberry.mutation
    async def reopen_exception(self, info: Info, id: relay.GlobalID, reason: str,
                               idempotency_key: str | None = None) -> ExceptionResult:
        return await run_mutation(info, "reopenException", idempotency_key, {"id": str(id), "reason": reason},
                                  lambda: wf.reopen(_exc_id(info, id), reason, info.context.viewer.actor),
                                  _payload, scope=SCOPE)


@strawberry.type
class ResolutionMutation:
    """Resolution actions: each runs the real workflow and resolves the exceptions it fixes (or
    the one given as `exceptionId`)."""

    @strawberry.mutation(description="Reroute the units a warehouse has not started picking to the other warehouses.")
    async def reallocate_order(self, info: Info, order_id: relay.GlobalID, warehouse: str,
                               exception_id: relay.GlobalID | None = None,
                               idempotency_key: str | None = None) -> OrderResult:
        async def action():
            from ordergraph.models import Warehouse  # noqa: PLC0415

            oid = await writable_order(info, order_id)
            wh = await Warehouse.get_or_none(code=warehouse)
            if wh is None:
                raise DomainError(ErrorCode.NOT_FOUND, f"no warehouse {warehouse!r}", ["warehouse"])
            return await resolutions.reallocate(oid, wh.id, info.context.viewer.actor, exception_id=_opt(info, exception_id))

        return await run_mutation(info, "reallocateOrder", idempotency_key,
                                  {"order": str(order_id), "warehouse": warehouse, "exc": str(exception_id)},
                                  action, _order_payload, scope=SCOPE)

    @strawberry.mutation(description="Send a lost or refused parcel's contents again, as a linked replacement order at "
                                     "no charge; returns the replacement.")
    async def reship(self, info: Info, shipment_id: relay.GlobalID, exception_id: relay.GlobalID | None = None,
                     idempotency_key: str | None = None) -> OrderResult:
        async def action():
            from ordergraph.models import Order, Shipment  # noqa: PLC0415

            sid = int(shipment_id.node_id) if shipment_id.type_name == "Shipment" and shipment_id.node_id.isdigit() else -1
            shipment = await Shipment.get_or_none(id=sid)
            order = await Order.get_or_none(id=shipment.order_id) if shipment else None
            if order is None or not can_write_order(info.context.viewer, order):
                raise DomainError(ErrorCode.NOT_FOUND, "no such shipment", ["shipmentId"])
            return await resolutions.reship(sid, info.context.viewer.actor, exception_id=_opt(info, exception_id))

        return await run_mutation(info, "reship", idempotency_key, {"shipment": str(shipment_id), "exc": str(exception_id)},
                                  action, _order_payload, scope=SCOPE)

    @strawberry.mutation(description="Correct the shipping address before anything has a label; releases an ADDRESS hold.")
    async def update_shipping_address(self, info: Info, order_id: relay.GlobalID, address: AddressInput,
                                      exception_id: relay.GlobalID | None = None,
                                      idempotency_key: str | None = None) -> OrderResult:
        async def action():
            oid = await writable_order(info, order_id)
            return await resolutions.update_shipping_address(oid, _address(address), info.context.viewer.actor,
                                                             exception_id=_opt(info, exception_id))

        return await run_mutation(info, "updateShippingAddress", idempotency_key,
                                  {"order": str(order_id), "address": address, "exc": str(exception_id)},
                                  action, _order_payload, scope=SCOPE)

    @strawberry.mutation(description="Cancel the order (allocations back, payment voided or refunded) and resolve its "
                                     "exceptions.")
    async def cancel_and_refund(self, info: Info, order_id: relay.GlobalID, reason: str,
                                exception_id: relay.GlobalID | None = None,
                                idempotency_key: str | None = None) -> OrderResult:
        async def action():
            oid = await writable_order(info, order_id)
            return await resolutions.cancel_and_refund(oid, reason, info.context.viewer.actor,
                                                       exception_id=_opt(info, exception_id))

        return await run_mutation(info, "cancelAndRefund", idempotency_key,
                                  {"order": str(order_id), "reason": reason, "exc": str(exception_id)},
                                  action, _order_payload, scope=SCOPE)


def _opt(info: Info, gid: relay.GlobalID | None) -> int | None:
    return None if gid is None else _exc_id(info, gid)
