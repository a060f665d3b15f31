"""Operations the migrations share, where Tortoise's own do not fit (see each docstring).

The leading underscore keeps Tortoise's migration loader from taking this module for a migration.
"""

from tortoise.migrations import operations as ops


class AddCheckConstraint(ops.AddConstraint):
    """A CHECK constraint of a table created (empty) in this migration.

    Tortoise's CreateModel leaves CHECK constraints out on both backends. On PostgreSQL this
    is the plain AddConstraint. On SQLite AddConstraint would rebuild the table through its
    model state (losing its indexes and writing the constraint twice); the table is new and
    empty, so it is re-created here from its own CREATE TABLE text with the CHECK added and
    its indexes put back.
    """

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if state_editor is None or state_editor.client.capabilities.dialect != "sqlite":
            return await super().database_forward(app_label, old_state, new_state, state_editor)
        client = state_editor.client
        table = new_state.apps.get_model(f"{app_label}.{self.model_name}")._meta.db_table
        _, rows = await client.execute_query(
            "SELECT type, sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL", [table]
        )
        create = next(r["sql"] for r in rows if r["type"] == "table")
        indexes = [r["sql"] for r in rows if r["type"] == "index"]
        check = f'CONSTRAINT "{self.constraint.name}" CHECK ({self.constraint.check})'
        create = create.rstrip().rstrip(")").rstrip() + f",\n    {check}\n)"
        await client.execute_script(
            f'DROP TABLE "{table}";' + create + ";" + "".join(sql + ";" for sql in indexes)
        )

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if state_editor is None or state_editor.client.capabilities.dialect != "sqlite":
            return await super().database_backward(app_label, old_state, new_state, state_editor)
        return None  # the tables go away with the CreateModel they belong to


class AddColumnWithDefault(ops.AddField):
    """AddField of a NOT NULL column to a table that may hold rows.

    Tortoise's AddField keeps the default in Python only, so the ALTER TABLE has no DEFAULT
    and fails on a populated table (SQLite: "Cannot add a NOT NULL column with default value
    NULL"; PostgreSQL: the existing rows violate NOT NULL). The column is added with the
    default in the database, which fills the existing rows and is what the model writes anyway.
    `sql` is the column's type and default, or a dict of them per dialect ("sqlite", "postgres")
    where the types differ (Tortoise stores decimals as VARCHAR on SQLite, JSON as jsonb on
    PostgreSQL).
    """

    def __init__(self, model_name: str, name: str, field, sql: str | dict[str, str]) -> None:
        super().__init__(model_name=model_name, name=name, field=field)
        self.sql = sql

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if state_editor is None:
            return None
        client = state_editor.client
        sql = self.sql if isinstance(self.sql, str) else self.sql[client.capabilities.dialect]
        table = new_state.apps.get_model(f"{app_label}.{self.model_name}")._meta.db_table
        await client.execute_script(f'ALTER TABLE "{table}" ADD COLUMN "{self.name}" {sql};')
