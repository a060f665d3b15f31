"""Operations surface of the real app: health, readiness, metrics, request ids, production
settings, query limits and error masking."""

from __future__ import annotations

import re

import httpx
import pytest
import strawberry
from graphql import GraphQLError
from prometheus_client.parser import text_string_to_metric_families

from ordergraph.app import create_app
from ordergraph.config import Settings
from ordergraph.schema import root


async def test_healthz(gql):
    resp = await gql.http.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


async def test_readyz_checks_database_and_redis(gql, db, backend):
    resp = await gql.http.get("/readyz")
    assert resp.status_code == 200, resp.text
    expected = {"database": "ok"}
    if backend == "postgres":
        assert db.redis_url
        expected["redis"] = "ok"
    assert resp.json() == {"status": "ok", "checks": expected}


async def test_readyz_reports_unreachable_redis(db):
    settings = db.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    async with _client(create_app(settings, manage_db=False)) as client:
        resp = await client.get("/readyz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error: ")


async def test_metrics_count_named_operations(gql, db):
    assert (await gql.raw("query OpsMetricsProbe { __typename }")).status_code == 200
    resp = await gql.http.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert '# TYPE ordergraph_graphql_requests_total counter' in resp.text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }
    probe = (("operation", "OpsMetricsProbe"), ("outcome", "ok"), ("type", "query"))
    assert samples[("ordergraph_graphql_requests_total", probe)] >= 1
    assert samples[("ordergraph_graphql_duration_seconds_count", probe[:1] + probe[2:])] >= 1


async def test_request_id_is_echoed_or_generated(gql, db):
    given = await gql.http.get("/healthz", headers={"X-Request-ID": "trace-abc-123"})
    assert given.headers["x-request-id"] == "trace-abc-123"
    generated = await gql.raw("{ __typename }")
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    other = await gql.raw("{ __typename }")
    assert other.headers["x-request-id"] != generated.headers["x-request-id"]


# --- production settings -----------------------------------------------------------------------


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


INTROSPECTION = "{ __schema { types { name } } }"


async def test_development_allows_introspection_and_graphiql(gql, db):
    data = await gql(INTROSPECTION)
    assert any(t["name"] == "Query" for t in data["__schema"]["types"])
    ide = await gql.http.get("/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 200 and "graphiql" in ide.text.lower()


async def test_production_disables_introspection_and_graphiql(db):
    settings = db.model_copy(update={"environment": "production"})
    assert isinstance(settings, Settings) and settings.production
    async with _client(create_app(settings, manage_db=False)) as client:
        resp = await client.post("/graphql", json={"query": INTROSPECTION})
        ide = await client.get("/graphql", headers={"Accept": "text/html"})
        plain = await client.post("/graphql", json={"query": "{ __typename }"})
    body = resp.json()
    assert body.get("data") is None
    assert "introspection" in body["errors"][0]["message"].lower()
    assert ide.status_code == 404 and "graphiql" not in ide.text.lower()
    assert plain.json() == {"data": {"__typename": "Query"}}


# --- query limits --------------------------------------------------------------------------------


def _refused(body: dict, words: str) -> None:
    assert body.get("data") is None, body
    messages = " ".join(e["message"] for e in body["errors"]).lower()
    assert words in messages, messages


async def test_query_depth_limit(gql, db):
    deep = 'query Deep { productVariant(sku: "X") { ' + "product { variants { " * 7 + "sku" + " } }" * 7 + " } }"
    _refused(await gql(deep, errors=True), "exceeds maximum operation depth")
    shallow = 'query Shallow { productVariant(sku: "X") { product { variants { sku } } } }'
    assert await gql(shallow) == {"productVariant": None}


async def test_alias_limit(gql, db):
    many = "{ " + " ".join(f"a{i}: __typename" for i in range(db.max_aliases + 1)) + " }"
    _refused(await gql(many, errors=True), "aliases found")
    fine = "{ " + " ".join(f"a{i}: __typename" for i in range(db.max_aliases)) + " }"
    assert len(await gql(fine)) == db.max_aliases


async def test_token_limit(gql, db):
    huge = "{ " + " ".join(["__typename"] * (db.max_tokens + 1)) + " }"
    _refused(await gql(huge, errors=True), "token")


# --- error masking -------------------------------------------------------------------------------


@strawberry.type
class FailingQuery:
    @strawberry.field
    def boom(self) -> str:
        raise RuntimeError("secret: password=hunter2 at db-7")

    @strawberry.field
    def refused(self) -> str:
        raise GraphQLError("You asked for something we refuse on purpose.")


@pytest.fixture
def failing_app(db, monkeypatch):
    """The real app and schema builder, with one more query type whose fields fail."""
    monkeypatch.setattr(root, "QUERIES", [*root.QUERIES, FailingQuery])
    return create_app(db, manage_db=False)


async def test_unexpected_exceptions_are_masked(failing_app):
    async with _client(failing_app) as client:
        resp = await client.post("/graphql", json={"query": "query Boom { boom }"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["data"] is None
    assert [e["message"] for e in body["errors"]] == ["Unexpected error."]
    assert "hunter2" not in resp.text and "RuntimeError" not in resp.text


async def test_intended_graphql_errors_pass_through(failing_app):
    async with _client(failing_app) as client:
        resp = await client.post("/graphql", json={"query": "{ refused }"})
    assert [e["message"] for e in resp.json()["errors"]] == [
        "You asked for something we refuse on purpose."
    ]


async def test_validation_is_cached_across_requests(gql, db):
    """The query-limit rules are built once, so a repeated document hits the validation cache."""
    from strawberry.extensions.validation_cache import _get_validate_cache

    cache = _get_validate_cache(1000)
    query = "query CacheProbe { products(first: 1) { totalCount } }"
    await gql(query)
    hits = cache.cache_info().hits
    await gql(query)
    await gql(query)
    assert cache.cache_info().hits == hits + 2
