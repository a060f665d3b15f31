"""Tortoise configuration and the few dialect-specific helpers the workflows need."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from tortoise import Tortoise, connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.base.config_generator import expand_db_url

from ordergraph.config import Settings, get_settings

APP = "ordergraph"


def _db_url(settings: Settings) -> str:
    url = settings.database_url
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if path and path != ":memory:":
            directory = os.path.dirname(path)
            if directory:
                os.makedirs(directory, exist_ok=True)
        return url
    if url.startswith("postgresql://"):
        url = "postgres://" + url[len("postgresql://") :]
    if "maxsize=" not in url:
        url += ("&" if "?" in url else "?") + f"maxsize={settings.db_pool_size}"
    return url


async def _keep_session(connection: Any) -> None:
    """asyncpg pool `reset`: nothing to undo when a connection goes back to the pool.

    asyncpg's default reset sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL;`, one more round trip after every pooled query. This app takes no advisory
    locks, never LISTENs, opens no cursors WITH HOLD and never changes a session setting
    (`SET` / `set_config`; `SET LOCAL` ends with its transaction). asyncpg still rolls back a
    transaction left open and drops listeners before calling this. Code that ever needs
    session state must use a transaction-scoped form or restore what it changed.
    """


def _connection(settings: Settings) -> str | dict[str, Any]:
    url = _db_url(settings)
    if not url.startswith("postgres://"):
        return url
    config = expand_db_url(url)
    config["credentials"]["reset"] = _keep_session  # passed through to asyncpg.create_pool
    return config


def tortoise_config(settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or get_settings()
    return {
        "connections": {"default": _connection(settings)},
        "apps": {
            APP: {
                "models": ["ordergraph.models"],
                "migrations": "migrations",
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def init_db(settings: Settings | None = None, *, process_wide: bool = False) -> None:
    """Open the connections for the current task and the tasks it starts.

    Tortoise ≥ 1.1 keeps its state in a context variable of the task that called init. An ASGI
    server runs the lifespan and each request in unrelated tasks, so the app's lifespan passes
    `process_wide=True`: the state then also serves tasks that did not inherit it.
    """
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=process_wide)


async def close_db() -> None:
    await Tortoise.close_connections()


def conn() -> BaseDBAsyncClient:
    # Inside `in_transaction()` Tortoise binds the alias to the transaction's client through a
    # context variable, so raw SQL issued here joins the surrounding transaction.
    return connections.get("default")


def dialect() -> str:
    return conn().capabilities.dialect


def placeholders(n: int, start: int = 1) -> list[str]:
    """Positional parameter markers for the active dialect."""
    if dialect() == "postgres":
        return [f"${i}" for i in range(start, start + n)]
    return ["?"] * n


class Params:
    """Collects a statement's values as its text is built; each call returns the value's marker
    for the active dialect (`$n` on PostgreSQL, `?` on SQLite, bound in order of appearance)."""

    __slots__ = ("values", "_numbered")

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._numbered = dialect() == "postgres"

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}" if self._numbered else "?"


def insert_sql(
    table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], returning: str = "",
    before: Callable[[Params], str] | None = None, params: Params | None = None,
) -> tuple[str, list[Any]]:
    """One multi-row INSERT. A value that is a `Raw` is spliced in as SQL (with its own values);
    every other value is a parameter. Values go to the driver as they are: callers pass what the
    column stores (JSON already encoded with `json_dumps`, enums as their value). `before(params)`
    gives a WITH clause to put in front (PostgreSQL's data-modifying CTEs: several writes in one
    statement). `params`: add the values to those of a larger statement."""
    p = params or Params()
    head = before(p) + " " if before else ""
    groups = []
    for row in rows:
        groups.append("(" + ", ".join(v.render(p) if isinstance(v, Raw) else p(v) for v in row) + ")")
    sql = f"{head}INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(groups)}"
    if returning:
        sql += f" RETURNING {returning}"
    return sql, p.values


class Raw:
    """A piece of SQL inside `insert_sql`'s values: `sql` with `{}` for each of `values`."""

    __slots__ = ("sql", "values")

    def __init__(self, sql: str, *values: Any) -> None:
        self.sql, self.values = sql, values

    def render(self, p: Params) -> str:
        return self.sql.format(*(p(v) for v in self.values))


async def insert_many(
    table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], returning: str = "",
    before: Callable[[Params], str] | None = None,
) -> list[dict[str, Any]]:
    """Insert `rows` in one statement; returns the RETURNING rows (in no promised order)."""
    if not rows:
        return []
    sql, values = insert_sql(table, columns, rows, returning, before)
    if returning:
        return await fetch(sql, values)
    await execute(sql, values)
    return []


def _insert_plan(model: type) -> tuple[tuple[str, str, Any], ...]:
    """(field name, column, field) of every column an INSERT of `model` writes (all but a generated key)."""
    plan = _plans.get(model)
    if plan is None:
        meta = model._meta
        plan = tuple(
            (name, column, meta.fields_map[name])
            for name, column in meta.fields_db_projection.items()
            if not (meta.fields_map[name].pk and meta.fields_map[name].generated)
        )
        _plans[model] = plan
    return plan


