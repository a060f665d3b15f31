"""The `Error` interface and the error types mutations return in their result unions."""

from __future__ import annotations

import strawberry

from ordergraph.schema.enums import ErrorCode
from ordergraph.workflows.errors import DomainError, TransitionError, ValidationFailed
from ordergraph.workflows.errors import ErrorCode as Code


@strawberry.interface(description="An expected failure, returned as data.")
class Error:
    code: ErrorCode
    message: str
    field: list[str] | None = None


@strawberry.type(description="One problem with an input; several may be reported at once.")
class InputProblem(Error):
    pass


@strawberry.type(description="An external id already captured for this channel.")
class DuplicateExternalIdProblem(Error):
    existing_order_number: str


@strawberry.type(description="The input was refused; `problems` lists every bad field.")
class InvalidInputError(Error):
    problems: list[Error]


@strawberry.type
class NotFoundError(Error):
    pass


@strawberry.type(description="The viewer may not perform this operation.")
class NotAuthorizedError(Error):
    pass


@strawberry.type(description="The object's lifecycle does not allow this action now.")
class InvalidTransitionError(Error):
    current_state: str
    allowed_actions: list[str]


@strawberry.type
class StockShortage:
    sku: str
    requested: int
    available: int


@strawberry.type
class InsufficientStockError(Error):
    shortages: list[StockShortage]


@strawberry.type
class PaymentError(Error):
    decline_code: str | None = None


@strawberry.type(description="The idempotency key was used before with a different input.")
class IdempotencyKeyReusedError(Error):
    pass


@strawberry.type(description="A scan or a short pick the pick list does not allow: MISPICK (not on the list), "
                             "OVERPICK (more than still to pick), SHORT_PICK_EXCEEDS_REMAINING.")
class PickError(Error):
    sku: str | None = None
    remaining: int | None = None
    expected: list[str] | None = None


@strawberry.type(description="The carrier refused or could not be reached; `retryable` says whether trying again may help.")
class CarrierFailure(Error):
    carrier_code: str | None = None
    retryable: bool = False


@strawberry.type(description="Any other refusal of a workflow rule.")
class OperationError(Error):
    pass


ERROR_TYPES = (
    InputProblem,
    DuplicateExternalIdProblem,
    InvalidInputError,
    NotFoundError,
    NotAuthorizedError,
    InvalidTransitionError,
    InsufficientStockError,
    PaymentError,
    IdempotencyKeyReusedError,
    PickError,
    CarrierFailure,
    OperationError,
)

_PICK_CODES = {Code.MISPICK, Code.OVERPICK, Code.SHORT_PICK_EXCEEDS_REMAINING}
_CARRIER_CODES = {
    Code.ADDRESS_UNSERVICEABLE, Code.PARCEL_TOO_HEAVY, Code.SERVICE_UNAVAILABLE, Code.CARRIER_UNAVAILABLE,
    Code.LABEL_ALREADY_USED, Code.UNKNOWN_CARRIER, Code.NO_RATES,
}

_PAYMENT_CODES = {
    Code.PAYMENT_DECLINED,
    Code.INSUFFICIENT_FUNDS,
    Code.AUTHORIZATION_EXPIRED,
    Code.GATEWAY_UNAVAILABLE,
    Code.REFUND_EXCEEDS_CAPTURED,
    Code.CAPTURE_EXCEEDS_AUTHORIZED,
}


def _problem(p: DomainError) -> Error:
    if p.code is Code.DUPLICATE_EXTERNAL_ID:
        return DuplicateExternalIdProblem(
            code=p.code,
            message=p.message,
            field=p.field,
            existing_order_number=p.details.get("existing_order_number", ""),
        )
    return InputProblem(code=p.code, message=p.message, field=p.field)


def to_graphql_error(exc: DomainError | ValidationFailed) -> Error:
    """Map a workflow refusal onto its GraphQL error type."""
    if isinstance(exc, ValidationFailed):
        n = len(exc.problems)
        return InvalidInputError(
            code=Code.INVALID_INPUT,
            message=f"{n} problem{'s' if n != 1 else ''} with the input",
            field=None,
            problems=[_problem(p) for p in exc.problems],
        )
    if isinstance(exc, TransitionError):
        return InvalidTransitionError(
            code=exc.code,
            message=exc.message,
            field=exc.field,
            current_state=exc.current_state,
            allowed_actions=exc.allowed_actions,
        )
    if exc.code is Code.NOT_FOUND:
        return NotFoundError(code=exc.code, message=exc.message, field=exc.field)
    if exc.code in (Code.FORBIDDEN, Code.UNAUTHENTICATED):
        return NotAuthorizedError(code=exc.code, message=exc.message, field=exc.field)
    if exc.code is Code.INSUFFICIENT_STOCK:
        return InsufficientStockError(
            code=exc.code,
            message=exc.message,
            field=exc.field,
            shortages=[StockShortage(**s) for s in exc.details.get("shortages", [])],
        )
    if exc.code in _PAYMENT_CODES:
        return PaymentError(
            code=exc.code,
            message=exc.message,
            field=exc.field,
            decline_code=exc.details.get("decline_code"),
        )
    if exc.code in _PICK_CODES:
        return PickError(code=exc.code, message=exc.message, field=exc.field, sku=exc.details.get("sku"),
                         remaining=exc.details.get("remaining"), expected=exc.details.get("expected"))
    if exc.code in _CARRIER_CODES:
        return CarrierFailure(code=exc.code, message=exc.message, field=exc.field,
                              carrier_code=exc.details.get("carrier_code"), retryable=bool(exc.details.get("retryable")))
    if exc.code is Code.IDEMPOTENCY_KEY_REUSED:
        return IdempotencyKeyReusedError(code=exc.code, message=exc.message, field=exc.field)
    return OperationError(code=exc.code, message=exc.message, field=exc.field)
