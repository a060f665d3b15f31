"""Fulfillment and shipping: fulfillment orders per warehouse, pick lists, packages,
shipments with their tracking timeline, and the customer notifications they cause."""

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from ordergraph.models.enums import (
    FulfillmentStatus,
    NotificationStatus,
    PickListKind,
    PickListStatus,
    ServiceLevel,
    ShipmentDirection,
    ShipmentStatus,
    TrackingSource,
    TrackingStatus,
)


class FulfillmentOrder(Model):
    # The units of one order that one warehouse ships: made by allocation, one per warehouse.

    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=48, unique=True)  # SO-…-F1
    order = fields.ForeignKeyField("ordergraph.Order", related_name="fulfillment_orders", on_delete=fields.CASCADE,
                                   db_index=True)
    warehouse = fields.ForeignKeyField("ordergraph.Warehouse", related_name="fulfillment_orders",
                                       on_delete=fields.RESTRICT)
    status = fields.CharEnumField(FulfillmentStatus, default=FulfillmentStatus.OPEN, db_index=True)
    held_from = fields.CharEnumField(FulfillmentStatus, null=True)  # the state ON_HOLD returns to
    hold_reason = fields.CharField(max_length=500, default="")
    service_level = fields.CharEnumField(ServiceLevel, default=ServiceLevel.STANDARD)
    promised_ship_by = fields.DatetimeField(null=True)  # from the order's placing time and service level
    pick_list_id = fields.IntField(null=True, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    picked_at = fields.DatetimeField(null=True)
    packed_at = fields.DatetimeField(null=True)
    shipped_at = fields.DatetimeField(null=True)
    cancelled_at = fields.DatetimeField(null=True)

    lines: fields.ReverseRelation["FulfillmentLine"]

    class Meta:
        table = "fulfillment_orders"


class FulfillmentLine(Model):
    id = fields.IntField(primary_key=True)
    fulfillment_order = fields.ForeignKeyField("ordergraph.FulfillmentOrder", related_name="lines",
                                               on_delete=fields.CASCADE, db_index=True)
    order_line = fields.ForeignKeyField("ordergraph.OrderLine", related_name="fulfillment_lines",
                                        on_delete=fields.CASCADE, db_index=True)
    variant_id = fields.IntField()
    sku = fields.CharField(max_length=64)
    quantity = fields.IntField()  # units to ship from this warehouse (less any short-picked)
    picked_quantity = fields.IntField(default=0)
    packed_quantity = fields.IntField(default=0)
    shipped_quantity = fields.IntField(default=0)
    short_quantity = fields.IntField(default=0)  # released by a short pick

    class Meta:
        table = "fulfillment_lines"
        constraints = (
            CheckConstraint(check="quantity >= 0 AND short_quantity >= 0", name="ck_fline_qty_nonneg"),
            CheckConstraint(
                check="picked_quantity <= quantity AND packed_quantity <= picked_quantity "
                      "AND shipped_quantity <= packed_quantity AND shipped_quantity >= 0",
                name="ck_fline_progress",
            ),
        )


class PickList(Model):
    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=32, unique=True)  # PL-000001
    warehouse = fields.ForeignKeyField("ordergraph.Warehouse", related_name="pick_lists", on_delete=fields.RESTRICT)
    kind = fields.CharEnumField(PickListKind)
    status = fields.CharEnumField(PickListStatus, default=PickListStatus.OPEN, db_index=True)
    criteria = fields.JSONField(default=dict)  # a wave's cut-off, service level, carrier
    created_by = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)
    completed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "pick_lists"


class PickListItem(Model):
    # One fulfillment line to pick on a list; the list groups them by bin and SKU.

    id = fields.IntField(primary_key=True)
    pick_list = fields.ForeignKeyField("ordergraph.PickList", related_name="items", on_delete=fields.CASCADE,
                                       db_index=True)
    fulfillment_line = fields.ForeignKeyField("ordergraph.FulfillmentLine", related_name="pick_items",
                                              on_delete=fields.CASCADE)
    fulfillment_order_id = fields.IntField()
    variant_id = fields.IntField()
    sku = fields.CharField(max_length=64)
    barcode = fields.CharField(max_length=64, null=True)
    bin_location = fields.CharField(max_length=32, default="")
    quantity = fields.IntField()
    picked_quantity = fields.IntField(default=0)
    short_quantity = fields.IntField(default=0)

    class Meta:
        table = "pick_list_items"
        constraints = (
            CheckConstraint(check="picked_quantity + short_quantity <= quantity", name="ck_pick_item_progress"),
        )


