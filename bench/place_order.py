"""placeOrder throughput on PostgreSQL: the real app over HTTP vs a hand-written asyncpg transaction.

    .venv/bin/python bench/place_order.py [--orders 2000] [--concurrency 16] [--warmup 200]

1. Recreates the database `ordergraph_bench` (asyncpg on the `postgres` db), migrates it with
   the project's migrations and seeds two warehouses (EAST priority 1, WEST priority 2), a channel
   WEB (PRIORITY, REJECT, capture ON_SHIPMENT), SKU-A/B/C with 10^9 units in both warehouses, and
   a staff API key.
2. Starts the app in a subprocess: `python -m uvicorn ordergraph.app:create_app --factory`
   (1 worker, DATABASE_URL, LOG_LEVEL=WARNING), and sends `--warmup` then `--orders` placeOrder
   mutations over HTTP (httpx, `--concurrency` in flight): 3 lines, payment token tok_approve,
   so each order is authorized, confirmed and allocated, with its events. Every answer must be
   an OrderPayload with status ALLOCATED.
3. Baseline, same database, same counts: an asyncpg pool (20 connections) in this process doing,
   per order, one transaction with the same writes as the workflow, in its order (see
   `baseline_order`), one statement per row; with `--baseline batched`, the same rows several
   per statement (see `baseline_order_batched`).
4. Checks that both paths wrote the same rows per order (the STOCK_CHANGED events included),
   then prints the figures, the ratio app/baseline (target >= 0.6) and one JSON line with
   everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
from ordergraph.workflows.fulfillment import promised_ship_by  # noqa: E402

TARGET = 0.6
SKUS = ("SKU-A", "SKU-B", "SKU-C")

PLACE = """
mutation Place($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    __typename
    ... on OrderPayload { order { id number status total { amount currency } } }
    ... on Error { code message }
  }
}
"""

SHIP_TO = {"name": "Ada Lovelace", "line1": "1 Main St", "city": "Springfield", "postalCode": "62701", "country": "US"}


def order_lines(i: int) -> list[tuple[str, int]]:
    rnd = random.Random(i)
    return [(sku, rnd.randint(1, 3)) for sku in SKUS]


# -- the app over HTTP ------------------------------------------------------------------------


def order_input(n: int) -> dict:
    return {
        "channel": "WEB",
        "customer": {"email": f"bench{n}@example.com", "name": "Bench Customer"},
        "shippingAddress": SHIP_TO,
        "lines": [{"sku": s, "quantity": q} for s, q in order_lines(n)],
        "payment": {"token": "tok_approve"},
    }


async def drive_app(base_url: str, key: str, *, start: int, count: int, concurrency: int) -> c.LoadResult:
    import httpx  # noqa: PLC0415

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits,
                                 headers={"Authorization": f"Bearer {key}"}) as http:

        async def call(i: int) -> str | None:
            n = start + i
            resp = await http.post("/graphql", json={"query": PLACE, "variables": {"input": order_input(n)}})
            if resp.status_code != 200:
                return f"HTTP {resp.status_code}: {resp.text[:300]}"
            body = resp.json()
            if "errors" in body:
                return f"GraphQL errors: {body['errors']}"
            res = body["data"]["placeOrder"]
            if res["__typename"] != "OrderPayload" or res["order"]["status"] != "ALLOCATED":
                return f"unexpected result: {res}"
            return None

        return await c.run_load(call, concurrency=concurrency, total=count)


# -- the hand-written baseline ----------------------------------------------------------------

SQL = {
    "variants": "SELECT id, sku, name, price, active FROM product_variants WHERE sku = ANY($1::varchar[])",
    "insert_order": (
        "INSERT INTO orders (number, external_id, status, customer_email, customer_name, customer_phone,"
        " shipping_address, billing_address, service_level, notes, currency, subtotal, total, placed_at,"
        " updated_at, cancelled_at, cancel_reason, channel_id)"
        " VALUES ($1, NULL, 'PENDING', $2, $3, '', $4::jsonb, $4::jsonb, 'STANDARD', '', 'USD', $5, $5, $6, $6,"
        " NULL, '', $7) RETURNING id"
    ),
    "number_status": "UPDATE orders SET number = $1, status = $2, updated_at = $3 WHERE id = $4",
    "insert_line": (
        "INSERT INTO order_lines (position, sku, name, external_line_id, quantity, unit_price, allocated_quantity,"
        " backordered_quantity, shipped_quantity, cancelled_quantity, order_id, variant_id)"
        " VALUES ($1, $2, $3, NULL, $4, $5, 0, 0, 0, 0, $6, $7) RETURNING id"
    ),
    "levels": (
        "SELECT id, warehouse_id, variant_id, on_hand, allocated, reserved, safety_stock FROM inventory_levels"
        " WHERE warehouse_id = ANY($1::int[]) AND variant_id = ANY($2::int[])"
    ),
    "lock": (
        "SELECT id, warehouse_id, variant_id, on_hand, allocated, reserved, safety_stock FROM inventory_levels"
        " WHERE warehouse_id = ANY($1::int[]) AND variant_id = ANY($2::int[]) ORDER BY id FOR UPDATE"
    ),
    "allocate": (
        "UPDATE inventory_levels SET allocated = allocated + $2, updated_at = CURRENT_TIMESTAMP"
        " WHERE id = $1 AND allocated + $2 + reserved <= on_hand"
        " AND on_hand - allocated - $2 - reserved - safety_stock >= 0"
        " RETURNING warehouse_id, variant_id, on_hand, allocated, reserved, safety_stock, reorder_point"
    ),
    # The level's next sequence is read in the INSERT itself: the row lock is held. ORDER BY …
    # DESC LIMIT 1 reads one index entry (max() read the level's whole history when the
    # planner's statistics were older than it), as the app does since it changed the same way.
    "stock_event": (
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, order_id, type, data, actor, created_at,"
        " published_at) VALUES ('InventoryLevel', $1, coalesce((SELECT sequence FROM events"
        " WHERE aggregate_type = 'InventoryLevel' AND aggregate_id = $1 ORDER BY sequence DESC LIMIT 1), 0) + 1,"
        " NULL, 'STOCK_CHANGED', $2::jsonb, $3, $4, NULL)"
    ),
    "movement": (
        "INSERT INTO stock_movements (kind, quantity, on_hand_after, allocated_after, reserved_after, reason,"
        " reference, order_id, actor, created_at, variant_id, warehouse_id)"
        " VALUES ('ALLOCATION', $1, $2, $3, $4, 'order allocation', $5, $6, $7, $8, $9, $10)"
    ),
    "allocation": (
        "INSERT INTO allocations (order_id, quantity, status, created_at, released_at, line_id, warehouse_id)"
        " VALUES ($1, $2, 'ACTIVE', $3, NULL, $4, $5)"
    ),
    "payment": (
        "INSERT INTO payments (gateway, method, status, currency, amount, authorized_amount, captured_amount,"
        " refunded_amount, authorization_ref, authorization_expires_at, failure_code, failure_message,"
        " created_at, updated_at, order_id)"
        " VALUES ('local', 'card', 'AUTHORIZED', 'USD', $1, $1, 0, 0, $2, $3, NULL, NULL, $4, $4, $5) RETURNING id"
    ),
    "payment_tx": (
        "INSERT INTO payment_transactions (kind, amount, success, gateway_ref, error_code, error_message,"
        " created_at, payment_id) VALUES ('AUTHORIZE', $1, true, $2, NULL, NULL, $3, $4)"
    ),
    "line_allocated": "UPDATE order_lines SET allocated_quantity = $1, backordered_quantity = 0 WHERE id = $2",
    "event": (
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, order_id, type, data, actor, created_at,"
        " published_at) VALUES ('Order', $1, $2, $1, $3, $4::jsonb, $5, $6, NULL)"
    ),
    # Allocation makes one fulfillment order per warehouse (issue 4), with its lines, and links
    # the allocations to it; each fulfillment order's first event (its own stream).
    "fo": (
        "INSERT INTO fulfillment_orders (number, order_id, warehouse_id, status, held_from, hold_reason,"
        " service_level, promised_ship_by, pick_list_id, created_at, updated_at, picked_at, packed_at, shipped_at,"
        " cancelled_at) VALUES ($1, $2, $3, 'OPEN', NULL, '', 'STANDARD', $4, NULL, $5, $5, NULL, NULL, NULL, NULL)"
        " RETURNING id"
    ),
    "fline": (
        "INSERT INTO fulfillment_lines (fulfillment_order_id, order_line_id, variant_id, sku, quantity, picked_quantity,"
        " packed_quantity, shipped_quantity, short_quantity) VALUES ($1, $2, $3, $4, $5, 0, 0, 0, 0)"
    ),
    "link": (
        "UPDATE allocations SET fulfillment_order_id = u.fo FROM unnest($2::int[], $3::int[]) AS u(wid, fo)"
        " WHERE allocations.order_id = $1 AND allocations.warehouse_id = u.wid AND allocations.fulfillment_order_id IS NULL"
    ),
    "fo_event": (
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, order_id, type, data, actor, created_at,"
        " published_at) VALUES ('FulfillmentOrder', $1, 1, $2, 'FULFILLMENT_ORDER_CREATED', $3::jsonb, $4, $5, NULL)"
    ),
}


def _fo_plan(number: str, takes, line_ids, variants) -> list[tuple[str, int, list[tuple[int, int, str, int]]]]:
    """Per warehouse, in the plan's order: the fulfillment order's number and its lines
    (order line id, variant id, sku, quantity), as the workflow makes them."""
    per_wh: dict[int, dict[int, list]] = {}
    for i, sku, _, wid, take in takes:
        entry = per_wh.setdefault(wid, {}).setdefault(line_ids[i], [variants[sku]["id"], sku, 0])
        entry[2] += take
    return [(f"{number}-F{n}", wid, [(lid, v, sku, q) for lid, (v, sku, q) in lines.items()])
            for n, (wid, lines) in enumerate(per_wh.items(), start=1)]


async def _write_fulfillment_orders(conn, world: dict, order_id: int, plan, now, actor) -> None:
    """`baseline_order`'s fulfillment orders, one statement per row."""
    ids = []
    for number, wid, lines in plan:
        fo_id = await conn.fetchval(SQL["fo"], number, order_id, wid, world["promised"], now)
        ids.append(fo_id)
        for lid, vid, sku, q in lines:
            await conn.execute(SQL["fline"], fo_id, lid, vid, sku, q)
    await conn.execute(SQL["link"], order_id, [wid for _, wid, _ in plan], ids)
    for fo_id, (number, wid, lines) in zip(ids, plan, strict=True):
        await conn.execute(SQL["fo_event"], fo_id, order_id, json.dumps({
            "fulfillment_order": number, "warehouse_id": wid,
            "lines": [{"sku": sku, "quantity": q} for _, _, sku, q in lines]}), actor, now)


