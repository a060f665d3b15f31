"""Idempotency on request: a key replays the first result of (principal, operation, key).

Claim first, then act: the claim row is committed before the mutation runs, so any number
of concurrent calls with one key make one effect; the others wait for the first result.
A claim left behind by a crashed process is taken over once it is older than `stale_after`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise import Tortoise
from tortoise.exceptions import IntegrityError
from tortoise.models import Model

from ordergraph.models import IdempotencyRecord
from ordergraph.workflows.errors import DomainError, ErrorCode, TransitionError, ValidationFailed
from ordergraph.workflows.events import jsonable

Outcome = Any  # a model, a tuple of models, or None


def request_hash(payload: Any) -> str:
    blob = json.dumps(jsonable(payload), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _encode_error(exc: DomainError | ValidationFailed) -> dict:
    if isinstance(exc, ValidationFailed):
        return {"validation": [_encode_error(p)["domain"] for p in exc.problems]}
    body = {
        "code": exc.code.value,
        "message": exc.message,
        "field": exc.field,
        "details": jsonable(exc.details),
    }
    if isinstance(exc, TransitionError):
        body["transition"] = {"current": exc.current_state, "allowed": exc.allowed_actions}
    return {"domain": body}


def _decode_domain(body: dict) -> DomainError:
    code = ErrorCode(body["code"])
    if "transition" in body:
        t = body["transition"]
        return TransitionError(
            code, body["message"], body["field"], body["details"], t["current"], t["allowed"]
        )
    return DomainError(code, body["message"], body["field"], body["details"])


def _decode_error(body: dict) -> DomainError | ValidationFailed:
    if "validation" in body:
        return ValidationFailed([_decode_domain(p) for p in body["validation"]])
    return _decode_domain(body["domain"])


def _encode_outcome(result: Outcome) -> Any:
    if result is None:
        return None
    if isinstance(result, Model):
        return {"model": type(result).__name__, "id": result.pk}
    if isinstance(result, tuple | list):
        return {"many": [_encode_outcome(r) for r in result]}
    raise TypeError(f"cannot record {type(result).__name__} as an idempotent outcome")


async def _decode_outcome(body: Any) -> Outcome:
    if body is None:
        return None
    if "many" in body:
        return tuple([await _decode_outcome(b) for b in body["many"]])
    model = Tortoise.apps["ordergraph"][body["model"]]
    return await model.get(pk=body["id"])


async def run_idempotent(
    principal: str,
    operation: str,
    key: str | None,
    payload: Any,
    action: Callable[[], Awaitable[Outcome]],
    *,
    wait_seconds: float = 10.0,
    stale_after: timedelta = timedelta(minutes=5),
) -> Outcome:
    """Run `action` once per key; raises the workflow's DomainError/ValidationFailed as is."""
    if not key:
        return await action()
    if len(key) > 200:
        raise DomainError(ErrorCode.INVALID_VALUE, "idempotencyKey is longer than 200", ["idempotencyKey"])
    digest = request_hash(payload)
    record = await _claim(principal, operation, key, digest, wait_seconds, stale_after)
    if record.completed:
        return await _replay(record)
    try:
        result = await action()
    except (DomainError, ValidationFailed) as exc:
        record.response = {"error": _encode_error(exc)}
        record.completed = True
        await record.save(update_fields=["response", "completed"])
        raise
    except BaseException:
        # Unexpected failure: free the key so the client can retry.
        await IdempotencyRecord.filter(id=record.id, completed=False).delete()
        raise
    record.response = {"ok": _encode_outcome(result)}
    record.completed = True
    await record.save(update_fields=["response", "completed"])
    return result


async def _claim(
    principal: str,
    operation: str,
    key: str,
    digest: str,
    wait_seconds: float,
    stale_after: timedelta,
) -> IdempotencyRecord:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    delay = 0.01
    while True:
        try:
            return await IdempotencyRecord.create(
                principal=principal, operation=operation, key=key, request_hash=digest
            )
        except IntegrityError:
            pass
        existing = await IdempotencyRecord.get_or_none(
            principal=principal, operation=operation, key=key
        )
        if existing is None:
            continue  # the holder gave up its claim in between: try again
        if existing.request_hash != digest:
            raise DomainError(
                ErrorCode.IDEMPOTENCY_KEY_REUSED,
                f"idempotency key {key!r} was already used for {operation} with a different input",
                ["idempotencyKey"],
            )
        if existing.completed:
            return existing
        if datetime.now(UTC) - existing.created_at > stale_after:
            # The first caller died mid-flight: take over its claim.
            taken = await IdempotencyRecord.filter(id=existing.id, completed=False).delete()
            if taken:
                continue
        if loop.time() >= deadline:
            raise DomainError(
                ErrorCode.IDEMPOTENCY_IN_PROGRESS,
                f"a call with idempotency key {key!r} is still in progress; retry later",
                ["idempotencyKey"],
            )
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.2)


async def _replay(record: IdempotencyRecord) -> Outcome:
    response = record.response or {}
    if "error" in response:
        raise _decode_error(response["error"])
    return await _decode_outcome(response.get("ok"))
