"""KPIs over 100 000 orders (issue 6): `kpis.compute` in the database and `metrics(...)` over HTTP.

    .venv/bin/python bench/kpis.py [--orders 100000] [--days 90] [--runs 20] [--warmup 3] [--try-index] [--keep-db]

1. Recreates the database `ordergraph_bench_kpis`, migrates it with the project's migrations and
   seeds through the models (as place_order.py: warehouses EAST/WEST, channel WEB, SKU-A/B/C, a
   staff API key) plus a second channel MARKET. Then generates the history with set-based SQL
   (INSERT ... SELECT FROM generate_series, seeded random, not through the workflows):
   - `--orders` orders placed uniformly over the `--days` days before today 00:00 UTC, 70 % WEB,
     30 % MARKET, service level 70 % STANDARD / 20 % EXPRESS / 10 % NEXT_DAY; 1-3 order lines;
   - one fulfillment order per order (two, one per warehouse, for 20 %), `promised_ship_by`
     exactly as `workflows.fulfillment.promised_ship_by` gives it (a table computed in Python
     per day, cut-off side and service level); orders shipped unless cancelled (3 %), stale
     BACKORDERED (2 %) or placed so recently that their package would leave after today
     (ALLOCATED / IN_FULFILLMENT / BACKORDERED, open fulfillment orders): ~93 % shipped, the
     last package 2 h to 3 days after placing (the second up to 12 h after the first), order
     status SHIPPED / DELIVERED / COMPLETED by age. (Not 85 %: a 12 % backlog of unshipped
     orders spread over 90 days is 12 000 overdue orders, which the app's exception sweep job
     turns into 12 000 SHIP_SLA_BREACH exceptions as soon as it starts.)
   - ~3 % of orders with an exception (11 kinds, skewed), ~5 % of shipped orders with a return
     (one return line, 10 % WRONG_ITEM), REFUNDED with `processing_seconds` and `closed_at`
     when closed before today, else RECEIVED.
   Then ANALYZE.
2. Measures `ordergraph.workflows.kpis.compute` in this process (Tortoise on asyncpg, as the app):
   the whole period, the last 7 days, channel WEB over the last 30 days; `--warmup` calls then
   `--runs` timed calls each; p50/p95/max, and the time of each of its statements. Then
   EXPLAIN (ANALYZE, BUFFERS) of every statement of each scenario, summarized (indexes used,
   sequential scans with rows, the slowest node).
3. Serves the app (`python -m uvicorn ordergraph.app:create_app --factory`, 1 worker) and times
   POST /graphql `metrics(from:, to:, channel:)` the same way (one request at a time). The app
   runs with RUN_JOBS=false (its background jobs, above all the exception sweep, would compete
   with the measured requests and write exceptions); `--app-jobs` leaves them on.
`--try-sql`: times the slowest statement alone (asyncpg, 10 runs) as it is, with work_mem 64MB,
   and rewritten with one ordered array_agg instead of two window functions (PostgreSQL only,
   the same lower-nearest-rank percentiles; checked to give the same row).
4. `--try-index`: creates each candidate index of CANDIDATE_INDEXES alone in the throw-away
   database (then all together), ANALYZE, measures `compute` again and drops it. No migration.
Prints a readable summary and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

SEED = 0.42

CANDIDATE_INDEXES = {
    "orders_channel_placed": "CREATE INDEX bench_orders_channel_placed ON orders (channel_id, placed_at)",
    "fo_shipped_by_order": ("CREATE INDEX bench_fo_shipped_by_order ON fulfillment_orders (order_id) "
                            "INCLUDE (shipped_at, promised_ship_by) WHERE status = 'SHIPPED'"),
    "orders_placed_cover": ("CREATE INDEX bench_orders_placed_cover ON orders (placed_at) "
                            "INCLUDE (id, status, channel_id)"),
    "returns_closed": "CREATE INDEX bench_returns_closed ON returns (closed_at) WHERE status = 'REFUNDED'",
}

QUERY = """query M($from: DateTime!, $to: DateTime!, $channel: String) {
  metrics(from: $from, to: $to, channel: $channel) {
    orders shippedOrders
    cycleTimeP50Hours { value target met } cycleTimeP90Hours { value target met }
    orderAccuracy { value target met } slaAchievement { value target met }
    exceptionRates { kind count perOrder }
    returnsRefunded returnsProcessingP50Hours { value target met } returnsProcessingAverageHours
  }
}"""


# -- data ---------------------------------------------------------------------------------------


def promise_rows(first_day: datetime, days: int) -> list[tuple]:
    """(day, after cut-off, service level, promised ship by) from the workflow's own function."""
    from ordergraph.workflows.fulfillment import CUTOFF_HOUR_UTC, promised_ship_by  # noqa: PLC0415

    rows = []
    for d in range(days + 1):
        day = first_day + timedelta(days=d)
        for late in (False, True):
            at = day.replace(hour=CUTOFF_HOUR_UTC + 1 if late else CUTOFF_HOUR_UTC - 1)
            for sl in ("STANDARD", "EXPRESS", "NEXT_DAY"):
                rows.append((day.date(), late, sl, promised_ship_by(at, sl)))
    return rows


