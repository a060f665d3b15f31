"""Returns (RMAs): what was asked back, what arrived, what it was found to be, what was paid back."""

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from ordergraph.models.enums import Disposition, ItemCondition, ReturnReason, ReturnStatus


class ReturnAuthorization(Model):
    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=32, unique=True)  # RMA-000001
    order = fields.ForeignKeyField("ordergraph.Order", related_name="returns", on_delete=fields.CASCADE, db_index=True)
    channel_id = fields.IntField(db_index=True)
    status = fields.CharEnumField(ReturnStatus, default=ReturnStatus.REQUESTED, db_index=True)
    requested_by = fields.CharField(max_length=200)
    requester_kind = fields.CharField(max_length=16)  # CUSTOMER, PARTNER, STAFF
    note = fields.CharField(max_length=1000, default="")
    auto_approved = fields.BooleanField(default=False)
    decline_reason = fields.CharField(max_length=500, default="")
    warehouse = fields.ForeignKeyField("ordergraph.Warehouse", related_name="returns", on_delete=fields.RESTRICT)
    currency = fields.CharField(max_length=3)
    refund_amount = fields.DecimalField(max_digits=14, decimal_places=2, default=0)
    restocking_fee = fields.DecimalField(max_digits=14, decimal_places=2, default=0)
    return_shipping_fee = fields.DecimalField(max_digits=14, decimal_places=2, default=0)
    refund_error = fields.CharField(max_length=500, default="")
    exchange_order_id = fields.IntField(null=True)
    requested_at = fields.DatetimeField(auto_now_add=True)
    approved_at = fields.DatetimeField(null=True)
    received_at = fields.DatetimeField(null=True)
    inspected_at = fields.DatetimeField(null=True)
    closed_at = fields.DatetimeField(null=True)  # refunded, exchanged or closed
    cancelled_at = fields.DatetimeField(null=True)
    processing_seconds = fields.IntField(null=True)  # request to refund (or exchange, or close)
    updated_at = fields.DatetimeField(auto_now=True)

    lines: fields.ReverseRelation["ReturnLine"]

    class Meta:
        table = "returns"


class ReturnLine(Model):
    id = fields.IntField(primary_key=True)
    rma = fields.ForeignKeyField("ordergraph.ReturnAuthorization", related_name="lines", on_delete=fields.CASCADE,
                                 db_index=True)
    order_line = fields.ForeignKeyField("ordergraph.OrderLine", related_name="return_lines", on_delete=fields.CASCADE,
                                        db_index=True)
    variant_id = fields.IntField()
    sku = fields.CharField(max_length=64)
    quantity = fields.IntField()
    reason = fields.CharEnumField(ReturnReason)
    note = fields.CharField(max_length=1000, default="")
    unit_price = fields.DecimalField(max_digits=12, decimal_places=2)
    received_quantity = fields.IntField(default=0)
    inspected_quantity = fields.IntField(default=0)
    refunded_quantity = fields.IntField(default=0)

    class Meta:
        table = "return_lines"
        constraints = (
            CheckConstraint(check="quantity > 0", name="ck_return_line_qty_pos"),
            CheckConstraint(check="received_quantity >= 0 AND received_quantity <= quantity "
                                  "AND inspected_quantity <= received_quantity", name="ck_return_line_progress"),
        )


class ReturnInspection(Model):
    # The condition and disposition of units of one return line, as the warehouse found them.
    id = fields.IntField(primary_key=True)
    line = fields.ForeignKeyField("ordergraph.ReturnLine", related_name="inspections", on_delete=fields.CASCADE,
                                  db_index=True)
    quantity = fields.IntField()
    condition = fields.CharEnumField(ItemCondition)
    disposition = fields.CharEnumField(Disposition)
    warehouse_id = fields.IntField(null=True)  # where RESTOCK put them
    note = fields.CharField(max_length=1000, default="")
    actor = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "return_inspections"
        constraints = (CheckConstraint(check="quantity > 0", name="ck_return_inspection_qty_pos"),)
