"""`order(number)` read throughput: the GraphQL API vs a hand-written Starlette + asyncpg endpoint.

    .venv/bin/python bench/order_query.py [--orders 200] [--concurrency 32] [--duration 15] [--client auto|wrk|httpx]

1. Recreates the database `ordergraph_bench_query`, migrates and seeds it (as place_order.py)
   and places `--orders` orders through the API (3 lines, tok_approve: allocated, 4 events each).
2. Servers, each `python -m uvicorn … --workers 1` in its own subprocess on the same database:
   - the app: `ordergraph.app:create_app --factory`, POST /graphql with QUERY below;
   - the baseline: bench/_raw_order_api.py, POST /order {"number": …}, the same JSON.
   Before measuring, the answers of both for a sample of orders must be identical.
3. Load, the same for both, one after the other: `--concurrency` connections for `--warmup`
   seconds (not counted) then `--duration` seconds, each request for a random order number.
   The client is wrk (1 thread, a Lua script) when installed, else httpx (one asyncio process).
4. Prints requests/s, p50/p99 latency, the ratio app/baseline (target >= 0.5) and one JSON line.

The order response cache (src/ordergraph/response_cache.py) is measured with
`--app-entry ordergraph.response_cache:create_cached_app --app-dir src`: after the warm-up every
request is a hit (no writes during the run), validated by one statement; the statement count
printed is then a hit's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
from place_order import drive_app  # noqa: E402

TARGET = 0.5

QUERY = """query One($n: String!) {
  order(number: $n) {
    id number status channelCode
    customer { email name }
    total { amount currency }
    placedAt
    lines {
      sku name quantity unitPrice { amount currency } allocatedQuantity backorderedQuantity
      allocations { warehouseCode quantity status }
    }
    timeline { sequence type actor data createdAt }
  }
}"""


class Target:
    def __init__(self, name: str, base_url: str, key: str) -> None:
        self.name, self.base_url, self.key = name, base_url, key
        self.graphql = name == "app"

    @property
    def path(self) -> str:
        return "/graphql" if self.graphql else "/order"

    def body(self, number: str) -> dict:
        if self.graphql:
            return {"query": QUERY, "variables": {"n": number}}
        return {"number": number}

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}


# -- clients ----------------------------------------------------------------------------------


async def fetch_one(http, target: Target, number: str) -> dict:
    resp = await http.post(target.base_url + target.path, json=target.body(number), headers=target.headers)
    resp.raise_for_status()
    return resp.json()


async def httpx_load(target: Target, numbers: list[str], *, concurrency: int, duration: float) -> c.LoadResult:
    import httpx  # noqa: PLC0415

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    rnd = random.Random(7)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        async def call(_: int) -> str | None:
            number = rnd.choice(numbers)
            resp = await http.post(target.base_url + target.path, json=target.body(number), headers=target.headers)
            if resp.status_code != 200:
                return f"HTTP {resp.status_code}: {resp.text[:200]}"
            if b'"errors"' in resp.content or b'"order":null' in resp.content:
                return f"bad answer: {resp.text[:200]}"
            return None

        return await c.run_load(call, concurrency=concurrency, duration=duration)


WRK_LUA = r"""
local numbers = {%(numbers)s}
local path = "%(path)s"
local graphql = %(graphql)s
local query = %(query)s
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"

function init(args)
  math.randomseed(7)
end

