"""Status and kind enums shared by models, workflows and the schema."""

from enum import StrEnum


class BackorderPolicy(StrEnum):
    DENY = "DENY"
    ALLOW = "ALLOW"


class ChannelKind(StrEnum):
    WEB = "WEB"
    MARKETPLACE = "MARKETPLACE"
    PHONE = "PHONE"
    POS = "POS"
    PARTNER = "PARTNER"


class AllocationStrategy(StrEnum):
    PRIORITY = "PRIORITY"
    PROXIMITY = "PROXIMITY"
    FEWEST_SHIPMENTS = "FEWEST_SHIPMENTS"
    HIGHEST_STOCK = "HIGHEST_STOCK"


class StockPolicy(StrEnum):
    REJECT = "REJECT"
    ACCEPT = "ACCEPT"


class CaptureMode(StrEnum):
    ON_CONFIRMATION = "ON_CONFIRMATION"
    ON_SHIPMENT = "ON_SHIPMENT"


class MovementKind(StrEnum):
    RECEIPT = "RECEIPT"
    ADJUSTMENT = "ADJUSTMENT"
    TRANSFER_OUT = "TRANSFER_OUT"
    TRANSFER_IN = "TRANSFER_IN"
    ALLOCATION = "ALLOCATION"
    DEALLOCATION = "DEALLOCATION"
    RESERVATION = "RESERVATION"
    RESERVATION_RELEASE = "RESERVATION_RELEASE"
    SHIPMENT = "SHIPMENT"
    RETURN = "RETURN"
    POLICY = "POLICY"


class ReservationStatus(StrEnum):
    ACTIVE = "ACTIVE"
    CONSUMED = "CONSUMED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    ALLOCATED = "ALLOCATED"
    PARTIALLY_ALLOCATED = "PARTIALLY_ALLOCATED"
    BACKORDERED = "BACKORDERED"
    IN_FULFILLMENT = "IN_FULFILLMENT"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class HoldReason(StrEnum):
    PAYMENT = "PAYMENT"
    FRAUD_REVIEW = "FRAUD_REVIEW"
    ADDRESS = "ADDRESS"
    CUSTOMER = "CUSTOMER"
    MANUAL = "MANUAL"


class ServiceLevel(StrEnum):
    STANDARD = "STANDARD"
    EXPRESS = "EXPRESS"
    NEXT_DAY = "NEXT_DAY"


class AllocationStatus(StrEnum):
    ACTIVE = "ACTIVE"
    RELEASED = "RELEASED"
    SHIPPED = "SHIPPED"


class PaymentStatus(StrEnum):
    PENDING = "PENDING"
    AUTHORIZED = "AUTHORIZED"
    PARTIALLY_CAPTURED = "PARTIALLY_CAPTURED"
    CAPTURED = "CAPTURED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    VOIDED = "VOIDED"
    FAILED = "FAILED"


class TransactionKind(StrEnum):
    AUTHORIZE = "AUTHORIZE"
    CAPTURE = "CAPTURE"
    VOID = "VOID"
    REFUND = "REFUND"


class Role(StrEnum):
    STAFF = "STAFF"
    PARTNER = "PARTNER"


class FulfillmentStatus(StrEnum):
    OPEN = "OPEN"
    PICKING = "PICKING"
    PICKED = "PICKED"
    PACKED = "PACKED"
    SHIPPED = "SHIPPED"
    ON_HOLD = "ON_HOLD"
    CANCELLED = "CANCELLED"


class PickListKind(StrEnum):
    BATCH = "BATCH"
    WAVE = "WAVE"


class PickListStatus(StrEnum):
    OPEN = "OPEN"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class CarrierSelection(StrEnum):
    CHEAPEST = "CHEAPEST"  # the cheapest quote that meets the order's service level
    PREFERRED = "PREFERRED"  # the channel's preferred carrier, cheapest of its fitting services


