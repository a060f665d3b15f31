"""The `ordergraph` command: serve, worker, migrate, seed, export-schema, API keys, tokens.

Every command that touches the database opens the connections configured by the environment
(`DATABASE_URL`, …) and closes them when done. Failures print one line on stderr and exit
non-zero; set `ORDERGRAPH_DEBUG=1` to see the traceback instead.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ordergraph.config import get_settings

T = TypeVar("T")

app = typer.Typer(
    name="ordergraph",
    help="ordergraph: one GraphQL graph over the order management workflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
api_key_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(api_key_app, name="api-key")


class CliError(Exception):
    """An expected failure: printed as one line, exit status 1."""


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _quiet_logging() -> None:
    """Commands other than serve/worker keep stdout for their own output."""
    from ordergraph.observability import configure_logging  # noqa: PLC0415

    configure_logging("WARNING", json=False)


def run_async(work: Callable[[], Awaitable[T]], *, database: bool = True) -> T:
    """Run one async command with the database open around it; errors become clean exits."""

    async def main() -> T:
        if not database:
            return await work()
        from ordergraph.db import close_db, init_db  # noqa: PLC0415

        await init_db(get_settings())
        try:
            return await work()
        finally:
            await close_db()

    try:
        return asyncio.run(main())
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as exc:
        if os.environ.get("ORDERGRAPH_DEBUG"):
            raise
        raise _fail(_describe(exc)) from None


def _describe(exc: BaseException) -> str:
    from tortoise.exceptions import DBConnectionError, OperationalError  # noqa: PLC0415

    from ordergraph.auth.keys import KeyError_  # noqa: PLC0415
    from ordergraph.workflows.errors import DomainError, ValidationFailed  # noqa: PLC0415

    if isinstance(exc, CliError | KeyError_ | DomainError | ValidationFailed):
        return str(exc)
    if isinstance(exc, DBConnectionError | OperationalError | OSError):
        where = get_settings().database_url.split("@")[-1]
        hint = " (run `ordergraph migrate` first?)" if "no such table" in str(exc) or "does not exist" in str(exc) else ""
        return f"database {where}: {type(exc).__name__}: {exc}{hint}"
    return f"{type(exc).__name__}: {exc} (set ORDERGRAPH_DEBUG=1 for the traceback)"


# --- serving -------------------------------------------------------------------------------

LEAN_WS = "ordergraph.ws_protocol:LeanWebSocketProtocol"


class WsImpl(StrEnum):
    lean = "lean"
    auto = "auto"
    websockets = "websockets"
    websockets_sansio = "websockets-sansio"
    wsproto = "wsproto"
    none = "none"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
    ws_per_message_deflate: Annotated[bool, typer.Option(
        help="Accept permessage-deflate on WebSockets. Off by default: it holds a zlib compressor and "
             "decompressor per connection (about 41 KiB each, idle or not) and compresses every message "
             "once per subscriber, for events of a few hundred bytes.")] = False,
    ws: Annotated[WsImpl, typer.Option(
        help="WebSocket implementation: lean (default) is uvicorn's websockets-sansio protocol keeping less "
             "per connection (ordergraph.ws_protocol); the others are uvicorn's.")] = WsImpl.lean,
) -> None:
    """Serve the GraphQL API (and /healthz, /readyz, /metrics) with uvicorn."""
    import uvicorn  # noqa: PLC0415

    settings = get_settings()
    if reload and workers > 1:
        raise _fail("--reload and --workers > 1 cannot be combined")
    uvicorn.run(
        "ordergraph.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level=settings.log_level.lower(),
        access_log=False,  # the app logs every request with its request id
        ws_per_message_deflate=ws_per_message_deflate,
        ws=LEAN_WS if ws is WsImpl.lean else ws.value,
    )


@app.command()
def worker() -> None:
    """Run the periodic background jobs without serving HTTP (SIGINT/SIGTERM stop it).

    With REDIS_URL: saq runs them (ordergraph.worker), one run per tick across all workers,
    with the outbox relay. Without: they run in this process (ordergraph.jobs.JobRunner).
    """
    if importlib.util.find_spec("ordergraph.jobs") is None:
        raise _fail("no background jobs in this build (module ordergraph.jobs is missing)")
    from ordergraph import jobs, worker as saq_worker  # noqa: PLC0415
    from ordergraph.observability import configure_logging, log  # noqa: PLC0415

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        job_list = saq_worker.job_list()
    except ValueError as exc:
        raise _fail(str(exc)) from None

    def stop_on_signals() -> asyncio.Event:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return stop

    if settings.redis_url:
        async def work_saq() -> None:
            await saq_worker.run(settings, stop_on_signals())

        run_async(work_saq, database=False)  # the saq worker opens the database on startup
        return

    async def work() -> None:
        from ordergraph.db import fetch  # noqa: PLC0415

        # Open the connection now: fails fast when the database is unreachable, and a stop
        # during the first tick then never cancels a connection still being opened.
        await fetch("SELECT 1 AS ok")
        # No outbox relay here: without Redis this process's bus reaches no subscriber, and
        # marking events published would hide them from the API process's relay.
        runner = jobs.JobRunner(job_list)
        stop = stop_on_signals()
        runner.start()
        log.info("worker.start", engine="embedded", jobs=[job.name for job in runner.jobs])
        try:
            await stop.wait()
        finally:
            await runner.stop()
            log.info("worker.stop")

    run_async(work)


# --- database --------------------------------------------------------------------------------


@app.command()
def migrate() -> None:
    """Apply the pending database migrations (safe to run again)."""
    from tortoise import Tortoise  # noqa: PLC0415
    from tortoise.migrations.api import migrate as apply_migrations  # noqa: PLC0415

    from ordergraph.db import tortoise_config  # noqa: PLC0415

    _quiet_logging()
    settings = get_settings()
    applied: list[str] = []

    def progress(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            applied.append(f"{app_label}.{name}")
            typer.echo(f"applied {app_label}.{name}")

    async def work() -> None:
        try:
            await apply_migrations(config=tortoise_config(settings), progress=progress)
        finally:
            await Tortoise.close_connections()

    run_async(work, database=False)
    where = settings.database_url.split("@")[-1]
    if applied:
        typer.echo(f"{len(applied)} migration(s) applied to {where}")
    else:
        typer.echo(f"{where} is up to date: no migrations to apply")


@app.command()
def seed(
    demo: Annotated[bool, typer.Option("--demo", help="Load the demo data set.")] = False,
    if_empty: Annotated[
        bool,
        typer.Option("--if-empty", help="Succeed quietly when the database already has data."),
    ] = False,
    credentials_file: Annotated[
        Path, typer.Option(help="Where to write the demo credentials.")
    ] = Path("var/demo-credentials.txt"),
) -> None:
    """Load demo data: warehouses, channels, a partner, a catalog with stock, and orders.

    Refuses when the database already holds warehouses (nothing is changed then).
    """
    if not demo:
        raise _fail("say what to seed: `ordergraph seed --demo`")
    from ordergraph import seed as seeding  # noqa: PLC0415

    _quiet_logging()

    async def work():
        existing = await seeding.existing_warehouses()
        if existing:
            return existing
        return await seeding.seed_demo(credentials_file=credentials_file)

    result = run_async(work)
    if isinstance(result, int):
        message = (
            f"the database already has data ({result} warehouse(s)); demo data not loaded. "
            f"Credentials from the first seeding are in {credentials_file}"
        )
        if if_empty:
            typer.echo(message)
            return
        raise _fail(message)
    typer.echo(seeding.format_summary(result, credentials_file))


# --- schema ----------------------------------------------------------------------------------


@app.command("export-schema")
def export_schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the GraphQL schema (SDL) the code defines."""
    try:
        from ordergraph.schema.root import schema_sdl  # noqa: PLC0415

        sdl = schema_sdl()
    except Exception as exc:
        if os.environ.get("ORDERGRAPH_DEBUG"):
            raise
        raise _fail(f"cannot build the schema: {type(exc).__name__}: {exc}") from None
    if output is None:
        sys.stdout.write(sdl)
    else:
        output.write_text(sdl, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


# --- credentials -----------------------------------------------------------------------------


class RoleOption(StrEnum):
    staff = "staff"
    partner = "partner"


@api_key_app.command("create")
def api_key_create(
    role: Annotated[RoleOption, typer.Option(help="staff or partner.")] = RoleOption.staff,
    scopes: Annotated[
        str | None,
        typer.Option(help="Comma-separated scopes (default: all a role may hold)."),
    ] = None,
    partner: Annotated[str | None, typer.Option(help="Partner code (partner keys).")] = None,
    name: Annotated[str, typer.Option(help="A label for people.")] = "",
) -> None:
    """Create an API key and print it once (only its SHA-256 hash is stored)."""
    from ordergraph.auth.keys import create_api_key  # noqa: PLC0415
    from ordergraph.models.enums import Role  # noqa: PLC0415

    _quiet_logging()
    scope_list = [s.strip() for s in scopes.split(",") if s.strip()] if scopes else None
    if role is RoleOption.staff and partner:
        raise _fail("--partner is only for partner keys (--role partner)")

    async def work():
        return await create_api_key(Role(role.value.upper()), scope_list, partner, name)

    key, row = run_async(work)
    typer.echo(key)
    typer.echo(
        f"created {row.role.value.lower()} key {row.prefix} with scopes {', '.join(row.scopes)}"
        f"{f' for partner {partner}' if partner else ''}. It is shown only this once.",
        err=True,
    )


@api_key_app.command("list")
def api_key_list(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
) -> None:
    """List API keys (prefix, role, partner, scopes; never the key)."""
    from ordergraph.models import ApiKey  # noqa: PLC0415

    _quiet_logging()

    async def work() -> list[Any]:
        query = ApiKey.all() if all_keys else ApiKey.filter(revoked=False)
        return await query.order_by("id").prefetch_related("partner")

    rows = run_async(work)
    if not rows:
        typer.echo("no API keys")
        return
    typer.echo(f"{'PREFIX':<10} {'ROLE':<8} {'PARTNER':<16} {'STATE':<8} {'CREATED':<20} NAME / SCOPES")
    for row in rows:
        typer.echo(
            f"{row.prefix:<10} {row.role.value.lower():<8} "
            f"{(row.partner.code if row.partner else '-'):<16} "
            f"{'revoked' if row.revoked else 'active':<8} "
            f"{row.created_at.strftime('%Y-%m-%d %H:%M'):<20} "
            f"{row.name or '-'} [{', '.join(row.scopes)}]"
        )


@api_key_app.command("revoke")
def api_key_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (og_<prefix>_…).")],
) -> None:
    """Revoke an API key: requests using it are refused from now on."""
    from ordergraph.models import ApiKey  # noqa: PLC0415

    _quiet_logging()
    prefix = prefix.removeprefix("og_").split("_", 1)[0]

    async def work() -> int:
        if not await ApiKey.exists(prefix=prefix):
            raise CliError(f"no API key with prefix {prefix}")
        return await ApiKey.filter(prefix=prefix, revoked=False).update(revoked=True)

    changed = run_async(work)
    typer.echo(f"revoked {prefix}" if changed else f"{prefix} was already revoked")


@app.command("customer-token")
def customer_token(
    email: Annotated[str, typer.Argument(help="The customer's e-mail.")],
    days: Annotated[int, typer.Option(min=1, help="Validity in days.")] = 30,
) -> None:
    """Print a customer JWT (the customer portal's credential)."""
    from ordergraph.auth.tokens import issue_customer_token  # noqa: PLC0415
    from ordergraph.workflows.validation import valid_email  # noqa: PLC0415

    if not valid_email(email):
        raise _fail(f"not an e-mail address: {email}")
    typer.echo(issue_customer_token(email, timedelta(days=days)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