GENERATE = [
    # one row per order with every random choice made once
    """CREATE TEMP TABLE gen AS
       SELECT g AS id, placed_at, channel_id, sl, u, nfo, nlines, delay,
              ((u < 0.85 OR u >= 0.90)
               AND placed_at + delay + CASE WHEN nfo = 2 THEN interval '12 hours' ELSE interval '0' END < $1::timestamptz)
                AS shipped
       FROM (SELECT g,
                    $1::timestamptz - ($2::int * interval '1 day') * random() AS placed_at,
                    CASE WHEN random() < 0.7 THEN $3::int ELSE $4::int END AS channel_id,
                    (ARRAY['STANDARD','STANDARD','STANDARD','STANDARD','STANDARD','STANDARD','STANDARD',
                           'EXPRESS','EXPRESS','NEXT_DAY'])[1 + floor(random() * 10)::int] AS sl,
                    random() AS u,
                    CASE WHEN random() < 0.2 THEN 2 ELSE 1 END AS nfo,
                    1 + floor(random() * 3)::int AS nlines,
                    interval '2 hours' + interval '70 hours' * power(random(), 2) AS delay
             FROM generate_series(1, $5::int) g) s""",
    """INSERT INTO orders (id, number, status, customer_email, customer_name, customer_phone, shipping_address,
                          billing_address, service_level, notes, currency, subtotal, total, placed_at, updated_at,
                          cancelled_at, cancel_reason, channel_id)
       SELECT id, 'SO-' || lpad(id::text, 8, '0'),
              CASE WHEN shipped THEN
                     CASE WHEN placed_at < $1::timestamptz - interval '14 days' AND id % 2 = 0 THEN 'COMPLETED'
                          WHEN placed_at < $1::timestamptz - interval '4 days' THEN 'DELIVERED' ELSE 'SHIPPED' END
                   WHEN u >= 0.85 AND u < 0.88 THEN 'CANCELLED'
                   WHEN u >= 0.88 AND u < 0.90 THEN 'BACKORDERED'
                   WHEN id % 3 = 0 THEN 'IN_FULFILLMENT' WHEN id % 3 = 1 THEN 'ALLOCATED' ELSE 'BACKORDERED' END,
              'customer' || (id % 20000) || '@example.com', 'Customer ' || (id % 20000), '',
              '{"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}'::jsonb,
              '{"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}'::jsonb,
              sl, '', 'USD', 25.50 * nlines, 25.50 * nlines + 5, placed_at, placed_at + delay,
              CASE WHEN u >= 0.85 AND u < 0.88 THEN placed_at + interval '1 hour' END,
              CASE WHEN u >= 0.85 AND u < 0.88 THEN 'customer request' ELSE '' END, channel_id
       FROM gen""",
    """INSERT INTO order_lines (position, sku, name, quantity, unit_price, allocated_quantity, backordered_quantity,
                               shipped_quantity, cancelled_quantity, order_id, variant_id)
       SELECT pos, v.sku, v.name, q, v.price,
              CASE WHEN NOT gen.shipped AND o.status IN ('ALLOCATED', 'IN_FULFILLMENT') THEN q ELSE 0 END,
              CASE WHEN o.status = 'BACKORDERED' THEN q ELSE 0 END,
              CASE WHEN gen.shipped THEN q ELSE 0 END,
              CASE WHEN o.status = 'CANCELLED' THEN q ELSE 0 END,
              gen.id, v.id
       FROM gen JOIN orders o ON o.id = gen.id
       CROSS JOIN LATERAL generate_series(1, gen.nlines) pos
       CROSS JOIN LATERAL (SELECT 1 + (gen.id + pos) % 2 AS q) qq
       JOIN (SELECT id, sku, name, price, row_number() OVER (ORDER BY id) AS rn FROM product_variants) v
         ON v.rn = 1 + (gen.id + pos) % 3""",
    """INSERT INTO fulfillment_orders (number, status, held_from, hold_reason, service_level, promised_ship_by,
                                      created_at, updated_at, picked_at, packed_at, shipped_at, cancelled_at,
                                      order_id, warehouse_id)
       SELECT 'SO-' || lpad(gen.id::text, 8, '0') || '-F' || k,
              CASE WHEN gen.shipped THEN 'SHIPPED' WHEN o.status = 'CANCELLED' THEN 'CANCELLED'
                   WHEN o.status = 'IN_FULFILLMENT' THEN 'PICKING' ELSE 'OPEN' END,
              NULL, '', gen.sl, pr.promised, gen.placed_at, COALESCE(sh.at, gen.placed_at),
              CASE WHEN gen.shipped THEN sh.at - interval '1 hour' END,
              CASE WHEN gen.shipped THEN sh.at - interval '30 minutes' END,
              sh.at,
              CASE WHEN o.status = 'CANCELLED' THEN gen.placed_at + interval '1 hour' END,
              gen.id, wh.id
       FROM gen JOIN orders o ON o.id = gen.id
       CROSS JOIN LATERAL generate_series(1, gen.nfo) k
       CROSS JOIN LATERAL (SELECT CASE WHEN gen.shipped THEN gen.placed_at + gen.delay
                                        + CASE WHEN k = 2 THEN interval '12 hours' * random() ELSE interval '0' END
                                  END AS at) sh
       JOIN (SELECT id, row_number() OVER (ORDER BY priority, id) AS rn FROM warehouses) wh ON wh.rn = k
       JOIN promise pr ON pr.day = (gen.placed_at AT TIME ZONE 'UTC')::date
                      AND pr.late = (extract(hour FROM gen.placed_at AT TIME ZONE 'UTC') >= $1::int)
                      AND pr.sl = gen.sl""",
    """INSERT INTO exceptions (number, fact_key, kind, severity, status, team, order_id, summary, details, sla_due_at,
                              escalation_level, raised_at, resolved_at, resolution_note, updated_at)
       SELECT 'EXC-' || lpad(row_number() OVER (ORDER BY id)::text, 7, '0'), 'bench:' || kind || ':' || id, kind,
              (ARRAY['LOW','MEDIUM','HIGH','CRITICAL'])[1 + id % 4],
              CASE WHEN raised_at < $1::timestamptz - interval '2 days' THEN 'RESOLVED' ELSE 'OPEN' END,
              CASE kind WHEN 'PAYMENT_FAILED' THEN 'PAYMENTS' WHEN 'FRAUD_REVIEW' THEN 'FRAUD'
                        WHEN 'OUT_OF_STOCK' THEN 'INVENTORY' WHEN 'ADDRESS_INVALID' THEN 'CUSTOMER_CARE'
                        WHEN 'RETURN_OVERDUE' THEN 'CUSTOMER_CARE' WHEN 'SHORT_PICK' THEN 'WAREHOUSE'
                        WHEN 'SHIP_SLA_BREACH' THEN 'WAREHOUSE' ELSE 'CARRIER_OPS' END,
              id, kind || ' on order ' || id, '{}'::jsonb, raised_at + interval '4 hours', 0, raised_at,
              CASE WHEN raised_at < $1::timestamptz - interval '2 days' THEN raised_at + interval '6 hours' END, '', raised_at
       FROM (SELECT id, placed_at + interval '1 hour' + interval '20 hours' * random() AS raised_at,
                    (ARRAY['PAYMENT_FAILED','PAYMENT_FAILED','OUT_OF_STOCK','OUT_OF_STOCK','OUT_OF_STOCK',
                           'ADDRESS_INVALID','FRAUD_REVIEW','SHORT_PICK','SHORT_PICK','MISSED_PICKUP',
                           'CARRIER_DELAY','CARRIER_DELAY','CARRIER_DELAY','DELIVERY_FAILED','LOST_IN_TRANSIT',
                           'SHIP_SLA_BREACH','SHIP_SLA_BREACH','RETURN_OVERDUE'])[1 + floor(random() * 18)::int] AS kind
             FROM gen WHERE random() < 0.03) e""",
    """CREATE TEMP TABLE ret AS
       SELECT gen.id AS order_id, gen.channel_id, requested_at, requested_at + processing AS closed_at,
              requested_at + processing < $1::timestamptz AS refunded, random() < 0.10 AS wrong_item
       FROM gen
       CROSS JOIN LATERAL (SELECT gen.placed_at + gen.delay + interval '2 days'
                                  + interval '8 days' * random() AS requested_at,
                                  interval '1 day' + interval '7 days' * power(random(), 1.5) AS processing) t
       WHERE gen.shipped AND random() < 0.05 AND requested_at < $1::timestamptz""",
    """INSERT INTO returns (number, channel_id, status, requested_by, requester_kind, note, auto_approved,
                           decline_reason, currency, refund_amount, restocking_fee, return_shipping_fee, refund_error,
                           requested_at, approved_at, received_at, inspected_at, closed_at, processing_seconds,
                           updated_at, order_id, warehouse_id)
       SELECT 'RMA-' || lpad(order_id::text, 8, '0'), channel_id, CASE WHEN refunded THEN 'REFUNDED' ELSE 'RECEIVED' END,
              'customer' || (order_id % 20000) || '@example.com', 'CUSTOMER', '', true, '', 'USD',
              CASE WHEN refunded THEN 25.50 ELSE 0 END, 0, 0, '',
              requested_at, requested_at + interval '5 minutes',
              CASE WHEN refunded THEN closed_at - interval '1 day' END,
              CASE WHEN refunded THEN closed_at - interval '2 hours' END,
              CASE WHEN refunded THEN closed_at END,
              CASE WHEN refunded THEN extract(epoch FROM closed_at - requested_at)::int END,
              CASE WHEN refunded THEN closed_at ELSE requested_at END, order_id,
              (SELECT id FROM warehouses ORDER BY priority, id LIMIT 1)
       FROM ret""",
    """INSERT INTO return_lines (variant_id, sku, quantity, reason, note, unit_price, received_quantity,
                                inspected_quantity, refunded_quantity, order_line_id, rma_id)
       SELECT ol.variant_id, ol.sku, 1,
              CASE WHEN ret.wrong_item THEN 'WRONG_ITEM'
                   ELSE (ARRAY['DAMAGED','DEFECTIVE','NOT_AS_DESCRIBED','SIZE_FIT','CHANGED_MIND','ARRIVED_LATE',
                               'OTHER'])[1 + r.id % 7] END,
              '', ol.unit_price, 1, CASE WHEN ret.refunded THEN 1 ELSE 0 END, CASE WHEN ret.refunded THEN 1 ELSE 0 END,
              ol.id, r.id
       FROM ret JOIN returns r ON r.order_id = ret.order_id
       JOIN order_lines ol ON ol.order_id = ret.order_id AND ol.position = 1""",
]


