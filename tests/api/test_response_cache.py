"""The order response cache over real HTTP: never stale, never leaks, only for allowed fields.

Each test serves its own cached app (`create_cached_app`, fresh cache) next to the app with
the cache off, on the same database: the latter's answer is the truth a cached answer must
equal, byte for byte. Mutations go through the session's app (`gql`).
"""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from ordergraph.app import create_app
from ordergraph.models import Event, Order, Payment, PaymentTransaction
from ordergraph.models.enums import ChannelKind, StockPolicy, TransactionKind
from ordergraph.response_cache import ResponseCache, create_cached_app
from tests import factories as f
from tests.conftest import GraphQLClient
from tests.orders_helpers import ALLOCATE, CANCEL, CAPTURE, HOLD, ORDER_BY_NUMBER, PLACE, RELEASE, REFUND, order_input, settle_outbox, world
from tests.servers import serve

BY_NUMBER = ORDER_BY_NUMBER  # every allowed Order field the order tests read, payments and timeline included
WITH_TRANSACTIONS = "query T($n: String!) { order(number: $n) { number payments { transactions { kind amount success } } } }"
BY_ID = "query($id: ID!) { order(id: $id) { number status lines { sku allocations { warehouseCode } } } }"
TRACK = "query($n: String!, $e: String!) { trackOrder(number: $n, email: $e) { number status updatedAt email lines { sku quantity } } }"
WITH_VARIANT = "query($n: String!) { order(number: $n) { number lines { variant { sku } } } }"
TWO_ROOTS = "query($n: String!) { order(number: $n) { number } warehouses { code } }"


def _count(result: str) -> float:
    return REGISTRY.get_sample_value("ordergraph_response_cache_requests_total", {"result": result}) or 0.0


class Counts:
    def __init__(self) -> None:
        self.start = {r: _count(r) for r in ("hit", "miss", "bypass")}

    def __call__(self) -> dict[str, int]:
        return {r: int(_count(r) - v) for r, v in self.start.items()}


@pytest.fixture
async def cached(db):
    """A client of a fresh cached app; `.truth`: a client of the app with the cache off."""
    app = create_cached_app(db, manage_db=False)
    assert isinstance(app.app, ResponseCache)
    plain = create_app(db.model_copy(update={"response_cache_enabled": False}), manage_db=False)
    async with serve(app, lifespan="off") as url, serve(plain, lifespan="off") as plain_url:
        client, client.truth = GraphQLClient(url), GraphQLClient(plain_url)
        try:
            yield client
        finally:
            await client.http.aclose()
            await client.truth.http.aclose()


async def _place(gql, key, lines=(("SKU-A", 2),), **kw) -> dict:
    r = (await gql(PLACE, {"input": order_input(list(lines), **kw)}, auth=key))["placeOrder"]
    assert r["__typename"] == "OrderPayload", r
    return r["order"]


async def _same_as_app(cached, query, variables, auth):
    """The cached app's answer, asserted byte-identical to the app's without the cache."""
    got = await cached.raw(query, variables, auth=auth)
    truth = await cached.truth.raw(query, variables, auth=auth)
    assert got.status_code == truth.status_code == 200
    assert got.content == truth.content
    return got.json()


async def test_a_hit_answers_the_bytes_of_a_miss_and_skips_the_app(cached, gql, db):
    await world()
    key = await f.staff_key()
    o = await _place(gql, key)
    counts = Counts()
    miss = await cached.raw(BY_NUMBER, {"n": o["number"]}, auth=key)
    hit = await cached.raw(BY_NUMBER, {"n": o["number"]}, auth=key)
    assert counts() == {"hit": 1, "miss": 1, "bypass": 0}
    assert miss.status_code == hit.status_code == 200
    assert hit.content == miss.content
    assert hit.headers["content-type"] == miss.headers["content-type"] == "application/json"
    assert hit.headers["content-length"] == miss.headers["content-length"]
    assert hit.headers["x-request-id"] != miss.headers["x-request-id"]  # a hit is still a request of its own
    again = await cached.raw(BY_NUMBER, {"n": o["number"]}, auth=key, headers={"X-Request-ID": "req-1"})
    assert again.headers.get_list("x-request-id") == ["req-1"] and again.content == miss.content
    assert {k for k in hit.headers if k not in ("date", "x-request-id")} == {"content-length", "content-type", "server"}
    assert miss.content == (await cached.truth.raw(BY_NUMBER, {"n": o["number"]}, auth=key)).content
    assert miss.json()["data"]["order"]["number"] == o["number"]
    # by global id as well, and the same order for a customer token
    by_id = [await cached.raw(BY_ID, {"id": o["id"]}, auth=key) for _ in range(2)]
    assert by_id[0].content == by_id[1].content and by_id[0].json()["data"]["order"]["number"] == o["number"]
    ada = f.customer_token("ada@example.com")
    for_ada = [await cached.raw(BY_NUMBER, {"n": o["number"]}, auth=ada) for _ in range(2)]
    assert for_ada[0].content == for_ada[1].content == miss.content
    assert counts() == {"hit": 4, "miss": 3, "bypass": 0}


