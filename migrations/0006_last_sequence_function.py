from tortoise import migrations
from tortoise.migrations import operations as ops

# PostgreSQL: an aggregate's last event sequence read with a snapshot of its own. A VOLATILE
# function takes a fresh snapshot for each query it runs, so a statement that has just waited
# for a row lock sees, through it, the events committed by the transaction that held the lock
# (the statement's own snapshot predates that commit). stock.move_fitting numbers the events
# it writes in the statement that takes the locks with it. ORDER BY … DESC LIMIT 1 reads one
# entry of the (aggregate_type, aggregate_id, sequence) index, however long the aggregate's
# history (max() did too only when the planner's statistics said the history was long).
_CREATE = """
CREATE OR REPLACE FUNCTION og_last_sequence(agg_type text, agg_id integer) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN coalesce((SELECT sequence FROM events WHERE aggregate_type = agg_type AND aggregate_id = agg_id
                     ORDER BY sequence DESC LIMIT 1), 0);
END
$$
"""


async def _create(apps, schema_editor) -> None:
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script(_CREATE)


async def _drop(apps, schema_editor) -> None:
    if schema_editor.client.capabilities.dialect == "postgres":
        await schema_editor.client.execute_script("DROP FUNCTION IF EXISTS og_last_sequence(text, integer)")


class Migration(migrations.Migration):
    dependencies = [('ordergraph', '0005_exceptions')]

    initial = False

    operations = [
        ops.RunPython(_create, _drop),
    ]
