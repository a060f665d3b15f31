"""Returns: queries and mutations for customers (own orders), partners (their channels) and staff.

Who may do what: a customer, a partner with orders:write on the order's channel, or staff
with orders:write request a return, issue its label and (the requester, or staff) cancel it;
staff, or a partner with returns:write on the channel, approve, decline, refund and close;
staff, or a partner with fulfillment:write on the channel (a 3PL), receive and inspect.
Another's return answers exactly like a missing one.
"""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry import relay
from strawberry.types import Info

from ordergraph.auth.permissions import can_read_order, order_scope
from ordergraph.auth.viewer import Viewer, ViewerKind
from ordergraph.models import Order, ReturnAuthorization
from ordergraph.resolvers.mutation import run_mutation
from ordergraph.resolvers.orders import PaymentInput
from ordergraph.schema.common import Connection, paginate, readable_by_order
from ordergraph.schema.enums import Disposition, ItemCondition, ReturnReason, ReturnStatus
from ordergraph.schema.errors import (
    CarrierFailure,
    IdempotencyKeyReusedError,
    InvalidInputError,
    InvalidTransitionError,
    NotAuthorizedError,
    NotFoundError,
    OperationError,
    PaymentError,
)
from ordergraph.schema.returns import ReturnType
from ordergraph.workflows import returns as wf
from ordergraph.workflows.errors import DomainError, ErrorCode

_ERRORS = (
    InvalidInputError | NotFoundError | NotAuthorizedError | InvalidTransitionError | IdempotencyKeyReusedError
    | OperationError
)


@strawberry.type
class ReturnPayload:
    return_: ReturnType = strawberry.field(name="return")


ReturnResult = Annotated[ReturnPayload | PaymentError | CarrierFailure | _ERRORS, strawberry.union("ReturnResult")]


@strawberry.input
class ReturnLineInput:
    order_line_id: strawberry.ID
    quantity: int
    reason: ReturnReason
    note: str = ""


@strawberry.input
class ReceivedLineInput:
    return_line_id: strawberry.ID
    quantity: int


@strawberry.input
class InspectionInput:
    return_line_id: strawberry.ID
    quantity: int
    condition: ItemCondition
    disposition: Disposition
    warehouse: str | None = strawberry.field(default=None, description="Where RESTOCK puts them (default: the return's).")
    note: str = ""


@strawberry.input
class ExchangeLineInput:
    sku: str
    quantity: int


@strawberry.input
class ReturnFilter:
    status: list[ReturnStatus] | None = None
    order_number: str | None = None


def _missing(field: str = "id") -> DomainError:
    return DomainError(ErrorCode.NOT_FOUND, "no such return", [field])


def _int(value: str, field: str) -> int:
    if not str(value).isdigit():
        raise DomainError(ErrorCode.NOT_FOUND, f"no such {field}", [field])
    return int(value)


def _on_channel(viewer: Viewer, order: Order, scope: str) -> bool:
    if viewer.kind is ViewerKind.STAFF:
        return viewer.has_scope(scope) or viewer.has_scope("orders:write")
    if viewer.kind is ViewerKind.PARTNER:
        return viewer.has_scope(scope) and order.channel_id in viewer.channel_ids
    return False


def _may_request(viewer: Viewer, order: Order) -> bool:
    if viewer.kind is ViewerKind.CUSTOMER:
        return bool(viewer.email) and order.customer_email == viewer.email
    return _on_channel(viewer, order, "orders:write")


async def _return_for(info: Info, gid: relay.GlobalID, allowed) -> ReturnAuthorization:
    """The return if the viewer may read it; FORBIDDEN if it may read but not act; NOT_FOUND otherwise."""
    if gid.type_name != "Return" or not gid.node_id.isdigit():
        raise _missing()
    rma = await ReturnAuthorization.get_or_none(id=int(gid.node_id))
    order = await Order.get_or_none(id=rma.order_id) if rma else None
    viewer = info.context.viewer
    if order is None or not (can_read_order(viewer, order) or _on_channel(viewer, order, "returns:write")):
        raise _missing()
    if not allowed(viewer, order, rma):
        raise DomainError(ErrorCode.FORBIDDEN, "this viewer may not do that to this return")
    return rma


