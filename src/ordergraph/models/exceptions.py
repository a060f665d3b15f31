"""Exceptions: every problem of the workflow as an object with an owner, a deadline and a resolution."""

from tortoise import fields
from tortoise.models import Model

from ordergraph.models.enums import ExceptionKind, ExceptionStatus, Severity, Team


class OrderException(Model):
    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=32, unique=True)  # EXC-000001
    fact_key = fields.CharField(max_length=200, unique=True)  # one exception per fact, whatever the retries
    kind = fields.CharEnumField(ExceptionKind, db_index=True)
    severity = fields.CharEnumField(Severity)
    status = fields.CharEnumField(ExceptionStatus, default=ExceptionStatus.OPEN, db_index=True)
    team = fields.CharEnumField(Team, db_index=True)
    assignee = fields.CharField(max_length=200, null=True)
    order_id = fields.IntField(null=True, db_index=True)
    shipment_id = fields.IntField(null=True)
    return_id = fields.IntField(null=True)
    summary = fields.CharField(max_length=500)
    details = fields.JSONField(default=dict)
    sla_due_at = fields.DatetimeField(db_index=True)
    escalation_level = fields.IntField(default=0)
    escalate_at = fields.DatetimeField(null=True, db_index=True)  # next escalation if still unacknowledged
    raised_at = fields.DatetimeField(db_index=True)
    acknowledged_at = fields.DatetimeField(null=True)
    escalated_at = fields.DatetimeField(null=True)
    resolved_at = fields.DatetimeField(null=True)
    resolution_action = fields.CharField(max_length=64, null=True)
    resolution_note = fields.CharField(max_length=1000, default="")
    resolved_by = fields.CharField(max_length=200, null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "exceptions"