class Package(Model):
    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=48, unique=True)  # SO-…-F1-P1
    fulfillment_order = fields.ForeignKeyField("ordergraph.FulfillmentOrder", related_name="packages",
                                               on_delete=fields.CASCADE, db_index=True)
    weight_grams = fields.IntField()
    length_cm = fields.DecimalField(max_digits=7, decimal_places=1)
    width_cm = fields.DecimalField(max_digits=7, decimal_places=1)
    height_cm = fields.DecimalField(max_digits=7, decimal_places=1)
    created_by = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "packages"
        constraints = (
            CheckConstraint(check="weight_grams > 0 AND length_cm > 0 AND width_cm > 0 AND height_cm > 0",
                            name="ck_package_dims_pos"),
        )


class PackageItem(Model):
    id = fields.IntField(primary_key=True)
    package = fields.ForeignKeyField("ordergraph.Package", related_name="items", on_delete=fields.CASCADE,
                                     db_index=True)
    fulfillment_line = fields.ForeignKeyField("ordergraph.FulfillmentLine", related_name="package_items",
                                              on_delete=fields.CASCADE)
    quantity = fields.IntField()

    class Meta:
        table = "package_items"
        constraints = (CheckConstraint(check="quantity > 0", name="ck_package_item_qty_pos"),)


class Shipment(Model):
    # One package handed to a carrier under one label and tracking number.

    id = fields.IntField(primary_key=True)
    order = fields.ForeignKeyField("ordergraph.Order", related_name="shipments", on_delete=fields.CASCADE,
                                   db_index=True)
    # outbound: the fulfillment order and package it carries; a return's label has neither
    fulfillment_order = fields.ForeignKeyField("ordergraph.FulfillmentOrder", related_name="shipments",
                                               on_delete=fields.CASCADE, db_index=True, null=True)
    package = fields.ForeignKeyField("ordergraph.Package", related_name="shipments", on_delete=fields.CASCADE,
                                     db_index=True, null=True)
    direction = fields.CharEnumField(ShipmentDirection, default=ShipmentDirection.OUTBOUND)
    return_id = fields.IntField(null=True, db_index=True)
    carrier = fields.CharField(max_length=32)
    service = fields.CharField(max_length=64)
    service_level = fields.CharField(max_length=16)
    tracking_number = fields.CharField(max_length=64, unique=True)
    status = fields.CharEnumField(ShipmentStatus, default=ShipmentStatus.LABEL_CREATED, db_index=True)
    label_amount = fields.DecimalField(max_digits=12, decimal_places=2)
    currency = fields.CharField(max_length=3)
    label_format = fields.CharField(max_length=8, default="PDF")
    label_document = fields.BinaryField()
    estimated_delivery = fields.DateField(null=True)
    created_by = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)
    shipped_at = fields.DatetimeField(null=True)
    delivered_at = fields.DatetimeField(null=True)
    voided_at = fields.DatetimeField(null=True)
    last_scan_at = fields.DatetimeField(null=True)

    class Meta:
        table = "shipments"


class TrackingEvent(Model):
    id = fields.IntField(primary_key=True)
    shipment = fields.ForeignKeyField("ordergraph.Shipment", related_name="tracking_events",
                                      on_delete=fields.CASCADE, db_index=True)
    carrier = fields.CharField(max_length=32)
    carrier_event_id = fields.CharField(max_length=128)
    status = fields.CharEnumField(TrackingStatus)
    occurred_at = fields.DatetimeField()
    location = fields.CharField(max_length=200, default="")
    description = fields.CharField(max_length=500, default="")
    estimated_delivery = fields.DateField(null=True)
    source = fields.CharEnumField(TrackingSource)
    actor = fields.CharField(max_length=200)
    received_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "tracking_events"
        unique_together = (("carrier", "carrier_event_id"),)


class Notification(Model):
    # A customer or team message, written in the transaction of its cause, sent after commit
    # (and retried by a job until sent): the outbox of notifications.

    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=200, unique=True)  # one message per fact
    template = fields.CharField(max_length=64)
    recipient = fields.CharField(max_length=254)
    order_id = fields.IntField(null=True, db_index=True)
    context = fields.JSONField(default=dict)
    status = fields.CharEnumField(NotificationStatus, default=NotificationStatus.PENDING, db_index=True)
    locked_until = fields.DatetimeField(null=True)  # a SENDING claim expires then (its process died)
    attempts = fields.IntField(default=0)
    message_id = fields.CharField(max_length=200, null=True)
    last_error = fields.CharField(max_length=500, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "notifications"