async def test_a_hit_costs_one_statement(cached, gql, db):
    await world()
    key = await f.staff_key()
    o = await _place(gql, key)
    await cached.raw(BY_NUMBER, {"n": o["number"]}, auth=key)
    await settle_outbox()
    logger = logging.getLogger("tortoise.db_client")
    seen: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: seen.append(record.getMessage())
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        counts = Counts()
        await cached.raw(BY_NUMBER, {"n": o["number"]}, auth=key)
        assert counts()["hit"] == 1
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    assert len(seen) == 1, seen
    assert "count(*) FROM events" in seen[0]


async def test_every_change_to_the_order_shows_in_the_next_request(cached, gql, db):
    w = await world(stock_policy=StockPolicy.ACCEPT)
    key = await f.staff_key()
    o = await _place(gql, key, [("SKU-A", 2), ("SKU-C", 3)])  # SKU-C: 2 in stock, 1 backordered
    assert o["status"] == "PARTIALLY_ALLOCATED"
    n = {"n": o["number"]}

    async def warm() -> bytes:
        first = await _same_as_app(cached, BY_NUMBER, n, key)
        counts = Counts()
        again = await cached.raw(BY_NUMBER, n, auth=key)
        assert again.json() == first and counts()["hit"] == 1
        return again.content

    async def changed(before: bytes) -> dict:
        counts = Counts()
        after = await _same_as_app(cached, BY_NUMBER, n, key)
        assert counts() == {"hit": 0, "miss": 1, "bypass": 0}
        assert (await cached.raw(BY_NUMBER, n, auth=key)).content != before
        return after["data"]["order"]

    before = await warm()
    assert (await gql(HOLD, {"id": o["id"], "reason": "FRAUD_REVIEW"}, auth=key))["placeHold"]["__typename"] == "OrderPayload"
    got = await changed(before)
    assert got["onHold"] and got["holds"] == [{"reason": "FRAUD_REVIEW", "active": True}]

    before = await warm()
    await gql(RELEASE, {"id": o["id"], "reason": "FRAUD_REVIEW"}, auth=key)
    assert not (await changed(before))["onHold"]

    before = await warm()
    from ordergraph.models import InventoryLevel
    from ordergraph.models.enums import MovementKind
    from ordergraph.workflows.stock import move

    level = await InventoryLevel.get(warehouse=w["west"], variant=w["c"])
    await move(level.id, MovementKind.RECEIPT, actor="test", d_on_hand=1)
    r = (await gql(ALLOCATE, {"id": o["id"]}, auth=key))["allocateOrder"]
    assert r["__typename"] == "OrderPayload", r
    got = await changed(before)
    assert got["status"] == "ALLOCATED" and got["lines"][1]["allocatedQuantity"] == 3

    before = await warm()
    r = (await gql(CAPTURE, {"id": o["id"], "amount": "5.00"}, auth=key))["capturePayment"]
    assert r["__typename"] == "OrderPayload", r
    got = await changed(before)
    assert got["payments"][0]["status"] == "PARTIALLY_CAPTURED" and got["payments"][0]["captured"] == {"amount": "5.00"}

    before = await warm()
    await gql(REFUND, {"id": o["id"], "amount": "1.00"}, auth=key)
    assert (await changed(before))["payments"][0]["refunded"] == {"amount": "1.00"}

    before = await warm()
    r = (await gql(CANCEL, {"id": o["id"], "reason": "changed mind"}, auth=key))["cancelOrder"]
    assert r["__typename"] == "OrderPayload", r
    got = await changed(before)
    assert got["status"] == "CANCELLED"
    assert {a["status"] for ln in got["lines"] for a in ln["allocations"]} == {"RELEASED"}


async def test_a_payment_transaction_without_an_event_is_seen(cached, gql, db):
    """The gateway-unreachable path records a transaction and no order event: documents that
    select transactions are validated by the transaction count too."""
    await world()
    key = await f.staff_key()
    o = await _place(gql, key)
    n = {"n": o["number"]}
    await cached.raw(WITH_TRANSACTIONS, n, auth=key)
    counts = Counts()
    assert (await cached.raw(WITH_TRANSACTIONS, n, auth=key)).json()["data"]["order"]["payments"][0]["transactions"] == [
        {"kind": "AUTHORIZE", "amount": "20.00", "success": True}]
    assert counts()["hit"] == 1
    events = await Event.filter(order_id=(await Order.get(number=o["number"])).id).count()
    payment = await Payment.get(order__number=o["number"])
    await PaymentTransaction.create(payment=payment, kind=TransactionKind.CAPTURE, amount=Decimal("20.00"), success=False,
                                    error_code="gateway_unavailable")  # what payments._gateway_call writes
    assert await Event.filter(order_id=payment.order_id).count() == events
    got = await _same_as_app(cached, WITH_TRANSACTIONS, n, key)
    assert got["data"]["order"]["payments"][0]["transactions"][-1] == {"kind": "CAPTURE", "amount": "20.00", "success": False}
    assert counts() == {"hit": 1, "miss": 1, "bypass": 0}


