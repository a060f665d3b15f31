"""The SQL statement count of a page of orders does not grow with the page size."""

import logging

from tests import factories as f
from tests.orders_helpers import PLACE, order_input, world

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


async def _count(gql, key, n):
    logger = logging.getLogger("tortoise.db_client")
    counter = StatementCounter()
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    try:
        data = await gql(PAGE, {"n": n}, auth=key)
    finally:
        logger.removeHandler(counter)
        logger.setLevel(old)
    return len(data["orders"]["edges"]), counter.count


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