class ShipmentStatus(StrEnum):
    LABEL_CREATED = "LABEL_CREATED"
    SHIPPED = "SHIPPED"
    IN_TRANSIT = "IN_TRANSIT"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    DELAYED = "DELAYED"
    FAILED_ATTEMPT = "FAILED_ATTEMPT"
    EXCEPTION = "EXCEPTION"
    RETURNED_TO_SENDER = "RETURNED_TO_SENDER"
    VOIDED = "VOIDED"


class TrackingStatus(StrEnum):
    LABEL_CREATED = "LABEL_CREATED"
    PICKED_UP = "PICKED_UP"
    IN_TRANSIT = "IN_TRANSIT"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    DELAYED = "DELAYED"
    FAILED_ATTEMPT = "FAILED_ATTEMPT"
    EXCEPTION = "EXCEPTION"
    RETURNED_TO_SENDER = "RETURNED_TO_SENDER"


class TrackingSource(StrEnum):
    WEBHOOK = "WEBHOOK"
    API = "API"
    CARRIER = "CARRIER"  # our own label purchase


class NotificationStatus(StrEnum):
    PENDING = "PENDING"
    SENDING = "SENDING"  # claimed by one process until `locked_until`
    SENT = "SENT"
    FAILED = "FAILED"


class ShipmentDirection(StrEnum):
    OUTBOUND = "OUTBOUND"  # to the customer
    RETURN = "RETURN"  # back to a warehouse, under a return's label


class ReturnStatus(StrEnum):
    REQUESTED = "REQUESTED"
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"
    LABEL_ISSUED = "LABEL_ISSUED"
    IN_TRANSIT = "IN_TRANSIT"
    RECEIVED = "RECEIVED"
    INSPECTED = "INSPECTED"
    REFUNDED = "REFUNDED"
    EXCHANGED = "EXCHANGED"
    CLOSED = "CLOSED"
    CANCELLED = "CANCELLED"


class ReturnReason(StrEnum):
    DAMAGED = "DAMAGED"
    DEFECTIVE = "DEFECTIVE"
    WRONG_ITEM = "WRONG_ITEM"
    NOT_AS_DESCRIBED = "NOT_AS_DESCRIBED"
    SIZE_FIT = "SIZE_FIT"
    CHANGED_MIND = "CHANGED_MIND"
    ARRIVED_LATE = "ARRIVED_LATE"
    OTHER = "OTHER"


class ItemCondition(StrEnum):
    RESELLABLE = "RESELLABLE"
    DAMAGED = "DAMAGED"
    DEFECTIVE = "DEFECTIVE"
    WRONG_ITEM = "WRONG_ITEM"  # not what we shipped
    MISSING = "MISSING"  # announced but not in the parcel


class Disposition(StrEnum):
    RESTOCK = "RESTOCK"
    QUARANTINE = "QUARANTINE"
    DISPOSE = "DISPOSE"


class ExceptionKind(StrEnum):
    PAYMENT_FAILED = "PAYMENT_FAILED"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    ADDRESS_INVALID = "ADDRESS_INVALID"
    FRAUD_REVIEW = "FRAUD_REVIEW"
    SHORT_PICK = "SHORT_PICK"
    MISSED_PICKUP = "MISSED_PICKUP"
    CARRIER_DELAY = "CARRIER_DELAY"
    DELIVERY_FAILED = "DELIVERY_FAILED"
    LOST_IN_TRANSIT = "LOST_IN_TRANSIT"
    SHIP_SLA_BREACH = "SHIP_SLA_BREACH"
    RETURN_OVERDUE = "RETURN_OVERDUE"


class Severity(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class ExceptionStatus(StrEnum):
    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    ESCALATED = "ESCALATED"
    RESOLVED = "RESOLVED"
    DISMISSED = "DISMISSED"


class Team(StrEnum):
    PAYMENTS = "PAYMENTS"
    INVENTORY = "INVENTORY"
    WAREHOUSE = "WAREHOUSE"
    CARRIER_OPS = "CARRIER_OPS"
    CUSTOMER_CARE = "CUSTOMER_CARE"
    FRAUD = "FRAUD"