def _plan(levels, lines, variants, warehouse_ids) -> list[tuple[int, str, int, int, int]]:
    """PRIORITY routing, as the workflow plans: (line index, sku, level id, warehouse id, units)."""
    by_key = {(r["warehouse_id"], r["variant_id"]): r for r in levels}
    free = {k: r["on_hand"] - r["allocated"] - r["reserved"] - r["safety_stock"] for k, r in by_key.items()}
    takes = []
    for i, (sku, q) in enumerate(lines):
        vid = variants[sku]["id"]
        need = q
        for wid in warehouse_ids:  # EAST, then WEST
            take = min(need, free[(wid, vid)])
            if take <= 0:
                continue
            takes.append((i, sku, by_key[(wid, vid)]["id"], wid, take))
            free[(wid, vid)] -= take
            need -= take
            if need == 0:
                break
        if need:
            raise RuntimeError(f"not enough stock for {sku}")
    return takes


async def baseline_order(pool, world: dict, n: int) -> None:
    """One order, one transaction: the rows the workflow writes, in the order it writes them
    (so the inventory rows stay locked over the same stretch: from the locking SELECT to COMMIT),
    without its ORM, its GraphQL layer and its extra reads.

    Channel and warehouse routing (EAST before WEST) are known up front, as a hand-written
    service would cache them; the variants (price, name) are read per order. Like the
    workflow, it plans from the levels read without locks, writes the order's side, then
    locks the levels, checks the plan still holds and changes the stock: per take the
    conditional UPDATE, its ledger row and its STOCK_CHANGED event.
    """
    lines = order_lines(n)
    actor = world["actor"]
    now = datetime.now(UTC)
    address = json.dumps({"name": "Ada Lovelace", "line1": "1 Main St", "city": "Springfield",
                          "postal_code": "62701", "country": "US"})
    auth_ref = f"auth_{secrets.token_hex(12)}"  # the gateway authorization happens before, as in the app
    async with pool.acquire() as conn, conn.transaction():
        variants = {r["sku"]: r for r in await conn.fetch(SQL["variants"], list(SKUS))}
        total = sum((variants[s]["price"] * q for s, q in lines), Decimal("0"))

        async def event(seq: int, type_: str, data: dict) -> None:
            await conn.execute(SQL["event"], order_id, seq, type_, json.dumps(data), actor, now)

        order_id = await conn.fetchval(SQL["insert_order"], f"TMP-{secrets.token_hex(12)}", f"bench{n}@example.com",
                                       "Bench Customer", address, total, now, world["channel_id"])
        number = f"SO-{order_id:06d}"  # written with the status, below (as the workflow does)
        line_ids = []
        for pos, (sku, q) in enumerate(lines):
            v = variants[sku]
            line_ids.append(await conn.fetchval(SQL["insert_line"], pos, sku, v["name"], q, v["price"], order_id, v["id"]))
        await event(1, "ORDER_PLACED", {"status": "PENDING", "channel": "WEB", "total": str(total), "currency": "USD",
                                        "lines": [{"sku": s, "quantity": q} for s, q in lines]})
        payment_id = await conn.fetchval(SQL["payment"], total, auth_ref, now + timedelta(days=7), now, order_id)
        await conn.execute(SQL["payment_tx"], total, auth_ref, now, payment_id)
        await event(2, "PAYMENT_AUTHORIZED", {"payment_id": payment_id, "amount": str(total), "currency": "USD"})
        await event(3, "ORDER_CONFIRMED", {"status": {"from": "PENDING", "to": "CONFIRMED"}})

        keys = (world["warehouse_ids"], [variants[s]["id"] for s in SKUS])
        takes = _plan(await conn.fetch(SQL["levels"], *keys), lines, variants, world["warehouse_ids"])
        for i, _, _, wid, take in takes:
            await conn.execute(SQL["allocation"], order_id, take, now, line_ids[i], wid)
        for line_id, (_, q) in zip(line_ids, lines, strict=True):
            await conn.execute(SQL["line_allocated"], q, line_id)
        await conn.execute(SQL["number_status"], number, "ALLOCATED", now, order_id)
        await event(4, "ORDER_ALLOCATED", {
            "status": {"from": "CONFIRMED", "to": "ALLOCATED"},
            "allocations": [{"sku": sku, "warehouse": world["warehouse_codes"][wid], "quantity": take}
                            for _, sku, _, wid, take in takes],
            "backordered": []})
        await _write_fulfillment_orders(conn, world, order_id, _fo_plan(number, takes, line_ids, variants), now, actor)

        if _plan(await conn.fetch(SQL["lock"], *keys), lines, variants, world["warehouse_ids"]) != takes:
            raise RuntimeError("the plan changed under the locks")  # never with 10^9 units on hand
        for _, sku, level_id, wid, take in takes:
            after = await conn.fetchrow(SQL["allocate"], level_id, take)
            if after is None:
                raise RuntimeError(f"stock conflict on level {level_id}")
            await conn.execute(SQL["movement"], take, after["on_hand"], after["allocated"], after["reserved"],
                               number, order_id, actor, now, after["variant_id"], wid)
            available = after["on_hand"] - after["allocated"] - after["reserved"] - after["safety_stock"]
            await conn.execute(SQL["stock_event"], level_id, json.dumps({
                "warehouse_id": wid, "variant_id": after["variant_id"], "on_hand": after["on_hand"],
                "allocated": after["allocated"], "reserved": after["reserved"], "safety_stock": after["safety_stock"],
                "available": available, "reorder_point": after["reorder_point"], "kind": "ALLOCATION",
                "quantity": take, "reference": number}), actor, now)


