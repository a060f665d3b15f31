from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from ordergraph.models.enums import Disposition, ItemCondition, ReturnReason, ReturnStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint

from migrations._ops import AddCheckConstraint, AddColumnWithDefault

class Migration(migrations.Migration):
    dependencies = [('ordergraph', '0003_fulfillment')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ReturnAuthorization',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('number', fields.CharField(unique=True, max_length=32)),
                ('order', fields.ForeignKeyField('ordergraph.Order', source_field='order_id', db_index=True, db_constraint=True, to_field='id', related_name='returns', on_delete=OnDelete.CASCADE)),
                ('channel_id', fields.IntField(db_index=True)),
                ('status', fields.CharEnumField(default=ReturnStatus.REQUESTED, db_index=True, description='REQUESTED: REQUESTED\nAPPROVED: APPROVED\nDECLINED: DECLINED\nLABEL_ISSUED: LABEL_ISSUED\nIN_TRANSIT: IN_TRANSIT\nRECEIVED: RECEIVED\nINSPECTED: INSPECTED\nREFUNDED: REFUNDED\nEXCHANGED: EXCHANGED\nCLOSED: CLOSED\nCANCELLED: CANCELLED', enum_type=ReturnStatus, max_length=12)),
                ('requested_by', fields.CharField(max_length=200)),
                ('requester_kind', fields.CharField(max_length=16)),
                ('note', fields.CharField(default='', max_length=1000)),
                ('auto_approved', fields.BooleanField(default=False)),
                ('decline_reason', fields.CharField(default='', max_length=500)),
                ('warehouse', fields.ForeignKeyField('ordergraph.Warehouse', source_field='warehouse_id', db_constraint=True, to_field='id', related_name='returns', on_delete=OnDelete.RESTRICT)),
                ('currency', fields.CharField(max_length=3)),
                ('refund_amount', fields.DecimalField(default=0, max_digits=14, decimal_places=2)),
                ('restocking_fee', fields.DecimalField(default=0, max_digits=14, decimal_places=2)),
                ('return_shipping_fee', fields.DecimalField(default=0, max_digits=14, decimal_places=2)),
                ('refund_error', fields.CharField(default='', max_length=500)),
                ('exchange_order_id', fields.IntField(null=True)),
                ('requested_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('approved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('received_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('inspected_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('closed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('cancelled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('processing_seconds', fields.IntField(null=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'returns', 'app': 'ordergraph', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ReturnLine',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('rma', fields.ForeignKeyField('ordergraph.ReturnAuthorization', source_field='rma_id', db_index=True, db_constraint=True, to_field='id', related_name='lines', on_delete=OnDelete.CASCADE)),
                ('order_line', fields.ForeignKeyField('ordergraph.OrderLine', source_field='order_line_id', db_index=True, db_constraint=True, to_field='id', related_name='return_lines', on_delete=OnDelete.CASCADE)),
                ('variant_id', fields.IntField()),
                ('sku', fields.CharField(max_length=64)),
                ('quantity', fields.IntField()),
                ('reason', fields.CharEnumField(description='DAMAGED: DAMAGED\nDEFECTIVE: DEFECTIVE\nWRONG_ITEM: WRONG_ITEM\nNOT_AS_DESCRIBED: NOT_AS_DESCRIBED\nSIZE_FIT: SIZE_FIT\nCHANGED_MIND: CHANGED_MIND\nARRIVED_LATE: ARRIVED_LATE\nOTHER: OTHER', enum_type=ReturnReason, max_length=16)),
                ('note', fields.CharField(default='', max_length=1000)),
                ('unit_price', fields.DecimalField(max_digits=12, decimal_places=2)),
                ('received_quantity', fields.IntField(default=0)),
                ('inspected_quantity', fields.IntField(default=0)),
                ('refunded_quantity', fields.IntField(default=0)),
            ],
            options={'table': 'return_lines', 'app': 'ordergraph', 'constraints': [CheckConstraint(check='quantity > 0', name='ck_return_line_qty_pos'), CheckConstraint(check='received_quantity >= 0 AND received_quantity <= quantity AND inspected_quantity <= received_quantity', name='ck_return_line_progress')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ReturnInspection',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('line', fields.ForeignKeyField('ordergraph.ReturnLine', source_field='line_id', db_index=True, db_constraint=True, to_field='id', related_name='inspections', on_delete=OnDelete.CASCADE)),
                ('quantity', fields.IntField()),
                ('condition', fields.CharEnumField(description='RESELLABLE: RESELLABLE\nDAMAGED: DAMAGED\nDEFECTIVE: DEFECTIVE\nWRONG_ITEM: WRONG_ITEM\nMISSING: MISSING', enum_type=ItemCondition, max_length=10)),
                ('disposition', fields.CharEnumField(description='RESTOCK: RESTOCK\nQUARANTINE: QUARANTINE\nDISPOSE: DISPOSE', enum_type=Disposition, max_length=10)),
                ('warehouse_id', fields.IntField(null=True)),
                ('note', fields.CharField(default='', max_length=1000)),
                ('actor', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'return_inspections', 'app': 'ordergraph', 'constraints': [CheckConstraint(check='quantity > 0', name='ck_return_inspection_qty_pos')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        AddColumnWithDefault(
            model_name='SalesChannel',
            name='auto_approve_max_value',
            field=fields.DecimalField(default=0, max_digits=12, decimal_places=2),
            sql={"sqlite": "VARCHAR(40) NOT NULL DEFAULT '0'", "postgres": "DECIMAL(12,2) NOT NULL DEFAULT 0"},
        ),
        AddColumnWithDefault(
            model_name='SalesChannel',
            name='auto_approve_reasons',
            field=fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
            sql={"sqlite": "JSON NOT NULL DEFAULT '[]'", "postgres": "JSONB NOT NULL DEFAULT '[]'"},
        ),
        AddColumnWithDefault(
            model_name='SalesChannel',
            name='restocking_fee_percent',
            field=fields.DecimalField(default=0, max_digits=5, decimal_places=2),
            sql={"sqlite": "VARCHAR(40) NOT NULL DEFAULT '0'", "postgres": "DECIMAL(5,2) NOT NULL DEFAULT 0"},
        ),
        AddColumnWithDefault(
            model_name='SalesChannel',
            name='return_shipping_fee',
            field=fields.DecimalField(default=0, max_digits=10, decimal_places=2),
            sql={"sqlite": "VARCHAR(40) NOT NULL DEFAULT '0'", "postgres": "DECIMAL(10,2) NOT NULL DEFAULT 0"},
        ),
        AddColumnWithDefault(
            model_name='SalesChannel',
            name='return_window_days',
            field=fields.IntField(default=30),
            sql="INT NOT NULL DEFAULT 30",
        ),
        AddCheckConstraint(model_name='ReturnLine', constraint=CheckConstraint(check='quantity > 0', name='ck_return_line_qty_pos')),
        AddCheckConstraint(model_name='ReturnLine', constraint=CheckConstraint(check='received_quantity >= 0 AND received_quantity <= quantity AND inspected_quantity <= received_quantity', name='ck_return_line_progress')),
        AddCheckConstraint(model_name='ReturnInspection', constraint=CheckConstraint(check='quantity > 0', name='ck_return_inspection_qty_pos')),
    ]