async def test_a_viewer_who_may_not_read_the_order_never_gets_the_cached_answer(cached, gql, db):
    w = await world()
    mkt = await f.channel("MKT", [w["east"], w["west"]], kind=ChannelKind.MARKETPLACE)
    staff = await f.staff_key()
    web_partner = await f.partner_key("web", [w["channel"]])
    mkt_partner = await f.partner_key("mkt", [mkt])
    no_read = await f.staff_key(["orders:write"])
    o = await _place(gql, staff, email="ada@example.com")
    n = {"n": o["number"]}
    # cached for staff, for the channel's partner and for the owner
    ada = f.customer_token("ada@example.com")
    for auth in (staff, web_partner, ada):
        for _ in range(2):
            assert (await cached(BY_NUMBER, n, auth=auth))["order"]["number"] == o["number"]
    counts = Counts()
    for auth in (mkt_partner, f.customer_token("bob@example.com"), no_read, None):
        assert (await _same_as_app(cached, BY_NUMBER, n, auth)) == {"data": {"order": None}}
        assert (await _same_as_app(cached, BY_ID, {"id": o["id"]}, auth)) == {"data": {"order": None}}
    assert counts() == {"hit": 0, "miss": 0, "bypass": 8}
    bad = await cached.raw(BY_NUMBER, n, auth="og_nope_nope")
    assert bad.status_code == 401 and "order" not in bad.text
    # trackOrder: the number with the right e-mail (any case), never with another
    track = {"n": o["number"], "e": "ADA@example.com"}
    first = await _same_as_app(cached, TRACK, track, None)
    assert first["data"]["trackOrder"]["email"] == "ada@example.com"
    counts = Counts()
    assert (await cached.raw(TRACK, track, auth=None)).json() == first
    assert counts()["hit"] == 1
    wrong = {"n": o["number"], "e": "bob@example.com"}
    assert (await _same_as_app(cached, TRACK, wrong, None)) == {"data": {"trackOrder": None}}
    assert (await _same_as_app(cached, TRACK, wrong, mkt_partner)) == {"data": {"trackOrder": None}}
    assert counts() == {"hit": 1, "miss": 0, "bypass": 2}


async def test_a_partner_losing_its_channel_loses_the_cached_answer(cached, gql, db):
    from ordergraph.auth.keys import forget_cached_viewers
    from ordergraph.models import Partner

    w = await world()
    staff = await f.staff_key()
    partner = await f.partner_key("web", [w["channel"]])
    o = await _place(gql, staff)
    for _ in range(2):
        assert (await cached(BY_NUMBER, {"n": o["number"]}, auth=partner))["order"] is not None
    await Partner.filter(code="web").update(channel_ids=[])
    forget_cached_viewers()
    counts = Counts()
    assert (await cached(BY_NUMBER, {"n": o["number"]}, auth=partner))["order"] is None
    assert counts() == {"hit": 0, "miss": 0, "bypass": 1}


async def test_documents_off_the_allowlist_are_never_cached(cached, gql, db):
    await world()
    key = await f.staff_key()
    o = await _place(gql, key)
    n = {"n": o["number"]}
    counts = Counts()
    off_list = (
        WITH_VARIANT,  # the catalog changes without an order event
        TWO_ROOTS,
        "query($n: String!) { order(number: $n) { number } __schema { queryType { name } } }",
        "query($n: String!) { order(number: $n) { number ... on Node { ... on Order { lines { variant { sku } } } } } }",
        "query($n: String!) { order(number: $n) { number } } query Other { __typename }",
    )
    for query in off_list:
        for _ in range(2):
            await cached.raw(query, n, auth=key)
    # an invalid document and a mutation go to the app untouched
    assert "errors" in await _same_as_app(cached, "query($n: String!) { order(number: $n) { nope } }", n, key)
    r = await cached(HOLD, {"id": o["id"], "reason": "MANUAL"}, auth=key)
    assert r["placeHold"]["__typename"] == "OrderPayload"
    assert counts() == {"hit": 0, "miss": 0, "bypass": 12}
    # allowed: __typename and aliases anywhere, fragments on allowed types, @include/@skip
    ok = """query One($n: String!, $t: Boolean!) { o: order(number: $n) { __typename ...F
              lines { sku @include(if: $t) allocations { q: quantity } } } }
            fragment F on Order { number holds { active } }"""
    for t in (True, True, False, False):
        await _same_as_app(cached, ok, n | {"t": t}, key)
    assert counts() == {"hit": 2, "miss": 2, "bypass": 12}