BATCHED = {
    "lines": (
        "INSERT INTO order_lines (position, sku, name, external_line_id, quantity, unit_price, allocated_quantity,"
        " backordered_quantity, shipped_quantity, cancelled_quantity, order_id, variant_id)"
        " SELECT p, s, n, NULL, q, u, 0, 0, 0, 0, $1, v"
        " FROM unnest($2::int[], $3::text[], $4::text[], $5::int[], $6::numeric[], $7::int[]) AS l(p, s, n, q, u, v)"
        " RETURNING id, position"
    ),
    "payment": (
        "WITH p AS (INSERT INTO payments (gateway, method, status, currency, amount, authorized_amount, captured_amount,"
        " refunded_amount, authorization_ref, authorization_expires_at, failure_code, failure_message,"
        " created_at, updated_at, order_id)"
        " VALUES ('local', 'card', 'AUTHORIZED', 'USD', $1, $1, 0, 0, $2, $3, NULL, NULL, $4, $4, $5) RETURNING id)"
        " INSERT INTO payment_transactions (kind, amount, success, gateway_ref, error_code, error_message,"
        " created_at, payment_id) SELECT 'AUTHORIZE', $1, true, $2, NULL, NULL, $4, p.id FROM p RETURNING payment_id"
    ),
    "levels": (
        "SELECT id, warehouse_id, variant_id, on_hand, allocated, reserved, safety_stock, reorder_point"
        " FROM inventory_levels WHERE warehouse_id = ANY($1::int[]) AND variant_id = ANY($2::int[])"
    ),
    "lock": (
        "SELECT id, warehouse_id, variant_id, on_hand, allocated, reserved, safety_stock, reorder_point"
        " FROM inventory_levels WHERE warehouse_id = ANY($1::int[]) AND variant_id = ANY($2::int[]) ORDER BY id FOR UPDATE"
    ),
    "order_side": (
        "WITH a AS (INSERT INTO allocations (order_id, quantity, status, created_at, released_at, line_id, warehouse_id)"
        " SELECT $1, q, 'ACTIVE', $2, NULL, lid, wid FROM unnest($3::int[], $4::int[], $5::int[]) AS a(q, lid, wid)),"
        " l AS (UPDATE order_lines SET allocated_quantity = u.q, backordered_quantity = 0"
        " FROM unnest($6::int[], $7::int[]) AS u(id, q) WHERE order_lines.id = u.id)"
        " UPDATE orders SET number = $8, status = 'ALLOCATED', updated_at = $2 WHERE id = $1"
    ),
    "fulfillment": (
        "WITH f AS (INSERT INTO fulfillment_orders (number, order_id, warehouse_id, status, held_from, hold_reason,"
        " service_level, promised_ship_by, pick_list_id, created_at, updated_at, picked_at, packed_at, shipped_at,"
        " cancelled_at) SELECT n, $1, w, 'OPEN', NULL, '', 'STANDARD', $2, NULL, $3, $3, NULL, NULL, NULL, NULL"
        " FROM unnest($4::text[], $5::int[]) AS x(n, w) RETURNING id, warehouse_id),"
        " l AS (INSERT INTO fulfillment_lines (fulfillment_order_id, order_line_id, variant_id, sku, quantity,"
        " picked_quantity, packed_quantity, shipped_quantity, short_quantity)"
        " SELECT f.id, y.lid, y.vid, y.sku, y.q, 0, 0, 0, 0"
        " FROM unnest($6::int[], $7::int[], $8::int[], $9::text[], $10::int[]) AS y(wid, lid, vid, sku, q)"
        " JOIN f ON f.warehouse_id = y.wid),"
        " a AS (UPDATE allocations SET fulfillment_order_id = f.id FROM f"
        " WHERE allocations.order_id = $1 AND allocations.warehouse_id = f.warehouse_id)"
        " SELECT id, warehouse_id FROM f"
    ),
    # Under the locks: the stock UPDATE, its ledger rows and every event of the order, in one
    # statement (a stock event's sequence read inside it); RETURNING tells how many levels changed.
    "stock": (
        "WITH upd AS (UPDATE inventory_levels AS l SET allocated = l.allocated + t.q, updated_at = CURRENT_TIMESTAMP"
        " FROM unnest($1::int[], $2::int[]) AS t(id, q) WHERE l.id = t.id AND l.allocated + t.q + l.reserved <= l.on_hand"
        " AND l.on_hand - l.allocated - t.q - l.reserved - l.safety_stock >= 0 RETURNING l.id),"
        " led AS (INSERT INTO stock_movements (kind, quantity, on_hand_after, allocated_after, reserved_after, reason,"
        " reference, order_id, actor, created_at, variant_id, warehouse_id)"
        " SELECT 'ALLOCATION', q, oh, al, rs, 'order allocation', $3, $4, $5, $6, vid, wid"
        " FROM unnest($7::int[], $8::int[], $9::int[], $10::int[], $11::int[], $12::int[]) AS m(q, oh, al, rs, vid, wid))"
        " INSERT INTO events (aggregate_type, aggregate_id, sequence, order_id, type, data, actor, created_at, published_at)"
        " SELECT e.at, e.aid, CASE WHEN e.seq > 0 THEN e.seq ELSE coalesce((SELECT x.sequence FROM events x"
        " WHERE x.aggregate_type = e.at AND x.aggregate_id = e.aid ORDER BY x.sequence DESC LIMIT 1), 0) + 1 END, e.oid, e.ty, e.data::jsonb, $5, $6, NULL"
        " FROM unnest($13::text[], $14::int[], $15::int[], $16::int[], $17::text[], $18::text[]) WITH ORDINALITY"
        " AS e(at, aid, seq, oid, ty, data, ord) ORDER BY e.ord RETURNING (SELECT count(*) FROM upd) AS changed"
    ),
}


