from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from ordergraph.models.enums import AllocationStatus, HoldReason, OrderStatus, ServiceLevel


class Order(Model):
    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=32, unique=True)
    channel = fields.ForeignKeyField(
        "ordergraph.SalesChannel", related_name="orders", on_delete=fields.RESTRICT
    )
    external_id = fields.CharField(max_length=100, null=True)
    status = fields.CharEnumField(OrderStatus, default=OrderStatus.PENDING, db_index=True)
    customer_email = fields.CharField(max_length=254, db_index=True)
    customer_name = fields.CharField(max_length=200, default="")
    customer_phone = fields.CharField(max_length=40, default="")
    shipping_address = fields.JSONField(default=dict)
    billing_address = fields.JSONField(default=dict)
    service_level = fields.CharEnumField(ServiceLevel, default=ServiceLevel.STANDARD)
    notes = fields.TextField(default="")
    currency = fields.CharField(max_length=3)
    subtotal = fields.DecimalField(max_digits=14, decimal_places=2)
    total = fields.DecimalField(max_digits=14, decimal_places=2)
    placed_at = fields.DatetimeField(db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)
    cancelled_at = fields.DatetimeField(null=True)
    cancel_reason = fields.CharField(max_length=500, default="")

    lines: fields.ReverseRelation["OrderLine"]
    holds: fields.ReverseRelation["OrderHold"]

    class Meta:
        table = "orders"
        unique_together = (("channel", "external_id"),)


class OrderLine(Model):
    id = fields.IntField(primary_key=True)
    order = fields.ForeignKeyField("ordergraph.Order", related_name="lines", on_delete=fields.CASCADE, db_index=True)
    position = fields.IntField()
    variant = fields.ForeignKeyField(
        "ordergraph.ProductVariant", related_name="order_lines", on_delete=fields.RESTRICT
    )
    sku = fields.CharField(max_length=64)
    name = fields.CharField(max_length=200)
    external_line_id = fields.CharField(max_length=100, null=True)
    quantity = fields.IntField()
    unit_price = fields.DecimalField(max_digits=12, decimal_places=2)
    allocated_quantity = fields.IntField(default=0)
    backordered_quantity = fields.IntField(default=0)
    shipped_quantity = fields.IntField(default=0)
    cancelled_quantity = fields.IntField(default=0)

    class Meta:
        table = "order_lines"
        constraints = (
            CheckConstraint(check="quantity > 0", name="ck_order_line_qty_pos"),
            CheckConstraint(
                check="allocated_quantity >= 0 AND backordered_quantity >= 0",
                name="ck_order_line_alloc_nonneg",
            ),
            CheckConstraint(
                check="allocated_quantity + backordered_quantity + shipped_quantity <= quantity",
                name="ck_order_line_not_over_allocated",
            ),
        )


class Allocation(Model):
    """Units of one order line committed from one warehouse."""

    id = fields.IntField(primary_key=True)
    line = fields.ForeignKeyField(
        "ordergraph.OrderLine", related_name="allocations", on_delete=fields.CASCADE
    )
    order_id = fields.IntField(db_index=True)
    warehouse = fields.ForeignKeyField(
        "ordergraph.Warehouse", related_name="allocations", on_delete=fields.RESTRICT
    )
    quantity = fields.IntField()
    status = fields.CharEnumField(AllocationStatus, default=AllocationStatus.ACTIVE)
    fulfillment_order_id = fields.IntField(null=True, db_index=True)  # set once a fulfillment order covers it
    created_at = fields.DatetimeField(auto_now_add=True)
    released_at = fields.DatetimeField(null=True)

    class Meta:
        table = "allocations"
        constraints = (CheckConstraint(check="quantity > 0", name="ck_allocation_qty_pos"),)


class OrderHold(Model):
    id = fields.IntField(primary_key=True)
    order = fields.ForeignKeyField("ordergraph.Order", related_name="holds", on_delete=fields.CASCADE, db_index=True)
    reason = fields.CharEnumField(HoldReason)
    note = fields.CharField(max_length=500, default="")
    placed_by = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)
    released_at = fields.DatetimeField(null=True)
    released_by = fields.CharField(max_length=200, null=True)
    release_note = fields.CharField(max_length=500, default="")

    class Meta:
        table = "order_holds"
