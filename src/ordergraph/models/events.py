from tortoise import fields
from tortoise.models import Model


class Event(Model):
    """One state change: the audit timeline, the outbox and the replay source.

    `id` is the global cursor; `sequence` orders the events of one aggregate.
    """

    id = fields.BigIntField(primary_key=True)
    aggregate_type = fields.CharField(max_length=32)
    aggregate_id = fields.IntField()
    sequence = fields.IntField()
    order_id = fields.IntField(null=True, db_index=True)
    type = fields.CharField(max_length=64)
    data = fields.JSONField(default=dict)
    actor = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)
    published_at = fields.DatetimeField(null=True)

    class Meta:
        table = "events"
        unique_together = (("aggregate_type", "aggregate_id", "sequence"),)
        ordering = ["id"]
