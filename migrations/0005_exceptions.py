from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from ordergraph.models.enums import ExceptionKind, ExceptionStatus, Severity, Team
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('ordergraph', '0004_returns')]

    initial = False

    operations = [
        ops.CreateModel(
            name='OrderException',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('number', fields.CharField(unique=True, max_length=32)),
                ('fact_key', fields.CharField(unique=True, max_length=200)),
                ('kind', fields.CharEnumField(db_index=True, description='PAYMENT_FAILED: PAYMENT_FAILED\nOUT_OF_STOCK: OUT_OF_STOCK\nADDRESS_INVALID: ADDRESS_INVALID\nFRAUD_REVIEW: FRAUD_REVIEW\nSHORT_PICK: SHORT_PICK\nMISSED_PICKUP: MISSED_PICKUP\nCARRIER_DELAY: CARRIER_DELAY\nDELIVERY_FAILED: DELIVERY_FAILED\nLOST_IN_TRANSIT: LOST_IN_TRANSIT\nSHIP_SLA_BREACH: SHIP_SLA_BREACH\nRETURN_OVERDUE: RETURN_OVERDUE', enum_type=ExceptionKind, max_length=15)),
                ('severity', fields.CharEnumField(description='LOW: LOW\nMEDIUM: MEDIUM\nHIGH: HIGH\nCRITICAL: CRITICAL', enum_type=Severity, max_length=8)),
                ('status', fields.CharEnumField(default=ExceptionStatus.OPEN, db_index=True, description='OPEN: OPEN\nACKNOWLEDGED: ACKNOWLEDGED\nESCALATED: ESCALATED\nRESOLVED: RESOLVED\nDISMISSED: DISMISSED', enum_type=ExceptionStatus, max_length=12)),
                ('team', fields.CharEnumField(db_index=True, description='PAYMENTS: PAYMENTS\nINVENTORY: INVENTORY\nWAREHOUSE: WAREHOUSE\nCARRIER_OPS: CARRIER_OPS\nCUSTOMER_CARE: CUSTOMER_CARE\nFRAUD: FRAUD', enum_type=Team, max_length=13)),
                ('assignee', fields.CharField(null=True, max_length=200)),
                ('order_id', fields.IntField(null=True, db_index=True)),
                ('shipment_id', fields.IntField(null=True)),
                ('return_id', fields.IntField(null=True)),
                ('summary', fields.CharField(max_length=500)),
                ('details', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('sla_due_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('escalation_level', fields.IntField(default=0)),
                ('escalate_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ('raised_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('acknowledged_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('escalated_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('resolved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('resolution_action', fields.CharField(null=True, max_length=64)),
                ('resolution_note', fields.CharField(default='', max_length=1000)),
                ('resolved_by', fields.CharField(null=True, max_length=200)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'exceptions', 'app': 'ordergraph', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