_plans: dict[type, tuple[tuple[str, str, Any], ...]] = {}
_MISSING = object()


def model_rows(model: type, rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Columns and values to INSERT `rows` (field name -> value) of a Tortoise model, as
    `Model.create` would write them: every column, the model's defaults (`auto_now`/`auto_now_add`
    get the current time) for what a row leaves out, each value through its field's
    `to_db_value`. A `Raw` value goes in as SQL."""
    from tortoise import timezone  # noqa: PLC0415

    plan = _insert_plan(model)
    now = None
    out = []
    for row in rows:
        values = []
        for name, _, field in plan:
            value = row.get(name, _MISSING)
            if value is _MISSING:
                if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                    value = now = now or timezone.now()
                elif field.default is not None:
                    value = field.default() if callable(field.default) else field.default
                elif field.null:
                    value = None
                else:
                    raise ValueError(f"{model.__name__}.{name} has no value and no default")
            values.append(value if isinstance(value, Raw) else field.to_db_value(value, model))
        out.append(values)
    return [column for _, column, _ in plan], out


async def insert_rows(
    model: type, rows: Sequence[dict[str, Any]], returning: str = "", before: Callable[[Params], str] | None = None
) -> list[dict[str, Any]]:
    """`insert_many` for a Tortoise model's rows given as field name -> value (see `model_rows`)."""
    if not rows:
        return []
    columns, values = model_rows(model, rows)
    return await insert_many(model._meta.db_table, columns, values, returning, before)


async def create_rows(model: type, rows: Sequence[dict[str, Any]]) -> list[Any]:
    """`Model.create` for each row in one INSERT; returns the instances with their ids, in order.

    One INSERT numbers its rows in the order they are listed (PostgreSQL evaluates each row's
    `nextval` in turn, SQLite hands out ascending rowids), so sorted ids match the rows.
    """
    if not rows:
        return []
    meta = model._meta
    columns, values = model_rows(model, rows)
    written = await insert_many(meta.db_table, columns, values, returning=meta.db_pk_column)
    ids = sorted(r[meta.db_pk_column] for r in written)
    return [
        model._init_from_db(**{meta.db_pk_column: id_, **dict(zip(columns, row, strict=True))})
        for id_, row in zip(ids, values, strict=True)
    ]


def update_sql(obj: Any, fields: Sequence[str], p: Params) -> str:
    """`obj.save(update_fields=fields)` as one plain UPDATE (an `auto_now` field gets the time)."""
    from tortoise import timezone  # noqa: PLC0415

    model = type(obj)
    meta = model._meta
    sets = []
    for name in dict.fromkeys(fields):
        field = meta.fields_map[name]
        if getattr(field, "auto_now", False):
            setattr(obj, name, timezone.now())
        sets.append(f"{meta.fields_db_projection[name]} = {p(field.to_db_value(getattr(obj, name), model))}")
    return f"UPDATE {meta.db_table} SET {', '.join(sets)} WHERE {meta.db_pk_column} = {p(obj.pk)}"


async def save_fields(obj: Any, fields: Sequence[str]) -> None:
    """`obj.save(update_fields=fields)` in one plain UPDATE (an `auto_now` field gets the time)."""
    p = Params()
    await execute(update_sql(obj, fields, p), p.values)


class Writes:
    """Writes that need nothing from one another's results, sent together by `run()`: on
    PostgreSQL as one statement (all but the last as data-modifying CTEs, which see the same
    snapshot, so none may touch rows another one changes), elsewhere one statement each.

    Each is a function of the statement's `Params` that returns its SQL. A write with a WITH
    clause of its own can only be a CTE, so of two or more at least one must have none (the main
    statement).
    """

    def __init__(self) -> None:
        self._parts: list[Callable[[Params], str]] = []

    def add(self, build: Callable[[Params], str]) -> None:
        self._parts.append(build)

    @property
    def pending(self) -> int:
        """How many writes are waiting (neither run nor taken as CTEs)."""
        return len(self._parts)

    def as_ctes(self, p: Params) -> list[str]:
        """PostgreSQL: every write as a data-modifying CTE (`_w0 AS (…)`, …) of a statement the
        caller builds and runs instead of `run()`; none may start with WITH."""
        parts, self._parts = self._parts, []
        texts = [build(p) for build in parts]
        if any(t.lstrip().upper().startswith("WITH") for t in texts):
            raise ValueError("Writes.as_ctes: a write starts with WITH")
        return [f"_w{i} AS ({t})" for i, t in enumerate(texts)]

    async def run(self) -> None:
        parts, self._parts = self._parts, []
        if not parts:
            return
        if dialect() != "postgres" or len(parts) == 1:
            for build in parts:
                p = Params()
                await execute(build(p), p.values)
            return
        p = Params()
        texts = [build(p) for build in parts]
        plain = [i for i, t in enumerate(texts) if not t.lstrip().upper().startswith("WITH")]
        if not plain:
            raise ValueError("Writes: one write must not start with WITH")
        last = texts.pop(plain[-1])
        head = ", ".join(f"_w{i} AS ({t})" for i, t in enumerate(texts))
        await execute(f"WITH {head} {last}" if head else last, p.values)