async def generate(url: str, args, channels: dict[str, int], anchor: datetime) -> dict:
    import asyncpg  # noqa: PLC0415

    from ordergraph.workflows.fulfillment import CUTOFF_HOUR_UTC  # noqa: PLC0415

    conn = await asyncpg.connect(url)
    try:
        t0 = time.perf_counter()
        await conn.execute("SELECT setseed($1)", SEED)
        await conn.execute("CREATE TEMP TABLE promise (day date, late boolean, sl text, promised timestamptz)")
        await conn.copy_records_to_table(
            "promise", records=promise_rows(anchor - timedelta(days=args.days + 1), args.days + 2))
        timings = {}
        for i, sql in enumerate(GENERATE):
            t = time.perf_counter()
            head = " ".join(sql.split()[:3])
            params = {0: [anchor, args.days, channels["WEB"], channels["MARKET"], args.orders],
                      3: [CUTOFF_HOUR_UTC]}.get(i, [anchor])
            used = max((int(n) for n in re.findall(r"\$(\d+)", sql)), default=0)
            try:
                await conn.execute(sql, *params[:used])
            except Exception:
                print(f"step {i} failed: {sql[:300]}", file=sys.stderr)
                raise
            timings[f"{i}:{head}"] = round(time.perf_counter() - t, 2)
        for table in ("orders", "order_lines", "fulfillment_orders", "exceptions", "returns", "return_lines"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT COALESCE(MAX(id), 1) FROM {table}))")
        t = time.perf_counter()
        await conn.execute("ANALYZE")
        timings["ANALYZE"] = round(time.perf_counter() - t, 2)
        counts = {}
        for table in ("orders", "order_lines", "fulfillment_orders", "exceptions", "returns", "return_lines"):
            counts[table] = await conn.fetchval(f"SELECT COUNT(*) FROM {table}")
        shape = dict(await conn.fetchrow(
            "SELECT (SELECT COUNT(*) FROM orders WHERE status IN ('SHIPPED','DELIVERED','COMPLETED'))::float "
            "  / COUNT(*) AS shipped_share, "
            "(SELECT COUNT(*) FROM fulfillment_orders WHERE status = 'SHIPPED' AND shipped_at <= promised_ship_by)::float"
            "  / NULLIF((SELECT COUNT(*) FROM fulfillment_orders WHERE status = 'SHIPPED'), 0) AS fo_on_time_share, "
            "(SELECT COUNT(*) FROM return_lines WHERE reason = 'WRONG_ITEM') AS wrong_item_lines, "
            "(SELECT COUNT(*) FROM returns WHERE status = 'REFUNDED') AS refunded_returns, "
            "pg_size_pretty(pg_database_size(current_database())) AS db_size FROM orders"))
        shape["shipped_share"] = round(shape["shipped_share"], 3)
        shape["fo_on_time_share"] = round(shape["fo_on_time_share"] or 0, 3)
        return {"seconds": round(time.perf_counter() - t0, 1), "steps_s": timings, "rows": counts, "shape": shape}
    finally:
        await conn.close()