function request()
  local n = numbers[math.random(#numbers)]
  local body
  if graphql then
    body = '{"query":' .. query .. ',"variables":{"n":"' .. n .. '"}}'
  else
    body = '{"number":"' .. n .. '"}'
  end
  return wrk.format(nil, path, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"mean_us":%%.1f,' ..
    '"non_2xx":%%d,"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    e.status, e.connect, e.read, e.write, e.timeout))
end
"""


def wrk_load(target: Target, numbers: list[str], *, concurrency: int, duration: float) -> c.LoadResult:
    script = WRK_LUA % {
        "numbers": ",".join(json.dumps(n) for n in numbers),
        "path": target.path,
        "graphql": "true" if target.graphql else "false",
        "query": json.dumps(json.dumps(QUERY)),  # a Lua string holding the JSON-encoded query
        "key": target.key,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
        lua = fh.name
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--timeout", "30s", "-s", lua,
             target.base_url + target.path],
            capture_output=True, text=True, timeout=duration + 60, check=True,
        ).stdout
    finally:
        Path(lua).unlink(missing_ok=True)
    m = re.search(r"^WRKJSON (\{.*\})$", out, re.M)
    if not m:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    d = json.loads(m.group(1))
    errors = d["non_2xx"] + d["connect"] + d["read"] + d["write"] + d["timeout"]
    res = c.LoadResult(d["requests"], errors, d["duration_us"] / 1e6,
                       first_error=f"wrk errors: {d}" if errors else None)
    res.wrk = d
    return res


def summarize(res: c.LoadResult) -> dict:
    if not hasattr(res, "wrk"):
        return res.summary()
    d = res.wrk
    return {"requests": res.count, "errors": res.errors, "seconds": round(res.seconds, 3),
            "per_second": round(res.rate, 1), "p50_ms": round(d["p50_us"] / 1000, 2),
            "p99_ms": round(d["p99_us"] / 1000, 2), "mean_ms": round(d["mean_us"] / 1000, 2)}


async def measure(target: Target, server: c.Server, numbers: list[str], args, client: str, profile: str | None) -> dict:
    load = (lambda **kw: asyncio.to_thread(wrk_load, target, numbers, **kw)) if client == "wrk" else (
        lambda **kw: httpx_load(target, numbers, **kw))
    await load(concurrency=args.concurrency, duration=args.warmup)
    background = await asyncio.to_thread(c.wait_until_quiet, args.wait_idle)
    cpu0 = server.cpu_seconds()
    profiler = c.Profiler(server.proc.pid, Path(profile)) if profile else contextlib.nullcontext()
    with c.CpuMeter() as meter, profiler:
        res = await load(concurrency=args.concurrency, duration=args.duration)
    cpu = server.cpu_seconds() - cpu0
    if res.errors:
        raise RuntimeError(f"{target.name}: {res.errors} errors; first: {res.first_error}")
    out = summarize(res) | {
        "server_cpu_ms_per_request": round(cpu / max(res.count, 1) * 1000, 3),
        "server_cpu_utilisation": round(cpu / res.seconds, 3),
        "cpu_cores_used": meter.cores,
        "busy_before_start": round(background, 3),
    }
    if profile and (prof := profiler.summary()):
        out["profile"] = prof
    print(f"[{target.name}] {out['per_second']} req/s  p50 {out['p50_ms']} ms  p99 {out['p99_ms']} ms  "
          f"(server CPU {out['server_cpu_ms_per_request']} ms/request, {out['server_cpu_utilisation']:.0%} of one core; "
          f"cores used {meter.cores})")
    return out


async def main(args) -> dict:
    import httpx  # noqa: PLC0415

    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "httpx"
    elif client == "wrk" and not shutil.which("wrk"):
        print("  ! wrk not installed (apt-get install -y wrk); using httpx", file=sys.stderr)
        client = "httpx"
    report: dict = {"bench": "order_query", "machine": c.machine(), "postgres": await c.pg_version(), "git": c.git_state(),
                    "orders": args.orders, "concurrency": args.concurrency, "duration_s": args.duration,
                    "warmup_s": args.warmup, "client": client}
    print(f"[setup] recreating database {args.db}")
    url = await c.recreate_database(args.db)
    world = await c.migrate_and_seed(url)
    app_srv, entry = c.start_app(url, name="order-query-app", entry=args.app_entry, app_dir=args.app_dir)
    report["app_entry"] = entry
    print(f"[app] {entry} on {app_srv.base_url}")
    placed = await drive_app(app_srv.base_url, world["key"], start=0, count=args.orders, concurrency=8)
    if placed.errors:
        raise RuntimeError(f"placing orders: {placed.errors} errors; first: {placed.first_error}")
    async with c_admin(url) as conn:
        numbers = [r["number"] for r in await conn.fetch("SELECT number FROM orders ORDER BY id")]
    print(f"[setup] {len(numbers)} orders placed through the API")

    raw_srv = c.start_uvicorn("_raw_order_api:create_app", {"DATABASE_URL": url}, factory=True,
                              app_dir=str(c.ROOT / "bench"), name="order-query-raw")
    print(f"[baseline] bench/_raw_order_api.py on {raw_srv.base_url}")
    app_t = Target("app", app_srv.base_url, world["key"])
    raw_t = Target("baseline", raw_srv.base_url, world["key"])
    async with httpx.AsyncClient(timeout=30) as http:
        for number in random.Random(1).sample(numbers, min(20, len(numbers))):
            a, b = await fetch_one(http, app_t, number), await fetch_one(http, raw_t, number)
            if "errors" in a or a != b:
                raise RuntimeError(f"answers differ for {number}:\napp:      {json.dumps(a)}\nbaseline: {json.dumps(b)}")
        sample = await fetch_one(http, app_t, numbers[0])
    order = sample["data"]["order"]
    report["answer"] = {"bytes": len(json.dumps(sample)), "lines": len(order["lines"]), "events": len(order["timeline"])}
    print(f"[check] identical answers for 20 orders ({report['answer']})")
    app_stmts = await entry_statements(url, world["key"], app_t.body(numbers[0]), args.app_entry, args.app_dir)
    raw_stmts = await raw_statements(url, raw_t, numbers[0])
    report["statements_per_request"] = {"app": app_stmts, "baseline": raw_stmts}
    print(f"[check] statements per request  app: {app_stmts}")
    print(f"[check] statements per request  baseline: {raw_stmts}")

    try:
        print(f"[app] {client}: {args.concurrency} connections, {args.warmup}s warm-up + {args.duration}s")
        app = await measure(app_t, app_srv, numbers, args, client, args.profile)
        print(f"[baseline] {client}: {args.concurrency} connections, {args.warmup}s warm-up + {args.duration}s")
        raw = await measure(raw_t, raw_srv, numbers, args, client, None)
    finally:
        app_srv.stop()
        raw_srv.stop()
    ratio = app["per_second"] / raw["per_second"]
    warnings = []
    for name, side in (("app", app), ("baseline", raw)):
        used = sum(side["cpu_cores_used"].values())
        if side["server_cpu_utilisation"] < 0.8:
            why = (f"the machine was saturated ({used:.2f} of {os.cpu_count()} cores busy: server, PostgreSQL "
                   f"and the {client} client share them)" if used >= 0.9 * (os.cpu_count() or 1)
                   else f"it was not CPU-bound but waited on PostgreSQL or the {client} client "
                        f"({used:.2f} of {os.cpu_count()} cores busy in all)")
            warnings.append(f"the {name} server used only {side['server_cpu_utilisation']:.0%} of its core; {why}")
        if side["cpu_cores_used"]["other"] > 0.1:
            warnings.append(f"other processes used {side['cpu_cores_used']['other']} cores during the {name} run")
    for w in warnings:
        print(f"  ! {w}", file=sys.stderr)
    # With httpx the client often cannot load the hand-written server: the ratio then says
    # more about httpx than about the app.
    conclusive = not (client == "httpx" and raw["server_cpu_utilisation"] < 0.8)
    met = (ratio >= TARGET) if conclusive else None
    report |= {"app": app, "baseline": raw, "ratio": round(ratio, 3), "target": TARGET, "target_met": met,
               "warnings": warnings}
    verdict = "met" if met else "NOT met" if conclusive else (
        "INCONCLUSIVE: the httpx client, not the baseline server, was the limit; install wrk")
    print(f"\nratio app/baseline = {ratio:.3f} (target >= {TARGET}: {verdict})")
    return report


async def entry_statements(url: str, key: str, body: dict, entry: str | None, app_dir: str | None) -> dict:
    """Statements the served app sends for one request, after one identical request: for a
    factory taking `(settings, manage_db=False)` (the cached app) that second request is a
    cache hit; any other entry is counted as the default app."""
    import importlib  # noqa: PLC0415
    import inspect  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    if not entry:
        return (await c.app_statements(url, key, body))[0]
    if app_dir and app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    module, _, name = entry.partition(":")
    factory = getattr(importlib.import_module(module), name)
    if "manage_db" not in inspect.signature(factory).parameters:
        return (await c.app_statements(url, key, body))[0]
    from ordergraph.db import close_db, init_db  # noqa: PLC0415

    settings = c._settings(url)
    await init_db(settings)
    try:
        app = factory(settings, manage_db=False)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
            (await http.post("/graphql", json=body, headers=headers)).raise_for_status()
            with c.statement_log() as log:
                (await http.post("/graphql", json=body, headers=headers)).raise_for_status()
    finally:
        await close_db()
    return c.classify(log)


async def raw_statements(url: str, target: Target, number: str) -> dict:
    """Statements the hand-written endpoint sends for one request (served in this process)."""
    import httpx  # noqa: PLC0415

    from _raw_order_api import create_app  # noqa: PLC0415

    raw = create_app(url)
    async with raw.router.lifespan_context(raw):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=raw), base_url="http://bench") as http:
            (await http.post(target.path, json=target.body(number), headers=target.headers)).raise_for_status()
            with c.statement_log() as log:
                (await http.post(target.path, json=target.body(number), headers=target.headers)).raise_for_status()
    return c.classify(log)


@contextlib.asynccontextmanager
async def c_admin(url: str):
    import asyncpg  # noqa: PLC0415

    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=200, help="orders to place before reading (default 200)")
    p.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    p.add_argument("--duration", type=float, default=15, help="measured seconds per server (default 15)")
    p.add_argument("--warmup", type=float, default=3, help="warm-up seconds per server (default 3)")
    p.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto",
                   help="load generator (default: wrk when installed, else httpx)")
    p.add_argument("--wait-idle", type=float, default=600,
                   help="seconds to wait for the machine to be quiet before each measured phase (default 600)")
    p.add_argument("--db", default="ordergraph_bench_query", help="database to recreate (default ordergraph_bench_query)")
    p.add_argument("--app-entry", metavar="MODULE:FACTORY",
                   help="serve this app factory instead of ordergraph.app:create_app (to measure a candidate change); "
                        "the order response cache: ordergraph.response_cache:create_cached_app (with --app-dir src)")
    p.add_argument("--app-dir", help="directory to import --app-entry from")
    p.add_argument("--profile", metavar="FILE", help="py-spy the app process during its measured run")
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
