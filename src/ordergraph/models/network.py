"""Warehouses and sales channels: where stock lives and where orders come from."""

from tortoise import fields
from tortoise.models import Model

from ordergraph.models.enums import AllocationStrategy, CaptureMode, CarrierSelection, ChannelKind, StockPolicy


class Warehouse(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=200)
    address = fields.JSONField(default=dict)  # line1, line2, city, region, postal_code, country
    latitude = fields.FloatField(null=True)
    longitude = fields.FloatField(null=True)
    priority = fields.IntField(default=100)  # lower ships first under PRIORITY
    active = fields.BooleanField(default=True)
    ship_countries = fields.JSONField(default=list)  # ISO 3166-1 alpha-2 codes
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "warehouses"


class SalesChannel(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=200)
    kind = fields.CharEnumField(ChannelKind)
    currency = fields.CharField(max_length=3)
    allocation_strategy = fields.CharEnumField(
        AllocationStrategy, default=AllocationStrategy.PRIORITY
    )
    stock_policy = fields.CharEnumField(StockPolicy, default=StockPolicy.REJECT)
    capture_mode = fields.CharEnumField(CaptureMode, default=CaptureMode.ON_SHIPMENT)
    sets_prices = fields.BooleanField(default=False)  # marketplaces send their own unit prices
    carrier_selection = fields.CharEnumField(CarrierSelection, default=CarrierSelection.CHEAPEST)
    preferred_carrier = fields.CharField(max_length=32, null=True)
    # return policy
    return_window_days = fields.IntField(default=30)  # from delivery
    restocking_fee_percent = fields.DecimalField(max_digits=5, decimal_places=2, default=0)  # customer-fault reasons
    return_shipping_fee = fields.DecimalField(max_digits=10, decimal_places=2, default=0)  # customer-fault reasons
    auto_approve_reasons = fields.JSONField(default=list)  # e.g. ["DAMAGED", "DEFECTIVE"]
    auto_approve_max_value = fields.DecimalField(max_digits=12, decimal_places=2, default=0)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "sales_channels"


class ChannelWarehouse(Model):
    """The warehouses a channel may ship from."""

    id = fields.IntField(primary_key=True)
    channel: fields.ForeignKeyRelation[SalesChannel] = fields.ForeignKeyField(
        "ordergraph.SalesChannel", related_name="warehouse_links", on_delete=fields.CASCADE
    )
    warehouse: fields.ForeignKeyRelation[Warehouse] = fields.ForeignKeyField(
        "ordergraph.Warehouse", related_name="channel_links", on_delete=fields.CASCADE
    )

    class Meta:
        table = "channel_warehouses"
        unique_together = (("channel", "warehouse"),)