# -- measuring compute ----------------------------------------------------------------------------


class StatementTimer:
    """Every statement sent through asyncpg's Connection.fetch in this process, with its
    arguments and wall time (Tortoise's execute_query_dict goes through fetch)."""

    def __enter__(self):
        from asyncpg.connection import Connection  # noqa: PLC0415

        self.log: list[tuple[str, tuple, float]] = []
        self.orig = orig = Connection.fetch
        log = self.log

        async def timed(conn, query, *args, **kw):
            t = time.perf_counter()
            try:
                return await orig(conn, query, *args, **kw)
            finally:
                log.append((query, args, time.perf_counter() - t))

        Connection.fetch = timed
        return self

    def __exit__(self, *exc):
        from asyncpg.connection import Connection  # noqa: PLC0415

        Connection.fetch = self.orig


def stats_ms(values: list[float]) -> dict:
    data = sorted(values)
    pick = lambda q: data[min(len(data) - 1, max(0, round(q * len(data)) - 1))]  # noqa: E731
    return {"p50_ms": round(pick(0.5) * 1000, 2), "p95_ms": round(pick(0.95) * 1000, 2),
            "max_ms": round(data[-1] * 1000, 2), "mean_ms": round(statistics.fmean(data) * 1000, 2)}


def label(sql: str) -> str:
    if "GROUP BY e.kind" in sql:
        return "exceptions by kind"
    if "refunded AS" in sql:
        return "returns processing"
    if "shipped AS" in sql:
        return "shipped: cycle, SLA, accuracy"
    if "COUNT(*) AS n FROM orders" in sql:
        return "orders count"
    return sql[:40]


