from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


class AddForeignKeyIndex(ops.AlterField):
    """`AlterField` for a foreign key that only gains `db_index=True` (as generated).

    PostgreSQL: the generated operation, which only runs CREATE INDEX. SQLite: Tortoise would
    rebuild the table (copy, DROP TABLE, rename) and create no index at all; with foreign keys
    on, that DROP TABLE cascades to the referencing rows (allocations of order_lines,
    payment_transactions of payments). So on SQLite only the index is created, under the same
    name as on PostgreSQL.
    """

    def __init__(self, model_name: str, name: str, field, column: str) -> None:
        super().__init__(model_name=model_name, name=name, field=field)
        self.column = column

    def _index(self) -> Index:
        return Index(fields=(self.column,))

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if state_editor is None or state_editor.client.capabilities.dialect != "sqlite":
            return await super().database_forward(app_label, old_state, new_state, state_editor)
        model = new_state.apps.get_model(f"{app_label}.{self.model_name}")
        await state_editor.add_index(model, self._index())

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if state_editor is None or state_editor.client.capabilities.dialect != "sqlite":
            return await super().database_backward(app_label, old_state, new_state, state_editor)
        model = old_state.apps.get_model(f"{app_label}.{self.model_name}")
        await state_editor.remove_index(model, self._index())


class Migration(migrations.Migration):
    dependencies = [('ordergraph', '0001_initial')]

    initial = False

    operations = [
        AddForeignKeyIndex(
            model_name='OrderHold',
            name='order',
            field=fields.ForeignKeyField('ordergraph.Order', source_field='order_id', db_index=True, db_constraint=True, to_field='id', related_name='holds', on_delete=OnDelete.CASCADE),
            column='order_id',
        ),
        AddForeignKeyIndex(
            model_name='OrderLine',
            name='order',
            field=fields.ForeignKeyField('ordergraph.Order', source_field='order_id', db_index=True, db_constraint=True, to_field='id', related_name='lines', on_delete=OnDelete.CASCADE),
            column='order_id',
        ),
        AddForeignKeyIndex(
            model_name='Payment',
            name='order',
            field=fields.ForeignKeyField('ordergraph.Order', source_field='order_id', db_index=True, db_constraint=True, to_field='id', related_name='payments', on_delete=OnDelete.CASCADE),
            column='order_id',
        ),
        AddForeignKeyIndex(
            model_name='PaymentTransaction',
            name='payment',
            field=fields.ForeignKeyField('ordergraph.Payment', source_field='payment_id', db_index=True, db_constraint=True, to_field='id', related_name='transactions', on_delete=OnDelete.CASCADE),
            column='payment_id',
        ),
    ]