def _requester_or_staff(viewer, order, rma) -> bool:
    return viewer.principal == rma.requested_by or (viewer.is_staff and _on_channel(viewer, order, "orders:write"))


def _may_label(viewer, order, rma) -> bool:
    return viewer.principal == rma.requested_by or _on_channel(viewer, order, "returns:write") or _may_request(viewer, order)


def _reviewer(viewer, order, rma) -> bool:
    return _on_channel(viewer, order, "returns:write")


def _warehouse_hand(viewer, order, rma) -> bool:
    return _on_channel(viewer, order, "fulfillment:write")


async def _payload(rma: ReturnAuthorization) -> ReturnPayload:
    return ReturnPayload(return_=ReturnType.from_model(await ReturnAuthorization.get(id=rma.id)))


@strawberry.type
class ReturnQuery:
    @strawberry.field(name="return", description="One return by global id or RMA number; null when missing or not yours.")
    async def return_(self, info: Info, id: relay.GlobalID | None = None, number: str | None = None) -> ReturnType | None:
        rma = await readable_by_order(info, ReturnAuthorization, "Return", id, number)
        if rma is None:
            return None
        return ReturnType.from_model(rma)

    @strawberry.field(description="Returns of the orders the viewer may read, newest first.")
    async def returns(self, info: Info, filter: ReturnFilter | None = None, first: int | None = None,
                      after: str | None = None) -> Connection[ReturnType]:
        order_ids = await Order.filter(order_scope(info.context.viewer)).values_list("id", flat=True)
        qs = ReturnAuthorization.filter(order_id__in=order_ids) if not info.context.viewer.is_staff else \
            ReturnAuthorization.all() if info.context.viewer.has_scope("orders:read") else ReturnAuthorization.filter(id=-1)
        if filter is not None:
            if filter.status:
                qs = qs.filter(status__in=[s.value for s in filter.status])
            if filter.order_number:
                qs = qs.filter(order__number=filter.order_number)

        async def nodes(rows):
            return [ReturnType.from_model(r) for r in rows]

        return await paginate(info, qs.order_by("-id"), first, after, nodes)


