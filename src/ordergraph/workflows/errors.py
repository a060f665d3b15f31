"""Expected failures as data: every refusal carries a code the API exposes unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from enum import StrEnum


class ErrorCode(StrEnum):
    # generic
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    IDEMPOTENCY_IN_PROGRESS = "IDEMPOTENCY_IN_PROGRESS"
    # order capture
    UNKNOWN_SKU = "UNKNOWN_SKU"
    INACTIVE_SKU = "INACTIVE_SKU"
    QUANTITY_OUT_OF_RANGE = "QUANTITY_OUT_OF_RANGE"
    INCOMPLETE_ADDRESS = "INCOMPLETE_ADDRESS"
    UNKNOWN_COUNTRY = "UNKNOWN_COUNTRY"
    INVALID_EMAIL = "INVALID_EMAIL"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    DUPLICATE_LINE = "DUPLICATE_LINE"
    DUPLICATE_EXTERNAL_ID = "DUPLICATE_EXTERNAL_ID"
    UNKNOWN_CHANNEL = "UNKNOWN_CHANNEL"
    CHANNEL_INACTIVE = "CHANNEL_INACTIVE"
    PRICE_REQUIRED = "PRICE_REQUIRED"
    PRICE_NOT_ALLOWED = "PRICE_NOT_ALLOWED"
    INVALID_VALUE = "INVALID_VALUE"
    REQUIRED = "REQUIRED"
    # stock
    INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"
    RESERVATION_NOT_FOUND = "RESERVATION_NOT_FOUND"
    RESERVATION_EXPIRED = "RESERVATION_EXPIRED"
    RESERVATION_MISMATCH = "RESERVATION_MISMATCH"
    NEGATIVE_STOCK = "NEGATIVE_STOCK"
    SAME_WAREHOUSE = "SAME_WAREHOUSE"
    # orders
    ORDER_ON_HOLD = "ORDER_ON_HOLD"
    HOLD_NOT_FOUND = "HOLD_NOT_FOUND"
    # payments
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    AUTHORIZATION_EXPIRED = "AUTHORIZATION_EXPIRED"
    GATEWAY_UNAVAILABLE = "GATEWAY_UNAVAILABLE"
    REFUND_EXCEEDS_CAPTURED = "REFUND_EXCEEDS_CAPTURED"
    CAPTURE_EXCEEDS_AUTHORIZED = "CAPTURE_EXCEEDS_AUTHORIZED"
    # fulfillment
    NOTHING_TO_PICK = "NOTHING_TO_PICK"
    MISPICK = "MISPICK"
    OVERPICK = "OVERPICK"
    SHORT_PICK_EXCEEDS_REMAINING = "SHORT_PICK_EXCEEDS_REMAINING"
    ITEM_NOT_IN_FULFILLMENT = "ITEM_NOT_IN_FULFILLMENT"
    OVERPACK = "OVERPACK"
    WAREHOUSE_MISMATCH = "WAREHOUSE_MISMATCH"
    # shipping and tracking
    UNKNOWN_CARRIER = "UNKNOWN_CARRIER"
    NO_RATES = "NO_RATES"
    ADDRESS_UNSERVICEABLE = "ADDRESS_UNSERVICEABLE"
    PARCEL_TOO_HEAVY = "PARCEL_TOO_HEAVY"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    CARRIER_UNAVAILABLE = "CARRIER_UNAVAILABLE"
    LABEL_ALREADY_USED = "LABEL_ALREADY_USED"
    UNKNOWN_TRACKING_NUMBER = "UNKNOWN_TRACKING_NUMBER"
    # returns
    ORDER_CANCELLED = "ORDER_CANCELLED"
    NOT_DELIVERED = "NOT_DELIVERED"
    RETURN_QUANTITY_EXCEEDED = "RETURN_QUANTITY_EXCEEDED"
    RETURN_WINDOW_EXPIRED = "RETURN_WINDOW_EXPIRED"
    NOT_RETURNABLE = "NOT_RETURNABLE"
    RECEIPT_EXCEEDS_EXPECTED = "RECEIPT_EXCEEDS_EXPECTED"
    INSPECTION_EXCEEDS_RECEIVED = "INSPECTION_EXCEEDS_RECEIVED"
    DISPOSITION_NOT_ALLOWED = "DISPOSITION_NOT_ALLOWED"
    NOTHING_TO_REFUND = "NOTHING_TO_REFUND"


@dataclass
class DomainError(Exception):
    code: ErrorCode
    message: str
    field: list[str] | None = None
    details: dict = dc_field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass
class TransitionError(DomainError):
    """A refused lifecycle transition names the current state and the actions allowed."""

    current_state: str = ""
    allowed_actions: list[str] = dc_field(default_factory=list)


@dataclass
class ValidationFailed(Exception):
    """Every problem with an input at once."""

    problems: list[DomainError]

    def __str__(self) -> str:
        return "; ".join(str(p) for p in self.problems)


class Problems:
    """Collects validation problems, then raises them together."""

    def __init__(self) -> None:
        self.items: list[DomainError] = []

    def add(self, code: ErrorCode, message: str, *field_path: str | int, **details) -> None:
        self.items.append(DomainError(code, message, [str(p) for p in field_path], details))

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationFailed(self.items)
