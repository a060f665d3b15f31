"""The `ordergraph` command, run in subprocesses against a temporary SQLite database."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from ordergraph.auth.tokens import viewer_for_token
from ordergraph.auth.viewer import ViewerKind
from ordergraph.config import Settings


@pytest.fixture
def cli(tmp_path):
    """Runs `ordergraph …` (or a Python snippet) in tmp_path with its own SQLite database."""
    db_path = tmp_path / "cli.sqlite3"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "ENVIRONMENT", "JWT_SECRET")}
    env.update(DATABASE_URL=f"sqlite://{db_path}", LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    env.pop("ORDERGRAPH_DEBUG", None)

    def run(*args: str, ok: bool = True, python: str | None = None) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-c", python] if python else [sys.executable, "-m", "ordergraph.cli", *args]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
        if ok:
            assert proc.returncode == 0, f"{args}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    run.db_path = db_path
    run.env = env
    run.cwd = tmp_path
    return run


def _viewer_kind(cli, key: str) -> str:
    snippet = textwrap.dedent(f"""
        import asyncio
        from ordergraph.auth.keys import viewer_for_key
        from ordergraph.db import close_db, init_db

        async def main():
            await init_db()
            try:
                viewer = await viewer_for_key({key!r})
                print(viewer.kind.value if viewer else "NONE")
            finally:
                await close_db()

        asyncio.run(main())
    """)
    return cli(python=snippet).stdout.strip()


def test_migrate_is_idempotent(cli):
    first = cli("migrate")
    assert "applied ordergraph.0001_initial" in first.stdout
    assert "applied ordergraph.0002_foreign_key_indexes" in first.stdout
    assert "applied ordergraph.0003_fulfillment" in first.stdout
    assert "applied ordergraph.0004_returns" in first.stdout
    assert "applied ordergraph.0005_exceptions" in first.stdout
    assert "applied ordergraph.0006_last_sequence_function" in first.stdout
    assert "6 migration(s) applied" in first.stdout
    second = cli("migrate")
    assert "up to date: no migrations to apply" in second.stdout
    assert "applied ordergraph." not in second.stdout
    with sqlite3.connect(cli.db_path) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"orders", "inventory_levels", "api_keys", "events"} <= tables


def test_migrating_a_populated_database_keeps_every_row_and_adds_the_foreign_key_indexes(cli):
    """0002 adds indexes, 0003 and 0004 columns and tables; on SQLite none may rebuild an
    existing table, whose DROP TABLE would cascade to referencing rows (allocations of order
    lines, transactions of payments). The seeded database is taken back to its 0001 shape by
    hand (the seed needs today's columns), then migrated forward."""
    cli("migrate")
    cli("seed", "--demo")
    with sqlite3.connect(cli.db_path) as con:
        for table in ("exceptions", "return_inspections", "return_lines", "returns",
                      "package_items", "pick_list_items", "tracking_events", "shipments", "packages",
                      "fulfillment_lines", "pick_lists", "fulfillment_orders", "notifications"):
            con.execute(f'DROP TABLE "{table}"')
        con.execute('DROP INDEX "idx_allocations_fulfillment_order_id"')
        for table, column in (("allocations", "fulfillment_order_id"), ("inventory_levels", "bin_location"),
                              ("sales_channels", "carrier_selection"), ("sales_channels", "preferred_carrier"),
                              ("sales_channels", "return_window_days"), ("sales_channels", "restocking_fee_percent"),
                              ("sales_channels", "return_shipping_fee"), ("sales_channels", "auto_approve_reasons"),
                              ("sales_channels", "auto_approve_max_value")):
            con.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        for (index,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN "
            "('order_lines', 'payments', 'payment_transactions', 'order_holds') AND sql IS NOT NULL"
        ).fetchall():
            con.execute(f'DROP INDEX "{index}"')
        con.execute("DELETE FROM tortoise_migrations WHERE name != '0001_initial'")
    tables = ("orders", "order_lines", "allocations", "payments", "payment_transactions", "order_holds", "events")

    def counts():
        with sqlite3.connect(cli.db_path) as con:
            return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}  # noqa: S608

    before = counts()
    assert before["allocations"] and before["payment_transactions"] and before["order_holds"]
    migrated = cli("migrate").stdout
    assert "applied ordergraph.0002_foreign_key_indexes" in migrated
    assert "applied ordergraph.0003_fulfillment" in migrated
    assert "applied ordergraph.0004_returns" in migrated
    assert "applied ordergraph.0005_exceptions" in migrated
    assert counts() == before
    with sqlite3.connect(cli.db_path) as con:
        indexed = {
            (table, col)
            for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            for (index, *_) in [r[1:] for r in con.execute(f"PRAGMA index_list('{table}')")]
            for (*_, col) in con.execute(f"PRAGMA index_info('{index}')")
        }
    for table, col in (("order_lines", "order_id"), ("payments", "order_id"),
                       ("payment_transactions", "payment_id"), ("order_holds", "order_id"),
                       ("inventory_levels", "warehouse_id"), ("allocations", "order_id"),
                       ("allocations", "fulfillment_order_id"), ("fulfillment_lines", "order_line_id")):
        assert (table, col) in indexed, (table, col)