@strawberry.type
class ReturnMutation:
    @strawberry.mutation(description="Ask for units back. Eligibility: delivered units only, not more than delivered minus "
                                     "already returned, within the channel's window, returnable variants, not on a "
                                     "cancelled order. The channel's rule may approve it at once.")
    async def request_return(self, info: Info, order_id: relay.GlobalID, lines: list[ReturnLineInput], note: str = "",
                             idempotency_key: str | None = None) -> ReturnResult:
        async def action():
            viewer = info.context.viewer
            order = await Order.get_or_none(id=int(order_id.node_id)) \
                if order_id.type_name == "Order" and order_id.node_id.isdigit() else None
            if order is None or not (_may_request(viewer, order) or can_read_order(viewer, order)):
                raise DomainError(ErrorCode.NOT_FOUND, f"no order with id {order_id}", ["orderId"])
            if not _may_request(viewer, order):
                raise DomainError(ErrorCode.FORBIDDEN, "this viewer may not request returns for this order", ["orderId"])
            return await wf.request_return(order.id, [
                wf.ReturnLineRequest(_int(rl.order_line_id, "orderLineId"), rl.quantity, rl.reason, rl.note) for rl in lines
            ], viewer.actor, str(viewer.kind), note)

        return await run_mutation(info, "requestReturn", idempotency_key,
                                  {"order": str(order_id), "lines": lines, "note": note}, action, _payload)

    @strawberry.mutation
    async def approve_return(self, info: Info, id: relay.GlobalID, idempotency_key: str | None = None) -> ReturnResult:
        async def action():
            rma = await _return_for(info, id, _reviewer)
            return await wf.approve_return(rma.id, info.context.viewer.actor)

        return await run_mutation(info, "approveReturn", idempotency_key, {"id": str(id)}, action, _payload)

    @strawberry.mutation
    async def decline_return(self, info: Info, id: relay.GlobalID, reason: str,
                             idempotency_key: str | None = None) -> ReturnResult:
        async def action():
            rma = await _return_for(info, id, _reviewer)
            return await wf.decline_return(rma.id, reason, info.context.viewer.actor)

        return await run_mutation(info, "declineReturn", idempotency_key, {"id": str(id), "reason": reason}, action, _payload)

    @strawberry.mutation(description="By the requester (or staff) before the parcel arrives; a label bought is voided.")
    async def cancel_return(self, info: Info, id: relay.GlobalID, idempotency_key: str | None = None) -> ReturnResult:
        async def action():
            rma = await _return_for(info, id, _requester_or_staff)
            return await wf.cancel_return(rma.id, info.context.viewer.actor)

        return await run_mutation(info, "cancelReturn", idempotency_key, {"id": str(id)}, action, _payload)

    @strawberry.mutation(description="The prepaid label back to the return warehouse (cheapest, or of the given carrier).")
    async def issue_return_label(self, info: Info, id: relay.GlobalID, carrier: str | None = None,
                                 idempotency_key: str | None = None) -> ReturnResult:
        async def action():
            rma = await _return_for(info, id, _may_label)
            await wf.issue_label(rma.id, info.context.viewer.actor, carrier=carrier)
            return rma

        return await run_mutation(info, "issueReturnLabel", idempotency_key, {"id": str(id), "carrier": carrier},
                                  action, _payload)

    @strawberry.mutation(description="Units counted at the dock; partial receipts add up.")
    async def receive_return(self, info: Info, id: relay.GlobalID, lines: list[ReceivedLineInput],
                             idempotency_key: str | None = None) -> ReturnResult:
        async def action():
            rma = await _return_for(info, id, _warehouse_hand)
            return await wf.receive_return(rma.id, [(_int(rl.return_line_id, "returnLineId"), rl.quantity) for rl in lines],
                                           info.context.viewer.actor)

        return await run_mutation(info, "receiveReturn", idempotency_key, {"id": str(id), "lines": lines}, action, _payload)

    @strawberry.mutation(description="Condition and disposition per unit; RESTOCK puts resellable units back on hand.")
    async def inspect_return(self, info: Info, id: relay.GlobalID, items: list[InspectionInput], complete: bool = False,
                             idempotency_key: str | None = None) -> ReturnResult:
        async def action():
            rma = await _return_for(info, id, _warehouse_hand)
            return await wf.inspect_return(rma.id, [
                wf.InspectionSpec(_int(i.return_line_id, "returnLineId"), i.quantity, i.condition, i.disposition,
                                  i.warehouse, i.note) for i in items
            ], info.context.viewer.actor, complete=complete)

        return await run_mutation(info, "inspectReturn", idempotency_key,
                                  {"id": str(id), "items": items, "complete": complete}, action, _payload)

    @strawberry.mutation(description="Pay back the computed refund (see Return.refundPreview) through the payment integration.")
    async def refund_return(self, info: Info, id: relay.GlobalID, idempotency_key: str | None = None) -> ReturnResult:
        async def action():
            rma = await _return_for(info, id, _reviewer)
            return await wf.refund_return(rma.id, info.context.viewer.actor)

        return await run_mutation(info, "refundReturn", idempotency_key, {"id": str(id)}, action, _payload)

    @strawberry.mutation(description="Send other items instead of a refund: a linked replacement order paid by the "
                                     "returned units' value; a difference in the customer's favour is refunded, one in "
                                     "ours is authorized on `payment` (required then).")
    async def exchange_return(self, info: Info, id: relay.GlobalID, lines: list[ExchangeLineInput],
                              payment: PaymentInput | None = None, idempotency_key: str | None = None) -> ReturnResult:
        async def action():
            from ordergraph.workflows.commands import PaymentCommand  # noqa: PLC0415

            rma = await _return_for(info, id, _reviewer)
            pay = PaymentCommand(**vars(payment)) if payment is not None else None
            return await wf.exchange_return(rma.id, [(ln.sku, ln.quantity) for ln in lines], info.context.viewer.actor,
                                            payment=pay)

        return await run_mutation(info, "exchangeReturn", idempotency_key,
                                  {"id": str(id), "lines": lines, "payment": payment}, action, _payload)

    @strawberry.mutation(description="Close an inspected return without a refund.")
    async def close_return(self, info: Info, id: relay.GlobalID, reason: str,
                           idempotency_key: str | None = None) -> ReturnResult:
        async def action():
            rma = await _return_for(info, id, _reviewer)
            return await wf.close_return(rma.id, reason, info.context.viewer.actor)

        return await run_mutation(info, "closeReturn", idempotency_key, {"id": str(id), "reason": reason}, action, _payload)