def scenarios(anchor: datetime, days: int, channels: dict[str, int]) -> list[dict]:
    return [
        {"name": f"all {days} days", "start": anchor - timedelta(days=days), "end": anchor, "channel": None},
        {"name": "last 7 days", "start": anchor - timedelta(days=7), "end": anchor, "channel": None},
        {"name": "WEB, last 30 days", "start": anchor - timedelta(days=30), "end": anchor, "channel": "WEB",
         "channel_id": channels["WEB"]},
    ]


async def measure_compute(url: str, cases: list[dict], args, *, explain: bool) -> dict:
    from ordergraph.db import close_db, init_db  # noqa: PLC0415
    from ordergraph.workflows import kpis  # noqa: PLC0415

    await init_db(c._settings(url))
    out = {}
    try:
        for case in cases:
            call = lambda: kpis.compute(case["start"], case["end"], case.get("channel_id"))  # noqa: E731
            for _ in range(args.warmup):
                result = await call()
            background = await asyncio.to_thread(c.wait_until_quiet, args.wait_idle)
            totals, per_stmt, texts = [], {}, {}
            with c.CpuMeter() as meter:
                for _ in range(args.runs):
                    with StatementTimer() as st:
                        t = time.perf_counter()
                        result = await call()
                        totals.append(time.perf_counter() - t)
                    for sql, params, dt in st.log:
                        per_stmt.setdefault(label(sql), []).append(dt)
                        texts[label(sql)] = (sql, params)
            entry_texts = texts
            entry = stats_ms(totals) | {
                "statements": {k: stats_ms(v) for k, v in per_stmt.items()},
                "cpu_cores_used": meter.cores, "busy_before_start": round(background, 3),
                "result": {"orders": result.orders, "shipped_orders": result.shipped_orders,
                           "cycle_p50_hours": result.cycle_p50_hours, "cycle_p90_hours": result.cycle_p90_hours,
                           "accuracy": result.accuracy, "sla_achievement": result.sla_achievement,
                           "exceptions": sum(result.exceptions.values()), "returns_refunded": result.returns_refunded,
                           "returns_p50_hours": result.returns_p50_hours},
            }
            if explain:
                entry["plans"] = {k: await explain_plan(url, sql, params) for k, (sql, params) in texts.items()}
            entry["_texts"] = entry_texts
            out[case["name"]] = entry
    finally:
        await close_db()
    return out


# -- plans ------------------------------------------------------------------------------------------


def _walk(node: dict, depth: int = 0):
    yield node, depth
    for child in node.get("Plans", []):
        yield from _walk(child, depth + 1)


