"""The one path every mutation takes: idempotency, the workflow call, errors as data."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from strawberry.types import Info
from strawberry.types.unset import UnsetType

from ordergraph.workflows.errors import DomainError, ErrorCode, ValidationFailed
from ordergraph.workflows.idempotency import run_idempotent

from ordergraph.schema.errors import to_graphql_error


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, UnsetType):
        return None
    return value


async def run_mutation(
    info: Info,
    operation: str,
    idempotency_key: str | None,
    args: dict[str, Any],
    action: Callable[[], Awaitable[Any]],
    success: Callable[[Any], Any],
    *,
    scope: str | None = None,
) -> Any:
    """Check the scope, run `action` under the idempotency key, map the outcome."""
    ctx = info.context
    viewer = ctx.viewer
    try:
        if scope is not None and not viewer.has_scope(scope):
            raise DomainError(
                ErrorCode.FORBIDDEN, f"{operation} needs the {scope} scope", None
            )
        result = await run_idempotent(
            viewer.principal,
            operation,
            idempotency_key,
            _plain(args) if idempotency_key else None,  # hashed only to compare replays of a key
            action,
            wait_seconds=ctx.settings.idempotency_wait_seconds,
        )
    except (DomainError, ValidationFailed) as exc:
        return to_graphql_error(exc)
    return await _maybe_await(success(result))


async def _maybe_await(value: Any) -> Any:
    if hasattr(value, "__await__"):
        return await value
    return value
