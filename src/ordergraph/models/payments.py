from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

from ordergraph.models.enums import PaymentStatus, TransactionKind


class Payment(Model):
    id = fields.IntField(primary_key=True)
    order = fields.ForeignKeyField(
        "ordergraph.Order", related_name="payments", on_delete=fields.CASCADE, db_index=True
    )
    gateway = fields.CharField(max_length=32)
    method = fields.CharField(max_length=32)
    status = fields.CharEnumField(PaymentStatus, default=PaymentStatus.PENDING)
    currency = fields.CharField(max_length=3)
    amount = fields.DecimalField(max_digits=14, decimal_places=2)
    authorized_amount = fields.DecimalField(max_digits=14, decimal_places=2, default=0)
    captured_amount = fields.DecimalField(max_digits=14, decimal_places=2, default=0)
    refunded_amount = fields.DecimalField(max_digits=14, decimal_places=2, default=0)
    authorization_ref = fields.CharField(max_length=100, null=True)
    authorization_expires_at = fields.DatetimeField(null=True)
    failure_code = fields.CharField(max_length=64, null=True)
    failure_message = fields.CharField(max_length=500, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "payments"
        constraints = (
            CheckConstraint(
                check="CAST(captured_amount AS NUMERIC) <= CAST(authorized_amount AS NUMERIC)", name="ck_payment_capture_le_auth"
            ),
            CheckConstraint(
                check="CAST(refunded_amount AS NUMERIC) <= CAST(captured_amount AS NUMERIC)", name="ck_payment_refund_le_capture"
            ),
        )


class PaymentTransaction(Model):
    id = fields.IntField(primary_key=True)
    payment = fields.ForeignKeyField(
        "ordergraph.Payment", related_name="transactions", on_delete=fields.CASCADE, db_index=True
    )
    kind = fields.CharEnumField(TransactionKind)
    amount = fields.DecimalField(max_digits=14, decimal_places=2)
    success = fields.BooleanField()
    gateway_ref = fields.CharField(max_length=100, null=True)
    error_code = fields.CharField(max_length=64, null=True)
    error_message = fields.CharField(max_length=500, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "payment_transactions"
