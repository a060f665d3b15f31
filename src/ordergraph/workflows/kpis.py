"""KPIs over a period, computed in the database (a handful of aggregate statements whatever the
number of orders), each beside its best-in-class target.

- Order-to-ship cycle time: placing to the last package leaving, for orders placed in the period
  and shipped in full; p50 and p90 (nearest rank, lower).
- Order accuracy: shipped orders with no return line of reason WRONG_ITEM. (A mispick caught
  at the pick station is refused and never ships, so it does not count against accuracy.)
- Fulfillment SLA achievement: shipped orders whose last package left by the promised ship date
  (fulfillment order's `promised_ship_by`, from service level and cut-off).
- Exception rate by kind: exceptions raised about orders placed in the period, per order.
- Returns processing time: request to refund of the returns refunded in the period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ordergraph.db import dialect, fetch, transaction
from ordergraph.workflows.errors import DomainError, ErrorCode

TARGETS = {"cycle_p50_hours": 24.0, "accuracy": 0.995, "sla": 0.96, "returns_days": 5.0}
SHIPPED = ("SHIPPED", "DELIVERED", "COMPLETED")


@dataclass
class Kpis:
    orders: int = 0
    shipped_orders: int = 0
    cycle_p50_hours: float | None = None
    cycle_p90_hours: float | None = None
    accuracy: float | None = None
    sla_achievement: float | None = None
    exceptions: dict[str, int] = field(default_factory=dict)
    returns_refunded: int = 0
    returns_p50_hours: float | None = None
    returns_average_hours: float | None = None


def _seconds(later: str, earlier: str) -> str:
    if dialect() == "postgres":
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


class _Params:
    def __init__(self) -> None:
        self.values: list = []

    def __call__(self, value) -> str:
        self.values.append(value)
        return f"${len(self.values)}" if dialect() == "postgres" else "?"


def _scope(p: _Params, start: datetime, end: datetime, channel_id: int | None, alias: str = "o") -> str:
    sql = f"{alias}.placed_at >= {p(start)} AND {alias}.placed_at < {p(end)}"
    if channel_id is not None:
        sql += f" AND {alias}.channel_id = {p(channel_id)}"
    return sql


def _percentiles(table: str, column: str, extra: str = "") -> str:
    """p50 and p90 (lower nearest rank) and the mean of `column` over the rows of CTE `table`;
    `extra`: more select expressions over `ranked` (which keeps the table's columns)."""
    return (f"ranked AS (SELECT *, {column} AS v, ROW_NUMBER() OVER (ORDER BY {column}) AS rn, COUNT(*) OVER () AS n "
            f"FROM {table}) "
            "SELECT MAX(n) AS n, MAX(CASE WHEN rn = ((n - 1) * 5) / 10 + 1 THEN v END) AS p50, "
            f"MAX(CASE WHEN rn = ((n - 1) * 9) / 10 + 1 THEN v END) AS p90, AVG(v) AS average{extra} "
            "FROM ranked")


async def compute(start: datetime, end: datetime, channel_id: int | None = None) -> Kpis:
    if start.tzinfo is None or end.tzinfo is None:
        raise DomainError(ErrorCode.INVALID_VALUE, "from and to need a time zone", ["from"])
    if end <= start:
        raise DomainError(ErrorCode.INVALID_VALUE, "to must be after from", ["to"])
    k = Kpis()
    p = _Params()
    rows = await fetch(f"SELECT COUNT(*) AS n FROM orders o WHERE {_scope(p, start, end, channel_id)}", p.values)
    k.orders = int(rows[0]["n"])

    p = _Params()
    shipped_statuses = ", ".join(f"'{s}'" for s in SHIPPED)
    sql = (
        "WITH shipped AS (SELECT o.id, o.placed_at, MAX(f.shipped_at) AS shipped_at, MIN(f.promised_ship_by) AS promised "
        "FROM orders o JOIN fulfillment_orders f ON f.order_id = o.id AND f.status = 'SHIPPED' "
        f"WHERE {_scope(p, start, end, channel_id)} AND o.status IN ({shipped_statuses}) GROUP BY o.id, o.placed_at), "
        f"cycles AS (SELECT id, {_seconds('shipped_at', 'placed_at')} AS seconds, "
        "CASE WHEN promised IS NOT NULL AND shipped_at <= promised THEN 1 ELSE 0 END AS on_time, "
        "CASE WHEN EXISTS (SELECT 1 FROM returns r JOIN return_lines rl ON rl.rma_id = r.id "
        "WHERE r.order_id = shipped.id AND rl.reason = 'WRONG_ITEM') THEN 0 ELSE 1 END AS accurate FROM shipped), "
        + _percentiles("cycles", "seconds", ", SUM(on_time) AS on_time, SUM(accurate) AS accurate")
    )
    if dialect() == "postgres":
        # the grouping and the percentile sort spill to disk with the default 4 MB over ~100 000
        # orders (bench/kpis.py: p50 650 -> 384 ms); the setting ends with the transaction
        async with transaction():
            await fetch("SET LOCAL work_mem = '64MB'")
            row = (await fetch(sql, p.values))[0]
    else:
        row = (await fetch(sql, p.values))[0]
    k.shipped_orders = int(row["n"] or 0)
    if k.shipped_orders:
        k.cycle_p50_hours = round(float(row["p50"]) / 3600, 2)
        k.cycle_p90_hours = round(float(row["p90"]) / 3600, 2)
        k.sla_achievement = round(int(row["on_time"] or 0) / k.shipped_orders, 4)
        k.accuracy = round(int(row["accurate"] or 0) / k.shipped_orders, 4)

    p = _Params()
    rows = await fetch(
        f"SELECT e.kind AS kind, COUNT(*) AS n FROM exceptions e JOIN orders o ON o.id = e.order_id "
        f"WHERE {_scope(p, start, end, channel_id)} GROUP BY e.kind ORDER BY e.kind", p.values)
    k.exceptions = {r["kind"]: int(r["n"]) for r in rows}

    p = _Params()
    scope = f"r.closed_at >= {p(start)} AND r.closed_at < {p(end)}"
    if channel_id is not None:
        scope += f" AND r.channel_id = {p(channel_id)}"
    row = (await fetch(
        f"WITH refunded AS (SELECT r.processing_seconds AS s FROM returns r WHERE r.status = 'REFUNDED' AND {scope}), "
        + _percentiles("refunded", "s"), p.values))[0]
    k.returns_refunded = int(row["n"] or 0)
    if k.returns_refunded:
        k.returns_p50_hours = round(float(row["p50"]) / 3600, 2)
        k.returns_average_hours = round(float(row["average"]) / 3600, 2)
    return k
