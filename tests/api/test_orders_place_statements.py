"""What one placeOrder sends to the database."""

import logging

from tests import factories as f
from tests.orders_helpers import PLACE, order_input, world


class _Log(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.sql: list[str] = []

    def emit(self, record):
        self.sql.append(str(record.args[0] if record.args else record.msg))


async def test_place_order_takes_eighteen_statements_eleven_on_postgres_and_writes_its_events_in_one(gql, db, backend):
    await world()
    key = await f.staff_key()
    first = await gql(PLACE, {"input": order_input([("SKU-A", 1)])}, auth=key)  # the key is remembered after
    assert first["placeOrder"]["__typename"] == "OrderPayload"
    logger = logging.getLogger("tortoise.db_client")
    log, level = _Log(), logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(log)
    try:
        r = await gql(PLACE, {"input": order_input([("SKU-A", 4), ("SKU-B", 1)])}, auth=key)
    finally:
        logger.removeHandler(log)
        logger.setLevel(level)
    assert r["placeOrder"]["order"]["status"] == "ALLOCATED"
    kinds = [" ".join(s.split()[:3]).upper() for s in log.sql]
    # Before the transaction: channel, variants, candidate warehouses. In it: the order, its
    # lines, the payment, its transaction, the levels read, the allocations, the lines' and the
    # order's updates, its fulfillment orders (one INSERT), their lines (one INSERT) and the
    # allocations' link to them; locked: the levels, their UPDATE, the ledger, every event in one INSERT.
    # On PostgreSQL the payment and its transaction are one statement, the allocations and the
    # two updates one, and the last three one (data-modifying CTEs).
    pg = backend == "postgres"
    payment = ["WITH _P AS"] if pg else ["INSERT INTO PAYMENTS", "INSERT INTO PAYMENT_TRANSACTIONS"]
    order_side = ["WITH _W0 AS"] if pg else ["INSERT INTO ALLOCATIONS", "WITH V(LID, A,", "UPDATE ORDERS SET"]
    fulfillment = ["WITH F AS"] if pg else ["INSERT INTO FULFILLMENT_ORDERS", "INSERT INTO FULFILLMENT_LINES",
                                            "UPDATE ALLOCATIONS SET"]
    locked = ["WITH _STOCK AS"] if pg else ["WITH V(LID, DH,", "INSERT INTO STOCK_MOVEMENTS", "INSERT INTO EVENTS"]
    expected = [
        "SELECT * FROM", "SELECT * FROM", "SELECT W.* FROM",
        "INSERT INTO ORDERS", "INSERT INTO ORDER_LINES", *payment,
        "SELECT * FROM", *order_side,
        *fulfillment,
        "SELECT * FROM", *locked,
    ]
    assert kinds[: len(expected)] == expected, kinds
    assert sum("INSERT INTO events" in s for s in log.sql) == 1
    events = [len(expected) - 1]
    # After it only reads for the answer's fields, and the publisher marking the events published.
    writes = [k for k in kinds[events[0] + 1:] if not k.startswith("SELECT")]
    assert writes in ([], ['UPDATE "EVENTS" SET']), kinds
