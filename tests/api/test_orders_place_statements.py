"""What one placeOrder sends to the database."""

import logging

import pytest

from tests import factories as f
from tests.orders_helpers import PLACE, order_input, settle_outbox, world


class _Log(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.sql: list[str] = []

    def emit(self, record):
        self.sql.append(str(record.args[0] if record.args else record.msg))


async def test_place_order_takes_eighteen_statements_four_on_postgres_and_writes_its_events_in_one_or_two(gql, db, backend):
    await world()
    key = await f.staff_key()
    first = await gql(PLACE, {"input": order_input([("SKU-A", 1)])}, auth=key)  # the key is remembered after
    assert first["placeOrder"]["__typename"] == "OrderPayload"
    await settle_outbox()
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
    # SQLite: before the transaction the channel and the variants, then the candidate
    # warehouses; in it the order, its lines, the payment, its transaction, the levels read
    # without locks, the allocations, the lines' and the order's updates, its fulfillment
    # orders, their lines and the allocations' link to them; locked: the levels, their UPDATE,
    # the ledger, every event in one INSERT.
    # PostgreSQL (data-modifying CTEs): one read before the transaction (channel, variants,
    # warehouses, their levels); in it one statement for the order, its lines, the payment and
    # its transaction, one for the fulfillment orders, their lines, the allocations (linked to
    # them as they are written) and the lines' and the order's updates; then one that locks the
    # levels taken from, changes them if the plan still fits, and writes the ledger and the
    # remaining events: the locks are held from it to the COMMIT only.
    if backend == "postgres":
        expected = ["WITH CH AS", "WITH _O AS", "WITH F AS", "WITH _LK AS"]
    else:
        expected = [
            "SELECT * FROM", "SELECT * FROM", "SELECT W.* FROM",
            "INSERT INTO ORDERS", "INSERT INTO ORDER_LINES", "INSERT INTO PAYMENTS", "INSERT INTO PAYMENT_TRANSACTIONS",
            "SELECT * FROM", "INSERT INTO ALLOCATIONS", "WITH V(LID, A,", "UPDATE ORDERS SET",
            "INSERT INTO FULFILLMENT_ORDERS", "INSERT INTO FULFILLMENT_LINES", "UPDATE ALLOCATIONS SET",
            "SELECT * FROM", "WITH V(LID, DH,", "INSERT INTO STOCK_MOVEMENTS", "INSERT INTO EVENTS",
        ]
    assert kinds[: len(expected)] == expected, kinds
    # SQLite: every event in one INSERT at the end. PostgreSQL: the order's events recorded before
    # the fulfillment orders' statement go in it, the rest (fulfillment orders', stock) in the last.
    with_events = [k for k, s in zip(kinds, log.sql, strict=True) if "INSERT INTO events" in s]
    assert with_events == (["WITH F AS", "WITH _LK AS"] if backend == "postgres" else ["INSERT INTO EVENTS"])
    events = [len(expected) - 1]
    # After it only reads for the answer's fields, and the publisher marking the events published.
    writes = [k for k in kinds[events[0] + 1:] if not k.startswith("SELECT")]
    assert writes in ([], ['UPDATE "EVENTS" SET']), kinds


async def test_on_postgres_orders_of_the_same_shape_send_the_same_statement_texts(gql, db, backend):
    """asyncpg prepares each new statement text first (one more round trip, some of them under
    the inventory row locks): values go in parameters, never in the text."""
    if backend != "postgres":
        pytest.skip("PostgreSQL-only test (run with --backend postgres)")
    await world()
    key = await f.staff_key()
    await gql(PLACE, {"input": order_input([("SKU-A", 1)])}, auth=key)
    logger = logging.getLogger("tortoise.db_client")
    texts = []
    for lines in ([("SKU-A", 1), ("SKU-B", 2)], [("SKU-B", 3), ("SKU-A", 1)]):  # all from EAST, no split
        await settle_outbox()
        log, level = _Log(), logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(log)
        try:
            r = await gql(PLACE, {"input": order_input(lines, email=f"x{len(texts)}@example.com")}, auth=key)
        finally:
            logger.removeHandler(log)
            logger.setLevel(level)
        assert r["placeOrder"]["order"]["status"] == "ALLOCATED"
        texts.append([s for s in log.sql if "INSERT INTO events" in s or "FOR UPDATE" in s or s.lstrip().startswith("WITH")])
    assert len(texts[0]) >= 4 and texts[0] == texts[1], [a for a, b in zip(*texts) if a != b]
