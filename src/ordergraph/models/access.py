"""Partners, API keys and idempotency records."""

from tortoise import fields
from tortoise.models import Model

from ordergraph.models.enums import Role


class Partner(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=200)
    channel_ids = fields.JSONField(default=list)  # sales channels it may act on
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "partners"


class ApiKey(Model):
    id = fields.IntField(primary_key=True)
    prefix = fields.CharField(max_length=16, unique=True)
    key_hash = fields.CharField(max_length=64)  # sha256 hex of the full key
    name = fields.CharField(max_length=200, default="")
    role = fields.CharEnumField(Role)
    scopes = fields.JSONField(default=list)
    partner: fields.ForeignKeyNullableRelation[Partner] = fields.ForeignKeyField(
        "ordergraph.Partner", related_name="api_keys", null=True, on_delete=fields.CASCADE
    )
    revoked = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "api_keys"


class IdempotencyRecord(Model):
    """First result of a mutation for (principal, operation, key)."""

    id = fields.BigIntField(primary_key=True)
    principal = fields.CharField(max_length=200)
    operation = fields.CharField(max_length=100)
    key = fields.CharField(max_length=200)
    request_hash = fields.CharField(max_length=64)
    completed = fields.BooleanField(default=False)
    response = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "idempotency_records"
        unique_together = (("principal", "operation", "key"),)
