"""Tortoise tables and status enums, one module per domain. No workflow rules here."""

from ordergraph.models.access import ApiKey, IdempotencyRecord, Partner
from ordergraph.models.catalog import Product, ProductVariant
from ordergraph.models.events import Event
from ordergraph.models.exceptions import OrderException
from ordergraph.models.fulfillment import (
    FulfillmentLine,
    FulfillmentOrder,
    Notification,
    Package,
    PackageItem,
    PickList,
    PickListItem,
    Shipment,
    TrackingEvent,
)
from ordergraph.models.inventory import InventoryLevel, Reservation, ReservationLine, StockMovement
from ordergraph.models.network import ChannelWarehouse, SalesChannel, Warehouse
from ordergraph.models.orders import Allocation, Order, OrderHold, OrderLine
from ordergraph.models.payments import Payment, PaymentTransaction
from ordergraph.models.returns import ReturnAuthorization, ReturnInspection, ReturnLine

__all__ = [
    "Allocation",
    "ApiKey",
    "ChannelWarehouse",
    "Event",
    "FulfillmentLine",
    "FulfillmentOrder",
    "Notification",
    "Package",
    "PackageItem",
    "PickList",
    "PickListItem",
    "Shipment",
    "TrackingEvent",
    "IdempotencyRecord",
    "InventoryLevel",
    "Order",
    "OrderException",
    "OrderHold",
    "OrderLine",
    "Partner",
    "Payment",
    "PaymentTransaction",
    "Product",
    "ProductVariant",
    "Reservation",
    "ReturnAuthorization",
    "ReturnInspection",
    "ReturnLine",
    "ReservationLine",
    "SalesChannel",
    "StockMovement",
    "Warehouse",
]
