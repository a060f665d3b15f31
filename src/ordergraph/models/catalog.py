from tortoise import fields
from tortoise.models import Model

from ordergraph.models.enums import BackorderPolicy


class Product(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    variants: fields.ReverseRelation["ProductVariant"]

    class Meta:
        table = "products"


class ProductVariant(Model):
    id = fields.IntField(primary_key=True)
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "ordergraph.Product", related_name="variants", on_delete=fields.RESTRICT
    )
    sku = fields.CharField(max_length=64, unique=True)
    barcode = fields.CharField(max_length=64, null=True, unique=True)
    name = fields.CharField(max_length=200)
    options = fields.JSONField(default=dict)  # {"size": "M", "colour": "red"}
    price = fields.DecimalField(max_digits=12, decimal_places=2)
    currency = fields.CharField(max_length=3, default="USD")
    weight_grams = fields.IntField(default=0)
    active = fields.BooleanField(default=True)
    returnable = fields.BooleanField(default=True)
    backorder_policy = fields.CharEnumField(BackorderPolicy, default=BackorderPolicy.DENY)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "product_variants"
