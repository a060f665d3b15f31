from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from ordergraph.models.enums import CarrierSelection, ShipmentDirection, FulfillmentStatus, NotificationStatus, PickListKind, PickListStatus, ServiceLevel, ShipmentStatus, TrackingSource, TrackingStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint

from migrations._ops import AddCheckConstraint, AddColumnWithDefault


async def _allocation_fulfillment_index(apps, schema_editor) -> None:
    """AddField of an indexed column creates no index on either backend: create it."""
    await schema_editor.client.execute_script(
        'CREATE INDEX IF NOT EXISTS "idx_allocations_fulfillment_order_id" ON "allocations" ("fulfillment_order_id");'
    )


class Migration(migrations.Migration):
    dependencies = [('ordergraph', '0002_foreign_key_indexes')]

    initial = False

    operations = [
        ops.CreateModel(
            name='FulfillmentOrder',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('number', fields.CharField(unique=True, max_length=48)),
                ('order', fields.ForeignKeyField('ordergraph.Order', source_field='order_id', db_index=True, db_constraint=True, to_field='id', related_name='fulfillment_orders', on_delete=OnDelete.CASCADE)),
                ('warehouse', fields.ForeignKeyField('ordergraph.Warehouse', source_field='warehouse_id', db_constraint=True, to_field='id', related_name='fulfillment_orders', on_delete=OnDelete.RESTRICT)),
                ('status', fields.CharEnumField(default=FulfillmentStatus.OPEN, db_index=True, description='OPEN: OPEN\nPICKING: PICKING\nPICKED: PICKED\nPACKED: PACKED\nSHIPPED: SHIPPED\nON_HOLD: ON_HOLD\nCANCELLED: CANCELLED', enum_type=FulfillmentStatus, max_length=9)),
                ('held_from', fields.CharEnumField(null=True, description='OPEN: OPEN\nPICKING: PICKING\nPICKED: PICKED\nPACKED: PACKED\nSHIPPED: SHIPPED\nON_HOLD: ON_HOLD\nCANCELLED: CANCELLED', enum_type=FulfillmentStatus, max_length=9)),
                ('hold_reason', fields.CharField(default='', max_length=500)),
                ('service_level', fields.CharEnumField(default=ServiceLevel.STANDARD, description='STANDARD: STANDARD\nEXPRESS: EXPRESS\nNEXT_DAY: NEXT_DAY', enum_type=ServiceLevel, max_length=8)),
                ('promised_ship_by', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('pick_list_id', fields.IntField(null=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('picked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('packed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('shipped_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('cancelled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'fulfillment_orders', 'app': 'ordergraph', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='FulfillmentLine',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('fulfillment_order', fields.ForeignKeyField('ordergraph.FulfillmentOrder', source_field='fulfillment_order_id', db_index=True, db_constraint=True, to_field='id', related_name='lines', on_delete=OnDelete.CASCADE)),
                ('order_line', fields.ForeignKeyField('ordergraph.OrderLine', source_field='order_line_id', db_index=True, db_constraint=True, to_field='id', related_name='fulfillment_lines', on_delete=OnDelete.CASCADE)),
                ('variant_id', fields.IntField()),
                ('sku', fields.CharField(max_length=64)),
                ('quantity', fields.IntField()),
                ('picked_quantity', fields.IntField(default=0)),
                ('packed_quantity', fields.IntField(default=0)),
                ('shipped_quantity', fields.IntField(default=0)),
                ('short_quantity', fields.IntField(default=0)),
            ],
            options={'table': 'fulfillment_lines', 'app': 'ordergraph', 'constraints': [CheckConstraint(check='quantity >= 0 AND short_quantity >= 0', name='ck_fline_qty_nonneg'), CheckConstraint(check='picked_quantity <= quantity AND packed_quantity <= picked_quantity AND shipped_quantity <= packed_quantity AND shipped_quantity >= 0', name='ck_fline_progress')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(unique=True, max_length=200)),
                ('template', fields.CharField(max_length=64)),
                ('recipient', fields.CharField(max_length=254)),
                ('order_id', fields.IntField(null=True, db_index=True)),
                ('context', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharEnumField(default=NotificationStatus.PENDING, db_index=True, description='PENDING: PENDING\nSENDING: SENDING\nSENT: SENT\nFAILED: FAILED', enum_type=NotificationStatus, max_length=7)),
                ('locked_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('attempts', fields.IntField(default=0)),
                ('message_id', fields.CharField(null=True, max_length=200)),
                ('last_error', fields.CharField(default='', max_length=500)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'notifications', 'app': 'ordergraph', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Package',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('number', fields.CharField(unique=True, max_length=48)),
                ('fulfillment_order', fields.ForeignKeyField('ordergraph.FulfillmentOrder', source_field='fulfillment_order_id', db_index=True, db_constraint=True, to_field='id', related_name='packages', on_delete=OnDelete.CASCADE)),
                ('weight_grams', fields.IntField()),
                ('length_cm', fields.DecimalField(max_digits=7, decimal_places=1)),
                ('width_cm', fields.DecimalField(max_digits=7, decimal_places=1)),
                ('height_cm', fields.DecimalField(max_digits=7, decimal_places=1)),
                ('created_by', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'packages', 'app': 'ordergraph', 'constraints': [CheckConstraint(check='weight_grams > 0 AND length_cm > 0 AND width_cm > 0 AND height_cm > 0', name='ck_package_dims_pos')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PackageItem',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('package', fields.ForeignKeyField('ordergraph.Package', source_field='package_id', db_index=True, db_constraint=True, to_field='id', related_name='items', on_delete=OnDelete.CASCADE)),
                ('fulfillment_line', fields.ForeignKeyField('ordergraph.FulfillmentLine', source_field='fulfillment_line_id', db_constraint=True, to_field='id', related_name='package_items', on_delete=OnDelete.CASCADE)),
                ('quantity', fields.IntField()),
            ],
            options={'table': 'package_items', 'app': 'ordergraph', 'constraints': [CheckConstraint(check='quantity > 0', name='ck_package_item_qty_pos')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PickList',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('number', fields.CharField(unique=True, max_length=32)),
                ('warehouse', fields.ForeignKeyField('ordergraph.Warehouse', source_field='warehouse_id', db_constraint=True, to_field='id', related_name='pick_lists', on_delete=OnDelete.RESTRICT)),
                ('kind', fields.CharEnumField(description='BATCH: BATCH\nWAVE: WAVE', enum_type=PickListKind, max_length=5)),
                ('status', fields.CharEnumField(default=PickListStatus.OPEN, db_index=True, description='OPEN: OPEN\nCOMPLETED: COMPLETED\nCANCELLED: CANCELLED', enum_type=PickListStatus, max_length=9)),
                ('criteria', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_by', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('completed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'pick_lists', 'app': 'ordergraph', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PickListItem',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('pick_list', fields.ForeignKeyField('ordergraph.PickList', source_field='pick_list_id', db_index=True, db_constraint=True, to_field='id', related_name='items', on_delete=OnDelete.CASCADE)),
                ('fulfillment_line', fields.ForeignKeyField('ordergraph.FulfillmentLine', source_field='fulfillment_line_id', db_constraint=True, to_field='id', related_name='pick_items', on_delete=OnDelete.CASCADE)),
                ('fulfillment_order_id', fields.IntField()),
                ('variant_id', fields.IntField()),
                ('sku', fields.CharField(max_length=64)),
                ('barcode', fields.CharField(null=True, max_length=64)),
                ('bin_location', fields.CharField(default='', max_length=32)),
                ('quantity', fields.IntField()),
                ('picked_quantity', fields.IntField(default=0)),
                ('short_quantity', fields.IntField(default=0)),
            ],
            options={'table': 'pick_list_items', 'app': 'ordergraph', 'constraints': [CheckConstraint(check='picked_quantity + short_quantity <= quantity', name='ck_pick_item_progress')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Shipment',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order', fields.ForeignKeyField('ordergraph.Order', source_field='order_id', db_index=True, db_constraint=True, to_field='id', related_name='shipments', on_delete=OnDelete.CASCADE)),
                ('fulfillment_order', fields.ForeignKeyField('ordergraph.FulfillmentOrder', source_field='fulfillment_order_id', null=True, db_index=True, db_constraint=True, to_field='id', related_name='shipments', on_delete=OnDelete.CASCADE)),
                ('package', fields.ForeignKeyField('ordergraph.Package', source_field='package_id', null=True, db_index=True, db_constraint=True, to_field='id', related_name='shipments', on_delete=OnDelete.CASCADE)),
                ('direction', fields.CharEnumField(default=ShipmentDirection.OUTBOUND, description='OUTBOUND: OUTBOUND\nRETURN: RETURN', enum_type=ShipmentDirection, max_length=8)),
                ('return_id', fields.IntField(null=True, db_index=True)),
                ('carrier', fields.CharField(max_length=32)),
                ('service', fields.CharField(max_length=64)),
                ('service_level', fields.CharField(max_length=16)),
                ('tracking_number', fields.CharField(unique=True, max_length=64)),
                ('status', fields.CharEnumField(default=ShipmentStatus.LABEL_CREATED, db_index=True, description='LABEL_CREATED: LABEL_CREATED\nSHIPPED: SHIPPED\nIN_TRANSIT: IN_TRANSIT\nOUT_FOR_DELIVERY: OUT_FOR_DELIVERY\nDELIVERED: DELIVERED\nDELAYED: DELAYED\nFAILED_ATTEMPT: FAILED_ATTEMPT\nEXCEPTION: EXCEPTION\nRETURNED_TO_SENDER: RETURNED_TO_SENDER\nVOIDED: VOIDED', enum_type=ShipmentStatus, max_length=18)),
                ('label_amount', fields.DecimalField(max_digits=12, decimal_places=2)),
                ('currency', fields.CharField(max_length=3)),
                ('label_format', fields.CharField(default='PDF', max_length=8)),
                ('label_document', fields.BinaryField()),
                ('estimated_delivery', fields.DateField(null=True)),
                ('created_by', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('shipped_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('delivered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('voided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_scan_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'shipments', 'app': 'ordergraph', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TrackingEvent',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('shipment', fields.ForeignKeyField('ordergraph.Shipment', source_field='shipment_id', db_index=True, db_constraint=True, to_field='id', related_name='tracking_events', on_delete=OnDelete.CASCADE)),
                ('carrier', fields.CharField(max_length=32)),
                ('carrier_event_id', fields.CharField(max_length=128)),
                ('status', fields.CharEnumField(description='LABEL_CREATED: LABEL_CREATED\nPICKED_UP: PICKED_UP\nIN_TRANSIT: IN_TRANSIT\nOUT_FOR_DELIVERY: OUT_FOR_DELIVERY\nDELIVERED: DELIVERED\nDELAYED: DELAYED\nFAILED_ATTEMPT: FAILED_ATTEMPT\nEXCEPTION: EXCEPTION\nRETURNED_TO_SENDER: RETURNED_TO_SENDER', enum_type=TrackingStatus, max_length=18)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('location', fields.CharField(default='', max_length=200)),
                ('description', fields.CharField(default='', max_length=500)),
                ('estimated_delivery', fields.DateField(null=True)),
                ('source', fields.CharEnumField(description='WEBHOOK: WEBHOOK\nAPI: API\nCARRIER: CARRIER', enum_type=TrackingSource, max_length=7)),
                ('actor', fields.CharField(max_length=200)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'tracking_events', 'app': 'ordergraph', 'unique_together': (('carrier', 'carrier_event_id'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Allocation',
            name='fulfillment_order_id',
            field=fields.IntField(null=True, db_index=True),
        ),
        AddColumnWithDefault(
            model_name='InventoryLevel',
            name='bin_location',
            field=fields.CharField(default='', max_length=32),
            sql="VARCHAR(32) NOT NULL DEFAULT ''",
        ),
        AddColumnWithDefault(
            model_name='SalesChannel',
            name='carrier_selection',
            field=fields.CharEnumField(default=CarrierSelection.CHEAPEST, description='CHEAPEST: CHEAPEST\nPREFERRED: PREFERRED', enum_type=CarrierSelection, max_length=9),
            sql="VARCHAR(9) NOT NULL DEFAULT 'CHEAPEST'",
        ),
        ops.AddField(
            model_name='SalesChannel',
            name='preferred_carrier',
            field=fields.CharField(null=True, max_length=32),
        ),
        AddCheckConstraint(model_name='FulfillmentLine', constraint=CheckConstraint(check='quantity >= 0 AND short_quantity >= 0', name='ck_fline_qty_nonneg')),
        AddCheckConstraint(model_name='FulfillmentLine', constraint=CheckConstraint(check='picked_quantity <= quantity AND packed_quantity <= picked_quantity AND shipped_quantity <= packed_quantity AND shipped_quantity >= 0', name='ck_fline_progress')),
        AddCheckConstraint(model_name='PickListItem', constraint=CheckConstraint(check='picked_quantity + short_quantity <= quantity', name='ck_pick_item_progress')),
        AddCheckConstraint(model_name='Package', constraint=CheckConstraint(check='weight_grams > 0 AND length_cm > 0 AND width_cm > 0 AND height_cm > 0', name='ck_package_dims_pos')),
        AddCheckConstraint(model_name='PackageItem', constraint=CheckConstraint(check='quantity > 0', name='ck_package_item_qty_pos')),
        ops.RunPython(_allocation_fulfillment_index, ops.RunPython.noop),
    ]