async def explain_plan(url: str, sql: str, params: tuple) -> dict:
    import asyncpg  # noqa: PLC0415

    conn = await asyncpg.connect(url)
    try:
        raw = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *params)
        text = [r[0] for r in await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", *params)]
    finally:
        await conn.close()
    doc = (json.loads(raw) if isinstance(raw, str) else raw)[0]
    root = doc["Plan"]
    indexes, seq_scans, nodes = [], [], []
    for node, _ in _walk(root):
        kind = node["Node Type"]
        loops = node.get("Actual Loops", 1)
        if "Index Name" in node:
            indexes.append(f"{kind} {node['Index Name']} on {node.get('Relation Name', '?')} "
                           f"(rows {node.get('Actual Rows')} x {loops} loops)")
        if kind == "Seq Scan":
            seq_scans.append(f"{node['Relation Name']} (rows {node.get('Actual Rows')} x {loops} loops, "
                             f"removed by filter {node.get('Rows Removed by Filter', 0)})")
        children = sum(ch.get("Actual Total Time", 0) * ch.get("Actual Loops", 1) for ch in node.get("Plans", []))
        nodes.append((node.get("Actual Total Time", 0) * loops - children, kind, node.get("Relation Name", "")))
    nodes.sort(reverse=True)
    return {
        "execution_ms": round(doc.get("Execution Time", 0), 2), "planning_ms": round(doc.get("Planning Time", 0), 2),
        "shared_hit": root.get("Shared Hit Blocks", 0), "shared_read": root.get("Shared Read Blocks", 0),
        "temp_written": root.get("Temp Written Blocks", 0),
        "indexes": indexes, "seq_scans": seq_scans,
        "top_self_ms": [f"{k} {rel}".strip() + f": {ms:.1f}" for ms, k, rel in nodes[:3]],
        "text": text,
    }


# -- HTTP -------------------------------------------------------------------------------------------


async def measure_http(url: str, key: str, cases: list[dict], args) -> dict:
    import httpx  # noqa: PLC0415

    import os  # noqa: PLC0415

    if not args.app_jobs:
        os.environ["RUN_JOBS"] = "false"  # start_app passes the environment on to the app
    srv, entry = c.start_app(url, name="kpis-app")
    out = {"entry": entry, "run_jobs": bool(args.app_jobs)}
    try:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=srv.base_url, headers=headers, timeout=60) as http:
            for case in cases:
                body = {"query": QUERY, "variables": {"from": case["start"].isoformat(), "to": case["end"].isoformat(),
                                                      "channel": case["channel"]}}

                async def post():
                    resp = await http.post("/graphql", json=body)
                    resp.raise_for_status()
                    doc = resp.json()
                    if doc.get("errors") or not doc["data"]["metrics"]:
                        raise RuntimeError(f"metrics failed: {resp.text[:500]}")
                    return doc["data"]["metrics"]

                for _ in range(args.warmup):
                    answer = await post()
                background = await asyncio.to_thread(c.wait_until_quiet, args.wait_idle)
                cpu0 = srv.cpu_seconds()
                times = []
                with c.CpuMeter() as meter:
                    for _ in range(args.runs):
                        t = time.perf_counter()
                        answer = await post()
                        times.append(time.perf_counter() - t)
                out[case["name"]] = stats_ms(times) | {
                    "server_cpu_ms_per_request": round((srv.cpu_seconds() - cpu0) / args.runs * 1000, 2),
                    "cpu_cores_used": meter.cores, "busy_before_start": round(background, 3),
                    "orders": answer["orders"], "shipped_orders": answer["shippedOrders"],
                    "response_bytes": len(json.dumps(answer)),
                }
    finally:
        srv.stop()
    return out


# -- the slowest statement, rewritten -------------------------------------------------------------------


def array_agg_variant(sql: str) -> str:
    """The shipped statement with its `ranked` window CTE replaced by one ordered array_agg
    (same ranks: element ((n-1)*5)/10+1 and ((n-1)*9)/10+1 of the sorted values)."""
    head = sql[: sql.index(", ranked AS (")]
    n = "COUNT(*)::int"
    return (head + f" SELECT COUNT(*) AS n, (ARRAY_AGG(seconds ORDER BY seconds))[(({n} - 1) * 5) / 10 + 1] AS p50, "
            f"(ARRAY_AGG(seconds ORDER BY seconds))[(({n} - 1) * 9) / 10 + 1] AS p90, AVG(seconds) AS average, "
            "SUM(on_time) AS on_time, SUM(accurate) AS accurate FROM cycles")


