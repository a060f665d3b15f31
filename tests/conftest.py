"""Test harness: one backend per run (SQLite + in-memory bus, or PostgreSQL + Redis).

`make test` runs the suite twice, once per backend. The PostgreSQL run needs the services;
if they are unreachable it fails at once with a clear message instead of skipping.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tortoise import Tortoise
from tortoise.migrations.api import migrate

from ordergraph.app import create_app
from ordergraph.config import Settings
from ordergraph.db import close_db, dialect, execute, fetch, init_db, tortoise_config
from tests.servers import serve

PG_ADMIN_DSN = os.environ.get("OG_TEST_PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")
# One database per test run, so parallel runs on one machine never drop each other's.
PG_TEST_DB = os.environ.get("OG_TEST_PG_DB", f"ordergraph_test_{os.getpid()}")
REDIS_URL = os.environ.get("OG_TEST_REDIS", "redis://127.0.0.1:6379/15")


def pytest_addoption(parser):
    parser.addoption(
        "--backend",
        default=os.environ.get("OG_TEST_BACKEND", "sqlite"),
        choices=("sqlite", "postgres"),
        help="sqlite: embedded default; postgres: PostgreSQL + Redis",
    )


def pytest_configure(config):
    config.backend = config.getoption("--backend")


def pytest_collection_modifyitems(config, items):
    if config.backend == "postgres":
        return
    skip = pytest.mark.skip(reason="PostgreSQL-only test (run with --backend postgres)")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    return f"ordergraph backend: {config.backend}"


async def _prepare_postgres() -> None:
    import asyncpg  # noqa: PLC0415

    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.exit(
            f"PostgreSQL is unreachable at {PG_ADMIN_DSN} ({exc}). Start it with: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
            returncode=3,
        )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{PG_TEST_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{PG_TEST_DB}"')
    finally:
        await admin.close()
    import redis.asyncio as aioredis  # noqa: PLC0415

    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
        await client.flushdb()
    except Exception as exc:  # noqa: BLE001
        pytest.exit(
            f"Redis is unreachable at {REDIS_URL} ({exc}). Start it with: redis-server --daemonize yes "
            '--bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no',
            returncode=3,
        )
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def backend(pytestconfig) -> str:
    return pytestconfig.backend


@pytest.fixture(scope="session")
async def settings(backend) -> Settings:
    if backend == "postgres":
        await _prepare_postgres()
        base = PG_ADMIN_DSN.rsplit("/", 1)[0]
        return Settings(
            database_url=f"{base}/{PG_TEST_DB}",
            redis_url=REDIS_URL,
            db_pool_size=40,
            log_level="WARNING",
            run_jobs=False,  # no background job races the tests; test_jobs runs them on purpose
            ws_init_timeout_seconds=1.0,
        )
    path = os.path.join(tempfile.mkdtemp(prefix="ordergraph-test-"), "test.sqlite3")
    return Settings(database_url=f"sqlite://{path}", log_level="WARNING", run_jobs=False, ws_init_timeout_seconds=1.0)


@pytest.fixture(scope="session")
async def db(settings) -> AsyncIterator[Settings]:
    await migrate(config=tortoise_config(settings))
    await Tortoise.close_connections()
    await init_db(settings)
    yield settings
    await close_db()
    if settings.database_url.startswith("postgres"):
        import asyncpg  # noqa: PLC0415

        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{PG_TEST_DB}" WITH (FORCE)')
        finally:
            await admin.close()


TABLES_KEEP = {"tortoise_migrations", "sqlite_sequence"}


async def _tables() -> list[str]:
    if dialect() == "postgres":
        rows = await fetch("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'")
    else:
        rows = await fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
    return [r["name"] for r in rows if r["name"] not in TABLES_KEEP]


@pytest.fixture(autouse=True)
async def clean_db(request) -> AsyncIterator[None]:
    """Every test starts with empty tables (schema and migrations stay), and with fresh local
    payment gateway and carriers: their idempotency keys derive from row ids, which restart."""
    from ordergraph.integrations.carriers.registry import reset_local_carriers  # noqa: PLC0415
    from ordergraph.integrations.payments.registry import reset_local_gateway  # noqa: PLC0415

    reset_local_gateway()
    reset_local_carriers()
    if "db" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("db")
    tables = await _tables()
    if dialect() == "postgres":
        await execute(
            "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
        )
    else:
        await execute("PRAGMA foreign_keys = OFF")
        for t in tables:
            await execute(f'DELETE FROM "{t}"')
        await execute("DELETE FROM sqlite_sequence")
        await execute("PRAGMA foreign_keys = ON")
    yield


@pytest.fixture(scope="session")
async def server(db) -> AsyncIterator[str]:
    """The real app served by uvicorn on a local port, in the test's event loop."""
    async with serve(create_app(db, manage_db=False)) as base_url:
        yield base_url


class GraphQLClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url, timeout=60, limits=httpx.Limits(max_connections=300))

    async def raw(self, query: str, variables: dict | None = None, *, auth: str | None = None, headers: dict | None = None) -> httpx.Response:
        h = dict(headers or {})
        if auth:
            h["Authorization"] = f"Bearer {auth}"
        return await self.http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=h)

    async def __call__(self, query: str, variables: dict | None = None, *, auth: str | None = None, errors: bool = False) -> dict[str, Any]:
        """Run an operation; unless `errors`, assert the response has no GraphQL errors."""
        resp = await self.raw(query, variables, auth=auth)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        if errors:
            return body
        assert "errors" not in body, body.get("errors")
        return body["data"]


@pytest.fixture(scope="session")
async def gql(server) -> AsyncIterator[GraphQLClient]:
    client = GraphQLClient(server)
    yield client
    await client.http.aclose()
