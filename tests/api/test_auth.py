"""Credentials: API keys, customer tokens, and how bad ones are refused."""

from datetime import timedelta

import jwt

from ordergraph.auth import keys
from ordergraph.auth.tokens import issue_customer_token
from ordergraph.models import ApiKey
from tests import factories as f

Q = "{ orders { totalCount } }"


async def test_valid_staff_key_and_customer_token_work(gql, db):
    key = await f.staff_key()
    assert (await gql(Q, auth=key))["orders"]["totalCount"] == 0
    assert (await gql(Q, auth=f.customer_token("a@example.com")))["orders"]["totalCount"] == 0


async def test_x_api_key_header_works(gql, db):
    key = await f.staff_key()
    resp = await gql.http.post("/graphql", json={"query": Q}, headers={"X-API-Key": key})
    assert resp.status_code == 200 and resp.json()["data"]["orders"]["totalCount"] == 0


async def test_revoked_key_is_refused(gql, db):
    key = await f.staff_key()
    await ApiKey.all().update(revoked=True)
    assert (await gql.raw(Q, auth=key)).status_code == 401


async def test_a_key_revoked_in_the_database_stops_working_within_the_cache_ttl(gql, db, monkeypatch):
    """Another process (`ordergraph api-key revoke`) revokes in the database: a running API
    process that remembered the key refuses it at the latest VIEWER_TTL_SECONDS later."""
    clock = [1000.0]
    monkeypatch.setattr(keys, "_now", lambda: clock[0])
    key = await f.staff_key()
    assert (await gql.raw(Q, auth=key)).status_code == 200
    await ApiKey.all().update(revoked=True)
    clock[0] += keys.VIEWER_TTL_SECONDS - 1
    assert (await gql.raw(Q, auth=key)).status_code == 200  # still remembered
    clock[0] += 1
    assert (await gql.raw(Q, auth=key)).status_code == 401
    clock[0] += 1
    assert (await gql.raw(Q, auth=key)).status_code == 401  # a refusal is never remembered as valid


async def test_forgetting_cached_viewers_makes_a_revocation_immediate(gql, db):
    key = await f.staff_key()
    assert (await gql.raw(Q, auth=key)).status_code == 200
    await ApiKey.all().update(revoked=True)
    keys.forget_cached_viewers()
    assert (await gql.raw(Q, auth=key)).status_code == 401


async def test_a_remembered_key_does_not_let_a_tampered_one_in(gql, db):
    key = await f.staff_key()
    assert (await gql.raw(Q, auth=key)).status_code == 200
    assert (await gql.raw(Q, auth=key[:-2] + "xx")).status_code == 401


async def test_only_the_hash_of_a_key_is_stored(db):
    key = await f.staff_key()
    row = await ApiKey.get()
    assert key not in (row.key_hash, row.prefix) and len(row.key_hash) == 64
    assert key.startswith(f"og_{row.prefix}_")


async def test_tampered_key_secret_is_refused(gql, db):
    key = await f.staff_key()
    assert (await gql.raw(Q, auth=key[:-2] + "xx")).status_code == 401


async def test_expired_wrong_audience_and_forged_tokens_are_refused(gql, db, settings):
    expired = issue_customer_token("a@example.com", ttl=timedelta(seconds=-1))
    forged = jwt.encode({"sub": "a@example.com", "aud": settings.jwt_audience, "iss": settings.jwt_issuer, "exp": 9999999999}, "wrong-secret-wrong-secret-wrong-secret", algorithm="HS256")
    wrong_aud = jwt.encode({"sub": "a@example.com", "aud": "other", "iss": settings.jwt_issuer, "exp": 9999999999}, settings.jwt_secret, algorithm="HS256")
    none_alg = jwt.encode({"sub": "a@example.com", "aud": settings.jwt_audience, "exp": 9999999999}, None, algorithm="none")
    for token in (expired, forged, wrong_aud, none_alg):
        assert (await gql.raw(Q, auth=token)).status_code == 401


async def test_malformed_authorization_header_is_refused(gql, db):
    resp = await gql.http.post("/graphql", json={"query": Q}, headers={"Authorization": "Basic abc"})
    assert resp.status_code == 401
