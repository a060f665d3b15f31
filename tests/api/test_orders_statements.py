"""The SQL statement count of a page of orders does not grow with the page size."""

import logging

import pytest

from ordergraph.app import create_app
from ordergraph.response_cache import create_cached_app
from tests import factories as f
from tests.conftest import GraphQLClient
from tests.orders_helpers import PLACE, order_input, settle_outbox, world
from tests.servers import serve

PAGE = """query($n: Int!) { orders(first: $n) { totalCount edges { node {
  number status channelCode onHold availableActions
  lines { sku allocations { warehouseCode quantity } }
  payments { status transactions { kind amount } }
  holds { reason }
  timeline { type sequence }
} } } }"""


class StatementCounter(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record):
        self.count += 1


async def _statements(gql, key, query, variables):
    await settle_outbox()
    logger = logging.getLogger("tortoise.db_client")
    counter = StatementCounter()
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    try:
        data = await gql(query, variables, auth=key)
    finally:
        logger.removeHandler(counter)
        logger.setLevel(old)
    return data, counter.count


async def _count(gql, key, n):
    data, count = await _statements(gql, key, PAGE, {"n": n})
    return len(data["orders"]["edges"]), count


async def test_statement_count_is_constant_in_page_size(gql, db):
    await world()
    key = await f.staff_key()
    for i in range(12):
        sku = "SKU-A" if i % 2 else "SKU-B"
        token = "tok_decline" if i % 5 == 0 else "tok_approve"
        r = await gql(PLACE, {"input": order_input([(sku, 1)], token=token)}, auth=key)
        assert r["placeOrder"]["__typename"] == "OrderPayload"
    small_rows, small = await _count(gql, key, 2)
    big_rows, big = await _count(gql, key, 12)
    assert (small_rows, big_rows) == (2, 12)
    assert big == small, (small, big)
    assert big <= 12  # key lookup + count + page + one query per related kind


ONE = """query($n: String!) { order(number: $n) {
  id number status channelCode customer { email name } total { amount currency } placedAt
  lines { sku quantity allocatedQuantity allocations { warehouseCode quantity status } }
  timeline { sequence type actor data createdAt }
} }"""


@pytest.fixture
async def uncached(db, monkeypatch):
    """The app with the order response cache off, whatever the default: its statements."""
    monkeypatch.setenv("RESPONSE_CACHE_ENABLED", "false")
    settings = db.model_copy(update={"response_cache_enabled": False})
    async with serve(create_app(settings, manage_db=False), lifespan="off") as url:
        client = GraphQLClient(url)
        yield client
        await client.http.aclose()


@pytest.fixture
async def cached(db):
    async with serve(create_cached_app(db, manage_db=False), lifespan="off") as url:
        client = GraphQLClient(url)
        yield client
        await client.http.aclose()


async def _one_order(gql) -> tuple[str, str]:
    await world()
    key = await f.staff_key()
    r = await gql(PLACE, {"input": order_input([("SKU-A", 5), ("SKU-B", 1)])}, auth=key)
    return key, r["placeOrder"]["order"]["number"]


async def test_one_order_with_lines_allocations_and_timeline_takes_four_statements(uncached, gql, db):
    key, number = await _one_order(gql)
    await uncached(ONE, {"n": number}, auth=key)  # the key is remembered by this process
    data, count = await _statements(uncached, key, ONE, {"n": number})
    order = data["order"]
    assert order["channelCode"] == "WEB"
    assert [[(a["warehouseCode"], a["quantity"]) for a in ln["allocations"]] for ln in order["lines"]] == [
        [("EAST", 3), ("WEST", 2)], [("EAST", 1)]]
    # The order with its channel code, its lines, its allocations with their warehouse codes,
    # its events.
    assert count == 4, count


async def test_with_the_response_cache_a_miss_takes_one_more_statement_and_a_hit_one(cached, gql, db):
    key, number = await _one_order(gql)
    await cached(ONE, {"n": "SO-999999"}, auth=key)  # the key is remembered by this process
    miss, count = await _statements(cached, key, ONE, {"n": number})
    assert count == 5, count  # the order's version and the viewer's right, then the four reads
    hit, count = await _statements(cached, key, ONE, {"n": number})
    assert hit == miss
    assert count == 1, count