async def try_sql(url: str, sql: str, params: tuple, runs: int = 10) -> dict:
    import asyncpg  # noqa: PLC0415

    variants = {"as is": (sql, None), "work_mem 64MB": (sql, "64MB"),
                "array_agg": (array_agg_variant(sql), None), "array_agg + work_mem 64MB": (array_agg_variant(sql), "64MB")}
    conn = await asyncpg.connect(url)
    out, rows = {}, {}
    try:
        for name, (text, mem) in variants.items():
            await conn.execute(f"SET work_mem = '{mem}'" if mem else "RESET work_mem")
            rows[name] = dict(await conn.fetchrow(text, *params))
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                await conn.fetch(text, *params)
                times.append(time.perf_counter() - t)
            plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {text}", *params)
            spills = [r[0].strip() for r in plan if "Disk" in r[0] or "temp" in r[0]]
            out[name] = stats_ms(times) | {"spills": spills[:4]}
            print(f"[sql {name}] p50 {out[name]['p50_ms']} ms  p95 {out[name]['p95_ms']} ms  spills: {spills[:2] or 'none'}")
        await conn.execute("RESET work_mem")
    finally:
        await conn.close()
    same = all({k: v for k, v in r.items() if k != "average"} == {k: v for k, v in rows["as is"].items() if k != "average"}
               for r in rows.values())
    out["same_result"] = same
    print(f"    same n/p50/p90/on_time/accurate in every variant: {same}")
    return out


# -- candidate indexes --------------------------------------------------------------------------------


async def try_indexes(url: str, cases: list[dict], args, baseline: dict) -> dict:
    import asyncpg  # noqa: PLC0415

    out = {}
    trials = [(name, [sql]) for name, sql in CANDIDATE_INDEXES.items()] + [("all", list(CANDIDATE_INDEXES.values()))]
    for name, statements in trials:
        conn = await asyncpg.connect(url)
        try:
            for sql in statements:
                await conn.execute(sql)
            await conn.execute("ANALYZE orders; ANALYZE fulfillment_orders; ANALYZE returns")
            size = await conn.fetchval(
                "SELECT pg_size_pretty(SUM(pg_relation_size(indexrelid))) FROM pg_index "
                "WHERE indexrelid::regclass::text LIKE 'bench_%'")
        finally:
            await conn.close()
        res = await measure_compute(url, cases, args, explain=True)
        conn = await asyncpg.connect(url)
        try:
            for idx in CANDIDATE_INDEXES:
                await conn.execute(f"DROP INDEX IF EXISTS bench_{idx}")
        finally:
            await conn.close()
        out[name] = {"index_size": size}
        for case, r in res.items():
            base = baseline[case]
            out[name][case] = {
                "p50_ms": r["p50_ms"], "p95_ms": r["p95_ms"],
                "p50_change_pct": round(100 * (r["p50_ms"] - base["p50_ms"]) / base["p50_ms"], 1),
                "statements_p50_ms": {k: v["p50_ms"] for k, v in r["statements"].items()},
                "indexes_used": sorted({i for p in r["plans"].values() for i in p["indexes"]}),
                "seq_scans": sorted({s.split(" (")[0] for p in r["plans"].values() for s in p["seq_scans"]}),
            }
        line = "  ".join(f"{case}: p50 {v['p50_ms']} ms ({v['p50_change_pct']:+}%)"
                         for case, v in out[name].items() if case != "index_size")
        print(f"[index {name}, {size}] {line}")
    return out


# -- main ---------------------------------------------------------------------------------------------


