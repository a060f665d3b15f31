"""Tortoise configuration and the few dialect-specific helpers the workflows need."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import asynccontextmanager
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


async def execute(sql: str, values: list[Any] | None = None) -> int:
    """Run a statement on the current (transaction-aware) connection; return rows affected."""
    rows, _ = await conn().execute_query(sql, values or [])
    return rows


async def fetch(sql: str, values: list[Any] | None = None) -> list[dict[str, Any]]:
    # execute_query_dict always fetches, so `UPDATE … RETURNING` yields its rows on every dialect.
    return await conn().execute_query_dict(sql, values or [])


# Callbacks to run once the outermost transaction of the current task has committed.
_after_commit: ContextVar[list[Callable[[], None]] | None] = ContextVar("_after_commit", default=None)


@asynccontextmanager
async def transaction():
    """A transaction; nested ones are savepoints. `after_commit` callbacks run after the
    outermost one commits, and are dropped when it rolls back."""
    from tortoise.transactions import in_transaction  # noqa: PLC0415

    outermost = _after_commit.get() is None
    token = _after_commit.set([]) if outermost else None
    try:
        async with in_transaction("default") as tx:
            yield tx
        callbacks = _after_commit.get() if outermost else []
    finally:
        if token is not None:
            _after_commit.reset(token)
    for callback in callbacks or ():
        callback()


def after_commit(callback: Callable[[], None]) -> None:
    """Run `callback` when the current transaction commits (at once outside a transaction)."""
    pending = _after_commit.get()
    if pending is None:
        callback()
    else:
        pending.append(callback)