async def baseline_order_batched(pool, world: dict, n: int) -> None:
    """`baseline_order` written as a hand-written service that batches would write it: the same
    rows in the same order, with the inventory rows locked over the same stretch, but several rows
    per statement (unnest arrays) and independent writes together (data-modifying CTEs), as the
    app does on PostgreSQL since 4c44c22: 8 statements instead of 30."""
    lines = order_lines(n)
    actor = world["actor"]
    now = datetime.now(UTC)
    address = json.dumps({"name": "Ada Lovelace", "line1": "1 Main St", "city": "Springfield",
                          "postal_code": "62701", "country": "US"})
    auth_ref = f"auth_{secrets.token_hex(12)}"
    async with pool.acquire() as conn, conn.transaction():
        variants = {r["sku"]: r for r in await conn.fetch(SQL["variants"], list(SKUS))}
        total = sum((variants[s]["price"] * q for s, q in lines), Decimal("0"))
        order_id = await conn.fetchval(SQL["insert_order"], f"TMP-{secrets.token_hex(12)}", f"bench{n}@example.com",
                                       "Bench Customer", address, total, now, world["channel_id"])
        number = f"SO-{order_id:06d}"
        rows = await conn.fetch(BATCHED["lines"], order_id, list(range(len(lines))), [s for s, _ in lines],
                                [variants[s]["name"] for s, _ in lines], [q for _, q in lines],
                                [variants[s]["price"] for s, _ in lines], [variants[s]["id"] for s, _ in lines])
        line_ids = [r["id"] for r in sorted(rows, key=lambda r: r["position"])]
        payment_id = await conn.fetchval(BATCHED["payment"], total, auth_ref, now + timedelta(days=7), now, order_id)
        keys = (world["warehouse_ids"], [variants[s]["id"] for s in SKUS])
        takes = _plan(await conn.fetch(BATCHED["levels"], *keys), lines, variants, world["warehouse_ids"])
        await conn.execute(BATCHED["order_side"], order_id, now, [t for *_, t in takes],
                           [line_ids[i] for i, *_ in takes], [wid for _, _, _, wid, _ in takes],
                           line_ids, [q for _, q in lines], number)
        fo_plan = _fo_plan(number, takes, line_ids, variants)
        flat = [(wid, *line) for _, wid, lines_ in fo_plan for line in lines_]
        fo_rows = await conn.fetch(BATCHED["fulfillment"], order_id, world["promised"], now,
                                   [n for n, _, _ in fo_plan], [wid for _, wid, _ in fo_plan],
                                   [x[0] for x in flat], [x[1] for x in flat], [x[2] for x in flat],
                                   [x[3] for x in flat], [x[4] for x in flat])
        fo_ids = {r["warehouse_id"]: r["id"] for r in fo_rows}
        locked = await conn.fetch(BATCHED["lock"], *keys)
        if _plan(locked, lines, variants, world["warehouse_ids"]) != takes:
            raise RuntimeError("the plan changed under the locks")  # never with 10^9 units on hand
        by_id = {r["id"]: r for r in locked}
        after = []
        for _, _, level_id, wid, take in takes:
            r = by_id[level_id]
            after.append((r, r["allocated"] + take))
        events = [
            ("Order", order_id, 1, order_id, "ORDER_PLACED", {
                "status": "PENDING", "channel": "WEB", "total": str(total), "currency": "USD",
                "lines": [{"sku": s, "quantity": q} for s, q in lines]}),
            ("Order", order_id, 2, order_id, "PAYMENT_AUTHORIZED",
             {"payment_id": payment_id, "amount": str(total), "currency": "USD"}),
            ("Order", order_id, 3, order_id, "ORDER_CONFIRMED", {"status": {"from": "PENDING", "to": "CONFIRMED"}}),
            ("Order", order_id, 4, order_id, "ORDER_ALLOCATED", {
                "status": {"from": "CONFIRMED", "to": "ALLOCATED"},
                "allocations": [{"sku": sku, "warehouse": world["warehouse_codes"][wid], "quantity": take}
                                for _, sku, _, wid, take in takes],
                "backordered": []}),
        ] + [
            ("FulfillmentOrder", fo_ids[wid], 1, order_id, "FULFILLMENT_ORDER_CREATED", {
                "fulfillment_order": number_, "warehouse_id": wid,
                "lines": [{"sku": sku, "quantity": q} for _, _, sku, q in lines_]})
            for number_, wid, lines_ in fo_plan
        ] + [
            ("InventoryLevel", r["id"], 0, None, "STOCK_CHANGED", {
                "warehouse_id": r["warehouse_id"], "variant_id": r["variant_id"], "on_hand": r["on_hand"],
                "allocated": allocated, "reserved": r["reserved"], "safety_stock": r["safety_stock"],
                "available": r["on_hand"] - allocated - r["reserved"] - r["safety_stock"],
                "reorder_point": r["reorder_point"], "kind": "ALLOCATION", "quantity": take, "reference": number})
            for (r, allocated), (*_, take) in zip(after, takes, strict=True)
        ]
        changed = await conn.fetchval(
            BATCHED["stock"], [t[2] for t in takes], [t[4] for t in takes], number, order_id, actor, now,
            [t[4] for t in takes], [r["on_hand"] for r, _ in after], [a for _, a in after],
            [r["reserved"] for r, _ in after], [r["variant_id"] for r, _ in after], [r["warehouse_id"] for r, _ in after],
            [e[0] for e in events], [e[1] for e in events], [e[2] for e in events], [e[3] for e in events],
            [e[4] for e in events], [json.dumps(e[5]) for e in events])
        if changed != len(takes):
            raise RuntimeError("stock conflict under the locks")