async def main(args) -> dict:
    from ordergraph.db import close_db, init_db  # noqa: PLC0415
    from ordergraph.models import ChannelWarehouse, SalesChannel, Warehouse  # noqa: PLC0415
    from ordergraph.models.enums import AllocationStrategy, CaptureMode, ChannelKind, StockPolicy  # noqa: PLC0415

    report: dict = {"bench": "kpis", "machine": c.machine(), "postgres": await c.pg_version(), "git": c.git_state(),
                    "params": {"orders": args.orders, "days": args.days, "runs": args.runs, "warmup": args.warmup}}
    anchor = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    url = await c.recreate_database(args.db)
    seed = await c.migrate_and_seed(url)
    await init_db(c._settings(url))
    try:
        market = await SalesChannel.create(
            code="MARKET", name="Marketplace", kind=ChannelKind.MARKETPLACE, currency="USD",
            allocation_strategy=AllocationStrategy.PRIORITY, stock_policy=StockPolicy.REJECT,
            capture_mode=CaptureMode.ON_SHIPMENT, sets_prices=True)
        for w in await Warehouse.all():
            await ChannelWarehouse.create(channel=market, warehouse=w)
    finally:
        await close_db()
    channels = {"WEB": seed["channel_id"], "MARKET": market.id}
    data = await generate(url, args, channels, anchor)
    report["data"] = data | {"anchor": anchor.isoformat()}
    print(f"data: {data['rows']} in {data['seconds']} s ({data['shape']})")

    cases = scenarios(anchor, args.days, channels)
    report["compute"] = await measure_compute(url, cases, args, explain=True)
    for name, r in report["compute"].items():
        stmts = ", ".join(f"{k} {v['p50_ms']}" for k, v in r["statements"].items())
        print(f"[compute {name}] p50 {r['p50_ms']} ms  p95 {r['p95_ms']} ms  max {r['max_ms']} ms  "
              f"(statements p50 ms: {stmts}; cores {r['cpu_cores_used']})")
        print(f"    result {r['result']}")
    slowest = max(((case, k, v["p50_ms"]) for case, r in report["compute"].items() for k, v in r["statements"].items()),
                  key=lambda x: x[2])
    plan = report["compute"][slowest[0]]["plans"][slowest[1]]
    report["slowest_statement"] = {"scenario": slowest[0], "statement": slowest[1], "p50_ms": slowest[2]}
    print(f"slowest statement: {slowest[1]} in '{slowest[0]}' (p50 {slowest[2]} ms); EXPLAIN ANALYZE "
          f"{plan['execution_ms']} ms, buffers hit {plan['shared_hit']} read {plan['shared_read']} "
          f"temp {plan['temp_written']}")
    print("    indexes: " + ("; ".join(plan["indexes"]) or "none"))
    print("    seq scans: " + ("; ".join(plan["seq_scans"]) or "none"))
    print("    top self time (ms): " + "; ".join(plan["top_self_ms"]))
    if args.verbose:
        for case, r in report["compute"].items():
            for k, p in r["plans"].items():
                print(f"--- {case} / {k}\n" + "\n".join(p["text"]))

    import asyncpg  # noqa: PLC0415

    async def exceptions_count():
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval("SELECT COUNT(*) FROM exceptions")
        finally:
            await conn.close()

    before = await exceptions_count()
    report["http"] = await measure_http(url, seed["key"], cases, args)
    report["http"]["exceptions_written_by_app"] = await exceptions_count() - before
    for name, r in report["http"].items():
        if isinstance(r, dict):
            print(f"[http {name}] p50 {r['p50_ms']} ms  p95 {r['p95_ms']} ms  max {r['max_ms']} ms  "
                  f"(server CPU {r['server_cpu_ms_per_request']} ms/request; cores {r['cpu_cores_used']})")

    if args.try_sql:
        sql, params = report["compute"][slowest[0]]["_texts"][slowest[1]]
        report["try_sql"] = await try_sql(url, sql, params)
    if args.try_index:
        report["try_index"] = await try_indexes(url, cases, args, report["compute"])
    for r in report["compute"].values():
        r.pop("_texts", None)
    for r in report["compute"].values():  # the full text plans are for --verbose; keep the JSON line short
        for p in r["plans"].values():
            p.pop("text", None)
    return report


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=100_000, help="orders to generate (default 100000)")
    p.add_argument("--days", type=int, default=90, help="days the orders are spread over (default 90)")
    p.add_argument("--runs", type=int, default=20, help="timed calls per scenario (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    p.add_argument("--try-index", action="store_true",
                   help="measure compute again with each candidate index (created in the throw-away database only)")
    p.add_argument("--try-sql", action="store_true",
                   help="time the slowest statement with more work_mem and rewritten with array_agg")
    p.add_argument("--app-jobs", action="store_true",
                   help="let the served app run its background jobs (exception sweep etc.) during the HTTP phase")
    p.add_argument("--verbose", action="store_true", help="print every EXPLAIN (ANALYZE, BUFFERS) plan in full")
    p.add_argument("--wait-idle", type=float, default=600,
                   help="seconds to wait for the machine to be quiet before each measured phase (default 600)")
    p.add_argument("--db", default="ordergraph_bench_kpis", help="database to recreate (default ordergraph_bench_kpis)")
    p.add_argument("--keep-db", action="store_true", help="leave the database in place afterwards")
    args = p.parse_args()
    try:
        report = asyncio.run(main(args))
    finally:
        c._kill_children()
        if not args.keep_db:
            try:
                asyncio.run(c.drop_database(args.db))
            except Exception as exc:  # noqa: BLE001
                print(f"(could not drop {args.db}: {exc})", file=sys.stderr)
    print(json.dumps(report, sort_keys=True, default=str))


if __name__ == "__main__":
    cli()
