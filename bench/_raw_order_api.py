"""The hand-written comparison for bench/order_query.py: Starlette + asyncpg, no ORM, no GraphQL.

    DATABASE_URL=postgres://… python -m uvicorn _raw_order_api:create_app --factory --app-dir bench

POST /order with {"number": "SO-000001"} and `Authorization: Bearer <api key>` answers exactly
the JSON the GraphQL API gives for `order_query.QUERY` ({"data": {"order": …}}): same fields,
same global id, same Decimal and datetime formatting. It does the same work per request as the
API: checks the API key (lookup by prefix, SHA-256 compare), then reads the order with its
channel code, its lines, their allocations with warehouse codes and the order's events.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ORDER = """
SELECT o.id, o.number, o.status, o.customer_email, o.customer_name, o.total, o.currency, o.placed_at,
       c.code AS channel_code
FROM orders o JOIN sales_channels c ON c.id = o.channel_id
WHERE o.number = $1
"""
LINES = """
SELECT id, sku, name, quantity, unit_price, allocated_quantity, backordered_quantity
FROM order_lines WHERE order_id = $1 ORDER BY position
"""
ALLOCATIONS = """
SELECT a.line_id, a.quantity, a.status, w.code AS warehouse_code
FROM allocations a JOIN warehouses w ON w.id = a.warehouse_id
WHERE a.order_id = $1 ORDER BY a.id
"""
EVENTS = "SELECT sequence, type, actor, data, created_at FROM events WHERE order_id = $1 ORDER BY id"
API_KEY = "SELECT key_hash, role FROM api_keys WHERE prefix = $1 AND revoked = false"


def _money(amount, currency: str) -> dict:
    return {"amount": str(amount), "currency": currency}


async def _viewer_ok(conn, authorization: str | None) -> bool:
    scheme, _, key = (authorization or "").partition(" ")
    parts = key.strip().split("_", 2)
    if scheme.lower() != "bearer" or len(parts) != 3 or parts[0] != "og":
        return False
    row = await conn.fetchrow(API_KEY, parts[1])
    if row is None or not hmac.compare_digest(row["key_hash"], hashlib.sha256(key.strip().encode()).hexdigest()):
        return False
    return row["role"] == "STAFF"  # staff keys read every order (partners only their channels')


async def order(request: Request) -> Response:
    body = await request.json()
    number = body.get("number")
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn:
        if not await _viewer_ok(conn, request.headers.get("authorization")):
            return JSONResponse({"errors": [{"message": "invalid or revoked credentials"}]}, status_code=401)
        o = await conn.fetchrow(ORDER, number)
        if o is None:
            return JSONResponse({"data": {"order": None}})
        lines = await conn.fetch(LINES, o["id"])
        allocations = await conn.fetch(ALLOCATIONS, o["id"])
        events = await conn.fetch(EVENTS, o["id"])
    by_line: dict[int, list] = {}
    for a in allocations:
        by_line.setdefault(a["line_id"], []).append(
            {"warehouseCode": a["warehouse_code"], "quantity": a["quantity"], "status": a["status"]}
        )
    currency = o["currency"]
    return JSONResponse({"data": {"order": {
        "id": base64.b64encode(f"Order:{o['id']}".encode()).decode(),
        "number": o["number"],
        "status": o["status"],
        "channelCode": o["channel_code"],
        "customer": {"email": o["customer_email"], "name": o["customer_name"]},
        "total": _money(o["total"], currency),
        "placedAt": o["placed_at"].isoformat(),
        "lines": [
            {
                "sku": ln["sku"], "name": ln["name"], "quantity": ln["quantity"],
                "unitPrice": _money(ln["unit_price"], currency),
                "allocatedQuantity": ln["allocated_quantity"], "backorderedQuantity": ln["backordered_quantity"],
                "allocations": by_line.get(ln["id"], []),
            }
            for ln in lines
        ],
        "timeline": [
            {"sequence": e["sequence"], "type": e["type"], "actor": e["actor"], "data": json.loads(e["data"]),
             "createdAt": e["created_at"].isoformat()}
            for e in events
        ],
    }}})


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(url: str | None = None) -> Starlette:
    url = url or os.environ["DATABASE_URL"]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.pool = await asyncpg.create_pool(url, min_size=20, max_size=20)
        try:
            yield
        finally:
            await app.state.pool.close()

    return Starlette(routes=[Route("/order", order, methods=["POST"]), Route("/healthz", healthz)], lifespan=lifespan)