async def drive_baseline(pool, world: dict, *, start: int, count: int, concurrency: int,
                         write=baseline_order) -> c.LoadResult:
    async def call(i: int) -> str | None:
        await write(pool, world, start + i)
        return None

    return await c.run_load(call, concurrency=concurrency, total=count)


# -- checks and diagnostics -------------------------------------------------------------------

ROWS_PER_ORDER = """
SELECT count(*) AS orders,
       count(*) FILTER (WHERE o.status = 'ALLOCATED') AS allocated,
       (SELECT count(*) FROM order_lines l WHERE l.order_id BETWEEN $1 AND $2) AS lines,
       (SELECT count(*) FROM allocations a WHERE a.order_id BETWEEN $1 AND $2) AS allocations,
       (SELECT count(*) FROM stock_movements m WHERE m.order_id BETWEEN $1 AND $2) AS movements,
       (SELECT count(*) FROM payments p WHERE p.order_id BETWEEN $1 AND $2) AS payments,
       (SELECT count(*) FROM payment_transactions t JOIN payments p ON p.id = t.payment_id
         WHERE p.order_id BETWEEN $1 AND $2) AS payment_transactions,
       (SELECT count(*) FROM events e WHERE e.order_id BETWEEN $1 AND $2) AS events,
       (SELECT count(*) FROM fulfillment_orders f WHERE f.order_id BETWEEN $1 AND $2) AS fulfillment_orders,
       (SELECT count(*) FROM fulfillment_lines fl JOIN fulfillment_orders f ON f.id = fl.fulfillment_order_id
         WHERE f.order_id BETWEEN $1 AND $2) AS fulfillment_lines,
       (SELECT count(*) FROM allocations a WHERE a.order_id BETWEEN $1 AND $2 AND a.fulfillment_order_id IS NULL)
         AS unlinked_allocations,
       (SELECT count(*) FROM events e JOIN orders r ON e.data->>'reference' = r.number
         WHERE e.aggregate_type = 'InventoryLevel' AND e.type = 'STOCK_CHANGED' AND r.id BETWEEN $1 AND $2)
         AS stock_events
FROM orders o WHERE o.id BETWEEN $1 AND $2
"""