@pytest.mark.postgres_only
async def test_two_processes_sharing_the_database(db, tmp_path):
    """A cache in another process (its own uvicorn, the cached app) is never stale after a
    mutation made through this process: the check is in the database, not in memory."""
    import asyncio
    import os
    import subprocess
    import sys

    import httpx

    from tests.servers import free_port

    await world()
    key = await f.staff_key()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db.database_url, "RUN_JOBS": "false", "LOG_LEVEL": "WARNING",
           "DB_POOL_SIZE": "4", "REDIS_URL": ""}
    env.pop("REDIS_URL")
    log = open(tmp_path / "a.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "ordergraph.response_cache:create_cached_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        a = GraphQLClient(f"http://127.0.0.1:{port}")
        for _ in range(300):
            try:
                if (await a.http.get("/readyz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "a.log").read_text()
            await asyncio.sleep(0.05)
        async with serve(create_cached_app(db, manage_db=False), lifespan="off") as url:
            b = GraphQLClient(url)
            o = await _place(b, key)
            n = {"n": o["number"]}

            async def hits() -> float:
                text = (await a.http.get("/metrics")).text
                line = [x for x in text.splitlines() if x.startswith('ordergraph_response_cache_requests_total{result="hit"}')]
                return float(line[0].split()[-1]) if line else 0.0

            first = await a.raw(BY_NUMBER, n, auth=key)
            h0 = await hits()
            assert (await a.raw(BY_NUMBER, n, auth=key)).content == first.content
            assert await hits() == h0 + 1
            r = (await b(HOLD, {"id": o["id"], "reason": "ADDRESS"}, auth=key))["placeHold"]
            assert r["__typename"] == "OrderPayload"
            after = await a.raw(BY_NUMBER, n, auth=key)
            assert after.json()["data"]["order"]["holds"] == [{"reason": "ADDRESS", "active": True}]
            assert after.content == (await b.raw(BY_NUMBER, n, auth=key)).content
            assert await hits() == h0 + 1
            r = (await b(CANCEL, {"id": o["id"], "reason": "x"}, auth=key))["cancelOrder"]
            assert r["__typename"] == "OrderPayload"
            assert (await a(BY_NUMBER, n, auth=key))["order"]["status"] == "CANCELLED"
            await b.http.aclose()
        await a.http.aclose()
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


async def test_bounded_and_can_be_turned_off(db, monkeypatch):
    from types import SimpleNamespace

    await world()
    key = await f.staff_key()
    app = create_app(db, manage_db=False)
    routes = app.app.app if isinstance(app.app, ResponseCache) else app.app  # the cache may be wired in already
    app.app = cache = ResponseCache(routes, create_cached_app(db, manage_db=False).app.schema,
                                    SimpleNamespace(response_cache_max_entries=2))
    async with serve(app, lifespan="off") as url:
        client = GraphQLClient(url)
        numbers = [(await _place(client, key, [("SKU-A", 1)]))["number"] for _ in range(3)]
        for number in numbers:
            await client.raw(BY_NUMBER, {"n": number}, auth=key)
        assert len(cache.slots) == 2
        counts = Counts()
        await client.raw(BY_NUMBER, {"n": numbers[0]}, auth=key)  # evicted: computed again
        await client.raw(BY_NUMBER, {"n": numbers[0]}, auth=key)
        assert counts() == {"hit": 1, "miss": 1, "bypass": 0}
        metrics = (await client.http.get("/metrics")).text
        assert "ordergraph_response_cache_requests_total" in metrics and "ordergraph_response_cache_entries 2.0" in metrics
        await client.http.aclose()
    off = db.model_copy(update={"response_cache_enabled": False})
    assert not isinstance(create_cached_app(off, manage_db=False).app, ResponseCache)
    monkeypatch.setenv("RESPONSE_CACHE_ENABLED", "false")  # the environment decides, as in production
    from ordergraph.config import Settings  # noqa: PLC0415

    assert not isinstance(create_cached_app(Settings(database_url=db.database_url), manage_db=False).app, ResponseCache)


def test_every_allowed_field_exists_in_the_schema():
    from ordergraph.response_cache import ALLOWED
    from ordergraph.schema.root import build_schema

    schema = build_schema()._schema
    for type_name, names in ALLOWED.items():
        assert type_name in schema.type_map, type_name
        assert names <= set(schema.type_map[type_name].fields), (type_name, names - set(schema.type_map[type_name].fields))