def json_dumps(value: Any) -> str:
    """JSON text exactly as Tortoise's JSONField writes it."""
    from tortoise.fields.data import JSON_DUMPS  # noqa: PLC0415

    return JSON_DUMPS(value)


async def execute(sql: str, values: list[Any] | None = None) -> int:
    """Run a statement on the current (transaction-aware) connection; return rows affected."""
    client = conn()
    if _in_asyncpg_transaction(client):  # counted as Tortoise's execute_query counts
        if sql.lstrip().upper().startswith(("UPDATE", "DELETE", "INSERT")):
            status = await _on_transaction(client, "execute", sql, values)
            try:
                return int(status.split(" ")[1])
            except (AttributeError, IndexError, ValueError):
                return 0
        return len(await _on_transaction(client, "fetch", sql, values))
    rows, _ = await client.execute_query(sql, values or [])
    return rows


async def fetch(sql: str, values: list[Any] | None = None) -> list[dict[str, Any]]:
    # execute_query_dict always fetches, so `UPDATE … RETURNING` yields its rows on every dialect.
    client = conn()
    if _in_asyncpg_transaction(client):
        return [dict(r) for r in await _on_transaction(client, "fetch", sql, values)]
    return await client.execute_query_dict(sql, values or [])


def _in_asyncpg_transaction(client: Any) -> bool:
    from tortoise.backends.asyncpg.client import TransactionWrapper  # noqa: PLC0415

    return type(client) is TransactionWrapper and getattr(client, "_connection", None) is not None


async def _on_transaction(client: Any, method: str, sql: str, values: list[Any] | None) -> Any:
    """A statement on the asyncpg connection of the Tortoise transaction `client`, as its
    `execute_query*` would send it (its lock, its statement log, the same exceptions), without
    the layers of wrappers around each call: a transaction sends most of placeOrder's
    statements, and those layers cost about as much CPU as the driver itself."""
    import asyncpg  # noqa: PLC0415
    from tortoise.exceptions import IntegrityError, OperationalError, TransactionManagementError  # noqa: PLC0415

    async with client._lock:  # noqa: SLF001 - one statement at a time on the connection, as Tortoise does
        client.log.debug("%s: %s", sql, values)
        try:
            return await getattr(client._connection, method)(sql, *(values or ()))  # noqa: SLF001
        except (asyncpg.SyntaxOrAccessError, asyncpg.exceptions.DataError) as exc:
            raise OperationalError(exc) from exc
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(exc) from exc
        except asyncpg.InvalidTransactionStateError as exc:
            raise TransactionManagementError(exc) from exc


# Callbacks to run once the outermost transaction of the current task has committed.
_after_commit: ContextVar[list[Callable[[], None]] | None] = ContextVar("_after_commit", default=None)


@asynccontextmanager
async def transaction():
    """A transaction; nested ones are savepoints. `after_commit` callbacks run after the
    outermost one commits, and are dropped when it rolls back; those registered inside a
    savepoint are dropped when the savepoint rolls back."""
    from tortoise.transactions import in_transaction  # noqa: PLC0415

    pending = _after_commit.get()
    if pending is not None:
        # Writes held back for the end of the enclosing transaction go first: a savepoint that
        # rolls back must not take them with it, and what runs inside it must see them.
        for flush in _before_savepoint.get():
            await flush()
        mark = len(pending)
        scope = _scope.set(object())
        try:
            async with in_transaction("default") as tx:
                yield tx
        except BaseException:
            del pending[mark:]
            raise
        finally:
            _scope.reset(scope)
        return
    callbacks: list[Callable[[], None]] = []
    token = _after_commit.set(callbacks)
    scope = _scope.set(object())
    try:
        async with in_transaction("default") as tx:
            yield tx
    finally:
        _scope.reset(scope)
        _after_commit.reset(token)
    for callback in callbacks:
        callback()


# A token per transaction and per savepoint within it (Tortoise binds a savepoint to the same
# client object as its transaction, so the client cannot tell them apart).
_scope: ContextVar[object | None] = ContextVar("_scope", default=None)


def current_scope() -> object | None:
    """The innermost `transaction()` (or savepoint) the current task is in; None outside."""
    return _scope.get()


# Flushes of writes held back in the current transaction (see `flush_before_savepoints`).
_before_savepoint: ContextVar[tuple[Callable[[], Awaitable[None]], ...]] = ContextVar("_before_savepoint", default=())


@contextmanager
def flush_before_savepoints(flush: Callable[[], Awaitable[None]]) -> Iterator[None]:
    """While the block runs, `flush` is awaited before any nested transaction (savepoint) opens."""
    token = _before_savepoint.set((*_before_savepoint.get(), flush))
    try:
        yield
    finally:
        _before_savepoint.reset(token)


def after_commit(callback: Callable[[], None]) -> None:
    """Run `callback` when the current transaction commits (at once outside a transaction)."""
    pending = _after_commit.get()
    if pending is None:
        callback()
    else:
        pending.append(callback)