async def rows_per_order(conn, lo: int, hi: int) -> dict:
    row = dict(await conn.fetchrow(ROWS_PER_ORDER, lo, hi))
    n = row.pop("orders") or 1
    return {k: round(v / n, 3) for k, v in row.items()}


class Sampler:
    """Samples pg_stat_activity every 50 ms while a phase runs: how many of the phase's database
    sessions are running a statement, waiting for a row lock, or idle inside a transaction
    (waiting for the Python side to send the next statement)."""

    def __init__(self, dsn: str, dbname: str) -> None:
        self.dsn, self.dbname = dsn, dbname
        self.samples = {"active": 0, "lock_wait": 0, "idle_in_tx": 0}
        self.n = 0
        self._task = None

    async def __aenter__(self):
        import asyncpg  # noqa: PLC0415

        self._conn = await asyncpg.connect(self.dsn)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self):
        q = ("SELECT state, wait_event_type FROM pg_stat_activity"
             " WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
        while True:
            for r in await self._conn.fetch(q, self.dbname):
                if r["state"] == "idle in transaction":
                    self.samples["idle_in_tx"] += 1
                elif r["state"] == "active":
                    self.samples["lock_wait" if r["wait_event_type"] == "Lock" else "active"] += 1
            self.n += 1
            await asyncio.sleep(0.05)

    async def __aexit__(self, *exc):
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        await self._conn.close()

    def summary(self) -> dict:
        n = max(1, self.n)
        return {
            "avg_sessions_running": round(self.samples["active"] / n, 2),
            "avg_sessions_waiting_on_row_lock": round(self.samples["lock_wait"] / n, 2),
            "avg_sessions_idle_in_transaction": round(self.samples["idle_in_tx"] / n, 2),
        }


def quarters(res: c.LoadResult) -> list[float]:
    """Throughput of each quarter of the calls (in completion order): shows any slowdown as tables grow."""
    ends = sorted(res.ends)
    q = len(ends) // 4
    out = []
    prev = 0.0
    for k in range(1, 5):
        end = ends[min(len(ends) - 1, k * q - 1)] if k < 4 else ends[-1]
        cnt = q if k < 4 else len(ends) - 3 * q
        out.append(round(cnt / max(1e-9, end - prev), 1))
        prev = end
    return out


# -- main -------------------------------------------------------------------------------------


async def main(args) -> dict:
    import asyncpg  # noqa: PLC0415

    report: dict = {"bench": "place_order", "machine": c.machine(), "postgres": await c.pg_version(), "git": c.git_state(),
                    "orders": args.orders, "warmup": args.warmup, "concurrency": args.concurrency}
    print(f"[setup] recreating database {args.db}")
    url = await c.recreate_database(args.db)
    world = await c.migrate_and_seed(url)
    print(f"[setup] migrated and seeded: {world['variants']}")

    srv, entry = c.start_app(url, name="place-order", entry=args.app_entry, app_dir=args.app_dir)
    report["app_entry"] = entry
    print(f"[app] {entry} on {srv.base_url}")
    try:
        print(f"[app] warm-up: {args.warmup} orders")
        warm = await drive_app(srv.base_url, world["key"], start=0, count=args.warmup, concurrency=args.concurrency)
        if warm.errors:
            raise RuntimeError(f"warm-up failed: {warm.errors} errors, first: {warm.first_error}")
        app_background = await asyncio.to_thread(c.wait_until_quiet, args.wait_idle)
        cpu0 = srv.cpu_seconds()
        profiler = c.Profiler(srv.proc.pid, Path(args.profile)) if args.profile else contextlib.nullcontext()
        with c.CpuMeter() as app_meter, profiler:
            async with Sampler(c.PG_ADMIN_DSN, args.db) as app_sampler:
                app_res = await drive_app(srv.base_url, world["key"], start=args.warmup, count=args.orders,
                                          concurrency=args.concurrency)
        app_cpu = srv.cpu_seconds() - cpu0
    finally:
        srv.stop()
    if app_res.errors:
        raise RuntimeError(f"app run: {app_res.errors} errors, first: {app_res.first_error}")
    app = app_res.summary() | {
        "orders_per_second": round(app_res.rate, 1),
        "per_quarter_orders_per_second": quarters(app_res),
        "server_cpu_ms_per_order": round(app_cpu / args.orders * 1000, 2),
        "server_cpu_utilisation": round(app_cpu / app_res.seconds, 3),
        "cpu_cores_used": app_meter.cores,
        "busy_before_start": round(app_background, 3),
    } | app_sampler.summary()
    print(f"[app] {app['orders_per_second']} orders/s  p50 {app['p50_ms']} ms  p99 {app['p99_ms']} ms  "
          f"(server CPU {app['server_cpu_ms_per_order']} ms/order, {app['server_cpu_utilisation']:.0%} of one core; "
          f"cores used {app_meter.cores})")

    admin = await asyncpg.connect(url)
    try:
        last_app_id = await admin.fetchval("SELECT max(id) FROM orders")
        app_rows = await rows_per_order(admin, args.warmup + 1, last_app_id)
        wh = {r["code"]: r["id"] for r in await admin.fetch("SELECT id, code FROM warehouses")}
        actor = await admin.fetchval("SELECT 'staff:' || prefix FROM api_keys LIMIT 1")
    finally:
        await admin.close()

    def place_body(i: int) -> dict:
        return {"query": PLACE, "variables": {"input": order_input(900_000 + i)}}

    app_stmts, app_log = await c.app_statements(url, world["key"], {}, repeat_body=place_body, warm=40)
    print(f"[app] statements for one placeOrder: {app_stmts}")
    for q in app_log.prepared:
        print(f"[app]   prepared first (text not cached): {' '.join(q.split())[:160]}")

    bworld = {"channel_id": world["channel_id"], "warehouse_ids": [wh["EAST"], wh["WEST"]],
              "warehouse_codes": {v: k for k, v in wh.items()}, "actor": actor,
              # the promise made at placing time (the bench places all its orders within minutes)
              "promised": promised_ship_by(datetime.now(UTC), "STANDARD")}
    write = baseline_order_batched if args.baseline == "batched" else baseline_order
    report["baseline_style"] = args.baseline
    pool = await asyncpg.create_pool(url, min_size=20, max_size=20)
    try:
        print(f"[baseline] ({args.baseline}) warm-up: {args.warmup} orders")
        base_start = 1_000_000
        await drive_baseline(pool, bworld, start=base_start, count=args.warmup, concurrency=args.concurrency,
                             write=write)
        with c.statement_log() as log:
            await write(pool, bworld, 800_000)
        base_stmts = c.classify(log)
        print(f"[baseline] statements for one order: {base_stmts}")
        async with admin_conn(url) as conn:
            first_base_id = await conn.fetchval("SELECT max(id) FROM orders") + 1
        base_background = await asyncio.to_thread(c.wait_until_quiet, args.wait_idle)
        t0 = time.process_time()
        with c.CpuMeter() as base_meter:
            async with Sampler(c.PG_ADMIN_DSN, args.db) as base_sampler:
                base_res = await drive_baseline(pool, bworld, start=base_start + args.warmup, count=args.orders,
                                                concurrency=args.concurrency, write=write)
        base_cpu = time.process_time() - t0
    finally:
        await pool.close()
    if base_res.errors:
        raise RuntimeError(f"baseline run: {base_res.errors} errors, first: {base_res.first_error}")
    base = base_res.summary() | {
        "orders_per_second": round(base_res.rate, 1),
        "per_quarter_orders_per_second": quarters(base_res),
        "client_cpu_ms_per_order": round(base_cpu / args.orders * 1000, 2),
        "cpu_cores_used": base_meter.cores,
        "busy_before_start": round(base_background, 3),
    } | base_sampler.summary()
    print(f"[baseline] {base['orders_per_second']} orders/s  p50 {base['p50_ms']} ms  p99 {base['p99_ms']} ms  "
          f"(cores used {base_meter.cores})")

    async with admin_conn(url) as conn:
        last = await conn.fetchval("SELECT max(id) FROM orders")
        base_rows = await rows_per_order(conn, first_base_id, last)
        consistent = await conn.fetchval(
            "SELECT (SELECT coalesce(sum(allocated), 0) FROM inventory_levels)"
            " = (SELECT coalesce(sum(quantity), 0) FROM allocations WHERE status = 'ACTIVE')")
    same_rows = {k: v for k, v in app_rows.items() if k != "allocated"} == {
        k: v for k, v in base_rows.items() if k != "allocated"}
    print(f"[check] rows per order  app: {app_rows}")
    print(f"[check] rows per order  baseline: {base_rows}")
    print(f"[check] same rows per order: {same_rows}; inventory allocated = sum of allocations: {consistent}")

    if args.profile and (prof := profiler.summary()):
        report["app_profile"] = prof
        print(f"[profile] py-spy samples of the app process: {args.profile}")
        print(json.dumps(prof, indent=2))
    ratio = app_res.rate / base_res.rate
    warnings = [f"other processes used {side['cpu_cores_used']['other']} cores during the {name} run"
                for name, side in (("app", app), ("baseline", base)) if side["cpu_cores_used"]["other"] > 0.1]
    for w in warnings:
        print(f"  ! {w}", file=sys.stderr)
    report["warnings"] = warnings
    report |= {"app": app, "baseline": base, "rows_per_order": {"app": app_rows, "baseline": base_rows},
               "statements_per_order": {"app": app_stmts, "baseline": base_stmts},
               "same_rows_per_order": same_rows, "inventory_consistent": consistent,
               "ratio": round(ratio, 3), "target": TARGET, "target_met": ratio >= TARGET}
    print(f"\nratio app/baseline = {ratio:.3f} (target >= {TARGET}: {'met' if ratio >= TARGET else 'NOT met'})")
    return report


class admin_conn:  # noqa: N801
    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self):
        import asyncpg  # noqa: PLC0415

        self.conn = await asyncpg.connect(self.url)
        return self.conn

    async def __aexit__(self, *exc):
        await self.conn.close()


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=2000, help="measured orders per side (default 2000)")
    p.add_argument("--concurrency", type=int, default=16, help="orders in flight (default 16)")
    p.add_argument("--warmup", type=int, default=200, help="orders per side before measuring (default 200)")
    p.add_argument("--db", default="ordergraph_bench", help="database to recreate (default ordergraph_bench)")
    p.add_argument("--wait-idle", type=float, default=600,
                   help="seconds to wait for the machine to be quiet before each measured phase (default 600)")
    p.add_argument("--app-entry", metavar="MODULE:FACTORY",
                   help="serve this app factory instead of ordergraph.app:create_app (to measure a candidate change)")
    p.add_argument("--app-dir", help="directory to import --app-entry from")
    p.add_argument("--profile", metavar="FILE", help="py-spy the app process during the measured run; "
                   "collapsed stacks to FILE and a summary in the report")
    p.add_argument("--baseline", choices=("per-row", "batched"), default="per-row",
                   help="per-row: one statement per row written (the baseline of every figure so far); batched: "
                        "the same rows, several per statement and independent writes together, as the app writes "
                        "them on PostgreSQL (see baseline_order_batched)")
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
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    cli()