def test_api_key_create_authenticates_and_only_the_hash_is_stored(cli):
    cli("migrate")
    created = cli("api-key", "create", "--role", "staff", "--scopes", "orders:read,inventory:read", "--name", "ops")
    key = created.stdout.strip()
    assert key.startswith("og_") and "\n" not in key
    prefix = key.split("_")[1]
    assert prefix in created.stderr and "only this once" in created.stderr

    assert _viewer_kind(cli, key) == "STAFF"
    with sqlite3.connect(cli.db_path) as con:
        rows = con.execute("SELECT prefix, key_hash, role, scopes, name FROM api_keys").fetchall()
    assert rows == [(prefix, hashlib.sha256(key.encode()).hexdigest(), "STAFF", '["orders:read","inventory:read"]', "ops")]
    assert key not in cli.db_path.read_bytes().decode("latin-1")

    listed = cli("api-key", "list").stdout
    assert prefix in listed and "ops" in listed and key not in listed


def test_api_key_revoke(cli):
    cli("migrate")
    key = cli("api-key", "create").stdout.strip()
    prefix = key.split("_")[1]
    assert cli("api-key", "revoke", prefix).stdout.strip() == f"revoked {prefix}"
    assert _viewer_kind(cli, key) == "NONE"
    assert prefix not in cli("api-key", "list").stdout
    assert "revoked" in cli("api-key", "list", "--all").stdout
    assert "already revoked" in cli("api-key", "revoke", prefix).stdout


def test_errors_are_one_line_and_non_zero(cli):
    cli("migrate")
    missing = cli("api-key", "revoke", "deadbeef", ok=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no API key with prefix deadbeef"
    no_partner = cli("api-key", "create", "--role", "partner", "--partner", "nobody", ok=False)
    assert no_partner.returncode == 1 and "no partner with code nobody" in no_partner.stderr
    bad_scope = cli("api-key", "create", "--scopes", "orders:read,root", ok=False)
    assert bad_scope.returncode == 1 and "unknown scopes: root" in bad_scope.stderr
    with sqlite3.connect(cli.db_path) as con:
        assert con.execute("SELECT count(*) FROM api_keys").fetchone() == (0,)


def test_unmigrated_database_is_a_clear_error(cli):
    proc = cli("api-key", "list", ok=False)
    assert proc.returncode == 1
    assert "no such table" in proc.stderr and "ordergraph migrate" in proc.stderr


def test_export_schema_prints_sdl(cli, tmp_path):
    from ordergraph.schema.root import schema_sdl

    out = cli("export-schema").stdout
    assert out == schema_sdl()
    assert "type Query {" in out and "interface Error {" in out
    cli("export-schema", "--output", "out.graphql")
    assert (tmp_path / "out.graphql").read_text() == out


def test_customer_token(cli):
    token = cli("customer-token", "Ada@Example.com", "--days", "2").stdout.strip()
    viewer = viewer_for_token(token, Settings())
    assert viewer.kind is ViewerKind.CUSTOMER and viewer.email == "ada@example.com"
    bad = cli("customer-token", "not-an-email", ok=False)
    assert bad.returncode == 1 and "not an e-mail address" in bad.stderr


def test_seed_demo_once_then_refuses(cli):
    cli("migrate")
    assert cli("seed", ok=False).returncode == 1  # says what to seed
    first = cli("seed", "--demo")
    assert "Demo data loaded" in first.stdout
    creds = Path(cli.cwd, "var", "demo-credentials.txt").read_text()
    for name in ("STAFF_API_KEY", "PARTNER_API_KEY", "CUSTOMER_TOKEN", "GRAPHIQL_URL"):
        line = next(ln for ln in creds.splitlines() if ln.startswith(name + "="))
        assert line in first.stdout
    staff_key = next(ln for ln in creds.splitlines() if ln.startswith("STAFF_API_KEY=")).split("=", 1)[1]
    assert _viewer_kind(cli, staff_key) == "STAFF"

    again = cli("seed", "--demo", ok=False)
    assert again.returncode == 1 and "already has data" in again.stderr
    quiet = cli("seed", "--demo", "--if-empty")
    assert "already has data" in quiet.stdout
    with sqlite3.connect(cli.db_path) as con:
        assert con.execute("SELECT count(*) FROM warehouses").fetchone() == (3,)


def test_worker_runs_jobs_until_sigterm(cli):
    cli("migrate")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ordergraph.cli", "worker"],
        cwd=cli.cwd, env={**cli.env, "LOG_LEVEL": "INFO"}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    watchdog = threading.Timer(30, proc.kill)  # a worker that never logs its start fails fast
    watchdog.start()
    try:
        started = proc.stdout.readline()
        while started and "worker.start" not in started:
            started = proc.stdout.readline()
        assert "worker.start" in started and "expire_reservations" in started
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "worker.stop" in out and "Traceback" not in err


def test_serve_answers_over_http(cli):
    """`ordergraph serve` as deployed: the app opens the database in its own lifespan."""
    cli("migrate")
    key = cli("api-key", "create").stdout.strip()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ordergraph.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=cli.cwd, env={**cli.env, "LOG_LEVEL": "INFO"}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}
        resp = httpx.post(
            f"{base}/graphql",
            json={"query": "query Count { products { totalCount } }"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert resp.json() == {"data": {"products": {"totalCount": 0}}}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out and "Traceback" not in out
