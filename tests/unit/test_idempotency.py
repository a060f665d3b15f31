"""Idempotency records: replay, key reuse, crash takeover, failures free the key."""

from datetime import UTC, datetime, timedelta

import pytest

from ordergraph.models import IdempotencyRecord, Product
from ordergraph.workflows.errors import DomainError, ErrorCode, ValidationFailed
from ordergraph.workflows.idempotency import request_hash, run_idempotent


async def _create(name: str):
    return await Product.create(name=name)


async def test_replays_the_first_success_with_the_same_object(db):
    first = await run_idempotent("staff:a", "op", "k", {"n": 1}, lambda: _create("one"))
    again = await run_idempotent("staff:a", "op", "k", {"n": 1}, lambda: _create("two"))
    assert again.id == first.id
    assert await Product.all().count() == 1


async def test_keys_are_scoped_by_principal_and_operation(db):
    await run_idempotent("staff:a", "op", "k", {}, lambda: _create("a"))
    await run_idempotent("staff:b", "op", "k", {}, lambda: _create("b"))
    await run_idempotent("staff:a", "other", "k", {}, lambda: _create("c"))
    assert await Product.all().count() == 3


async def test_same_key_other_input_is_refused(db):
    await run_idempotent("staff:a", "op", "k", {"n": 1}, lambda: _create("one"))
    with pytest.raises(DomainError) as err:
        await run_idempotent("staff:a", "op", "k", {"n": 2}, lambda: _create("two"))
    assert err.value.code is ErrorCode.IDEMPOTENCY_KEY_REUSED
    assert await Product.all().count() == 1


async def test_a_refusal_is_replayed_too(db):
    async def refuse():
        raise ValidationFailed([DomainError(ErrorCode.UNKNOWN_SKU, "no", ["lines", "0"])])

    for _ in range(2):
        with pytest.raises(ValidationFailed) as err:
            await run_idempotent("staff:a", "op", "k", {}, refuse)
        assert [(p.code, p.field) for p in err.value.problems] == [(ErrorCode.UNKNOWN_SKU, ["lines", "0"])]
    assert await IdempotencyRecord.filter(completed=True).count() == 1


async def test_an_unexpected_failure_frees_the_key(db):
    async def boom():
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        await run_idempotent("staff:a", "op", "k", {}, boom)
    assert await IdempotencyRecord.all().count() == 0
    product = await run_idempotent("staff:a", "op", "k", {}, lambda: _create("ok"))
    assert product.name == "ok"


async def test_a_claim_left_by_a_crashed_process_is_taken_over_when_stale(db):
    digest = request_hash({})
    stale = await IdempotencyRecord.create(principal="staff:a", operation="op", key="k", request_hash=digest)
    await IdempotencyRecord.filter(id=stale.id).update(created_at=datetime.now(UTC) - timedelta(minutes=10))
    product = await run_idempotent("staff:a", "op", "k", {}, lambda: _create("after crash"))
    assert product.name == "after crash"
    assert await IdempotencyRecord.filter(completed=True).count() == 1


async def test_a_fresh_claim_in_progress_makes_the_caller_wait_then_gives_up(db):
    digest = request_hash({})
    await IdempotencyRecord.create(principal="staff:a", operation="op", key="k", request_hash=digest)
    with pytest.raises(DomainError) as err:
        await run_idempotent("staff:a", "op", "k", {}, lambda: _create("x"), wait_seconds=0.2)
    assert err.value.code is ErrorCode.IDEMPOTENCY_IN_PROGRESS
    assert await Product.all().count() == 0
