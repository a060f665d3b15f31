"""Live subscription fan-out on one API process: publish-to-receive latency and delivery.

    .venv/bin/python bench/subscriptions_fanout.py [--subscribers 1000,5000] [--rounds 20] [--clients 2]

1. Recreates the database `ordergraph_bench_subs`, migrates and seeds it (bench/_common.py),
   and starts the app as `ordergraph serve` serves it (`python -m ordergraph.cli serve`, one
   worker, no permessage-deflate) with DATABASE_URL, REDIS_URL (the Redis Streams bus) and MAX_WS_CONNECTIONS_PER_VIEWER
   raised above the largest N (every connection uses the same staff key).
2. For each N: places a fresh order, then `--clients` client processes (multiprocessing)
   open N WebSocket connections between them (`websockets` library, graphql-transport-ws,
   permessage-deflate offered as browsers do unless `--compression none`). Each one
   subscribes to the order's `orderEvents` with `after: "0"`: the 4 replayed placement
   events prove that its subscription is registered in the hub (the stream subscribes
   before it replays). /metrics must then show N connections and N active subscriptions.
3. `--warmup` rounds, then `--rounds` measured rounds. One round is one event: a placeHold
   (or releaseHold, alternately) mutation over HTTP. The next round starts once every
   subscriber has the event (or after `--round-timeout`), plus a 0.2 s pause, so each
   event is measured on its own, not behind the previous one.
4. Latency, per subscriber per event: the time the client read the event's `next` message off
   its socket minus the time just before the parent sent the mutation. Both are
   `time.monotonic()` (CLOCK_MONOTONIC, one clock for every process of the machine). This is
   an upper bound on publish-to-receive: it includes the mutation's own work up to COMMIT.
   The report also gives the latency from the event's `createdAt` (the row's insertion
   time, a few ms before COMMIT; wall clock, same machine) and from the mutation's HTTP
   response, and the spread of a round (first to last subscriber), which is the server's
   fan-out time for one event.
   Delivery: events received / (N x rounds); duplicates, gaps and error messages are counted.
Targets: N = 1 000, p99 <= 100 ms; N = 5 000, p99 <= 1 s; 100 % delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
import _ws as w  # noqa: E402

TARGETS_P99_MS = {1000: 100.0, 5000: 1000.0}


def target_for(n: int) -> float | None:
    """p99 target in ms for N subscribers: the brief gives 1 000 and 5 000."""
    return TARGETS_P99_MS.get(n)


async def run_phase(http, srv: c.Server, world: dict, n: int, idx: int, args) -> dict:
    import asyncpg  # noqa: PLC0415

    order = await w.place_order(http, 1000 + idx)
    print(f"[N={n}] order {order['number']}; opening {n} subscriptions from {args.clients} client processes")
    rss0 = w.rss_kib(srv.proc.pid)
    clients = w.Clients(w.split(n, args.clients), url=srv.base_url, key=world["key"], order_id=order["id"],
                        compression=None if args.compression == "none" else "deflate")
    out: dict = {"subscribers": n, "order": order["number"], "client_processes": args.clients}
    try:
        setup = await clients.wait_ready(args.connect_timeout)
        g = await w.gauges(http)
        out |= {"setup": setup, "gauges_when_subscribed": g, "rss_kib_before": rss0,
                "rss_kib_subscribed": w.rss_kib(srv.proc.pid), "server_fds": w.open_fds(srv.proc.pid)}
        print(f"[N={n}] subscribed {setup['subscribed']}/{n} in {setup['seconds']} s "
              f"(failed {setup['failed']} {setup['failure_samples']}); gauges {g}")
        if setup["subscribed"] == 0:
            raise RuntimeError(f"no subscription could be opened: {setup}")

        seq = w.PLACED_EVENTS
        held = False

        async def one_round() -> tuple[int, float, float, bool]:
            nonlocal seq, held
            query = RELEASE if held else HOLD
            seq += 1
            t_send = time.monotonic()
            data = await w.graphql(http, query, {"id": order["id"]})
            t_resp = time.monotonic()
            res = next(iter(data.values()))
            if res["__typename"] != "OrderPayload":
                raise RuntimeError(f"hold/release refused: {res}")
            held = not held
            complete = await clients.wait_got(seq, args.round_timeout)
            clients.check_alive()
            await asyncio.sleep(0.2)
            return seq, t_send, t_resp, complete

        for _ in range(args.warmup):
            await one_round()
        busy = await asyncio.to_thread(c.wait_until_quiet, args.wait_idle)
        clients.check_alive()
        g = await w.gauges(http)
        if g.get("active_subscriptions") != setup["subscribed"]:
            raise RuntimeError(f"before the measured rounds /metrics shows {g}, {setup['subscribed']} were subscribed")
        rounds = []
        srv_cpu0, cli_cpu0 = srv.cpu_seconds(), clients.cpu_seconds()
        profiler = (c.Profiler(srv.proc.pid, Path(f"{args.profile}.{n}")) if args.profile
                    else contextlib.nullcontext())
        with c.CpuMeter() as meter, profiler:
            t0 = time.monotonic()
            for _ in range(args.rounds):
                rounds.append(await one_round())
            wall = time.monotonic() - t0
        srv_cpu, cli_cpu = srv.cpu_seconds() - srv_cpu0, clients.cpu_seconds() - cli_cpu0
        if args.profile and profiler.summary() is not None:
            out["server_profile"] = w.profile_summary(Path(f"{args.profile}.{n}"))
        reports = await clients.report()
        out["client_exit_codes_before_kill"] = clients.exit_codes()
        if len(reports) < len(clients.procs):
            print(f"  ! only {len(reports)} of {len(clients.procs)} client processes answered; exit codes "
                  f"{out['client_exit_codes_before_kill']}", file=sys.stderr)
        g_after = await w.gauges(http)
        rss1 = w.rss_kib(srv.proc.pid)
    finally:
        clients.kill()

    conn = await asyncpg.connect(c.db_url(args.db))
    try:
        rows = await conn.fetch(
            "SELECT e.sequence, e.type, e.created_at FROM events e JOIN orders o ON o.id = e.order_id"
            " WHERE o.number = $1 ORDER BY e.sequence", order["number"])
    finally:
        await conn.close()
    created_wall = {r["sequence"]: r["created_at"].timestamp() for r in rows}
    expected_types = {s: ("HOLD_RELEASED" if (s - w.PLACED_EVENTS) % 2 == 0 else "HOLD_PLACED")
                      for s in range(w.PLACED_EVENTS + 1, seq + 1)}
    log_ok = [(r["sequence"], r["type"]) for r in rows if r["sequence"] > w.PLACED_EVENTS] == sorted(expected_types.items())

    # monotonic <-> wall clock, to place createdAt (wall) on the monotonic axis
    offset = time.time() - time.monotonic()
    lat, lat_created, lat_resp, spreads, per_round = [], [], [], [], []
    received = 0
    for s, t_send, t_resp, complete in rounds:
        times = sorted(t for r in reports for t in r["recv"].get(s, ()))
        received += len(times)
        lat += [t - t_send for t in times]
        lat_resp += [t - t_resp for t in times]
        if s in created_wall:
            created_mono = created_wall[s] - offset
            lat_created += [t - created_mono for t in times]
        if times:
            spreads.append(times[-1] - times[0])
        per_round.append({"seq": s, "received": len(times), "mutation_ms": round((t_resp - t_send) * 1000, 1),
                          "first_ms": round((times[0] - t_send) * 1000, 1) if times else None,
                          "last_ms": round((times[-1] - t_send) * 1000, 1) if times else None,
                          "complete": complete})
    for xs in (lat, lat_created, lat_resp, spreads):
        xs.sort()

    def ms(xs, q):
        return round(w.pct(xs, q) * 1000, 1) if xs else None

    expected = n * args.rounds
    target = target_for(n)
    p99 = ms(lat, 99)
    delivered = received / expected if expected else 0.0
    mutation_ms = sorted(r["mutation_ms"] for r in per_round)
    out |= {
        "rounds": args.rounds, "warmup_rounds": args.warmup, "busy_before_start": round(busy, 3),
        "expected": expected, "received": received, "delivery_ratio": round(delivered, 6),
        "duplicates": sum(r["dups"] for r in reports), "gaps": sum(r["gaps"] for r in reports),
        "error_messages": sum(r["errors"] for r in reports), "first_error": [e for r in reports for e in r["first_error"]][:1],
        "closed_by_server": sum(r["closed_by_server"] for r in reports),
        "event_log_as_expected": log_ok,
        "latency_from_send_ms": {"p50": ms(lat, 50), "p90": ms(lat, 90), "p99": p99, "max": ms(lat, 100)},
        "latency_from_created_at_ms": {"p50": ms(lat_created, 50), "p99": ms(lat_created, 99), "max": ms(lat_created, 100)},
        "latency_from_mutation_response_ms": {"p50": ms(lat_resp, 50), "p99": ms(lat_resp, 99), "max": ms(lat_resp, 100)},
        "mutation_http_ms": {"p50": w.pct(mutation_ms, 50), "max": mutation_ms[-1] if mutation_ms else None},
        "round_spread_ms": {"p50": ms(spreads, 50), "max": ms(spreads, 100)},
        "server_cpu_seconds": round(srv_cpu, 2),
        "server_cpu_us_per_delivery": round(srv_cpu / max(received, 1) * 1e6, 1),
        "server_cpu_utilisation": round(srv_cpu / wall, 3),
        "client_cpu_utilisation": round(cli_cpu / wall, 3),
        "cpu_cores_used": meter.cores,
        "gauges_after_rounds": g_after, "rss_kib_after_rounds": rss1,
        "per_round": per_round,
        "target_p99_ms": target,
        "target_met": None if target is None else bool(p99 is not None and p99 <= target and delivered == 1.0),
    }
    lf = out["latency_from_send_ms"]
    print(f"[N={n}] delivered {received}/{expected} ({delivered:.2%}), dups {out['duplicates']} gaps {out['gaps']} "
          f"errors {out['error_messages']}; event log as expected: {log_ok}")
    print(f"[N={n}] latency from send: p50 {lf['p50']} ms  p90 {lf['p90']} ms  p99 {lf['p99']} ms  max {lf['max']} ms; "
          f"from createdAt p99 {out['latency_from_created_at_ms']['p99']} ms; mutation p50 {out['mutation_http_ms']['p50']} ms; "
          f"round spread p50 {out['round_spread_ms']['p50']} ms")
    print(f"[N={n}] server CPU {out['server_cpu_utilisation']:.0%} of one core, {out['server_cpu_us_per_delivery']} us per "
          f"delivery; clients {out['client_cpu_utilisation']:.0%}; cores {meter.cores}")
    if target is not None:
        print(f"[N={n}] target p99 <= {target:.0f} ms and 100 % delivered: {'met' if out['target_met'] else 'NOT met'}")
    if "server_profile" in out:
        print(json.dumps(out["server_profile"], indent=2))
    # the server lets go of every subscription once the clients are gone
    g_end, waited = await w.wait_gauges(http, ws=0, subs=0, timeout=120)
    out |= {"gauges_after_disconnect": g_end, "seconds_to_zero": round(waited, 1)}
    print(f"[N={n}] clients killed: gauges {g_end} after {waited:.1f} s")
    return out


HOLD, RELEASE = w.HOLD, w.RELEASE


async def main(args) -> dict:
    import httpx  # noqa: PLC0415

    sizes = [int(x) for x in args.subscribers.split(",")]
    w.raise_nofile(max(sizes) + 1024)  # the app inherits it
    report: dict = {"bench": "subscriptions_fanout", "machine": c.machine(), "postgres": await c.pg_version(),
                    "git": c.git_state(), "compression": args.compression, "client_processes": args.clients}
    print(f"[setup] recreating database {args.db}")
    url = await c.recreate_database(args.db)
    world = await c.migrate_and_seed(url)
    w.reset_stream()
    shim_env = {}
    if args.gc:
        shim_env["BENCH_GC"] = args.gc
    if args.gc_freeze:
        shim_env["BENCH_GC_FREEZE"] = "1"
    srv = w.start_app(url, max_ws=max(sizes) + 100, name="subs-fanout", shim_env=shim_env or None)
    entry = f"{w.SHIM_ENTRY} {shim_env}" if shim_env else w.SERVE_ENTRY
    report["app_entry"] = entry
    print(f"[app] {entry} on {srv.base_url} (REDIS_URL {w.REDIS_URL}, pid {srv.proc.pid})")
    phases = []
    try:
        async with httpx.AsyncClient(base_url=srv.base_url, timeout=60,
                                     headers={"Authorization": f"Bearer {world['key']}"}) as http:
            for i, n in enumerate(sizes):
                phases.append(await run_phase(http, srv, world, n, i, args))
    finally:
        srv.stop()
        w._kill_procs()
    report["phases"] = phases
    report["targets_met"] = {str(p["subscribers"]): p["target_met"] for p in phases}
    warnings = [f"other processes used {p['cpu_cores_used']['other']} cores during N={p['subscribers']}"
                for p in phases if p["cpu_cores_used"]["other"] > 0.1]
    for msg in warnings:
        print(f"  ! {msg}", file=sys.stderr)
    report["warnings"] = warnings
    return report


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subscribers", default="1000,5000", help="comma-separated N (default 1000,5000)")
    p.add_argument("--rounds", type=int, default=20, help="measured events per N (default 20)")
    p.add_argument("--warmup", type=int, default=2, help="events before measuring (default 2)")
    p.add_argument("--clients", type=int, default=2, help="client processes sharing the connections (default 2)")
    p.add_argument("--compression", choices=("deflate", "none"), default="deflate",
                   help="permessage-deflate offered by the clients, as browsers do (default), or not")
    p.add_argument("--round-timeout", type=float, default=30, help="seconds to wait for one event everywhere")
    p.add_argument("--connect-timeout", type=float, default=600, help="seconds to open all connections")
    p.add_argument("--db", default="ordergraph_bench_subs", help="database to recreate (default ordergraph_bench_subs)")
    p.add_argument("--wait-idle", type=float, default=600,
                   help="seconds to wait for the machine to be quiet before each measured phase (default 600)")
    p.add_argument("--profile", metavar="FILE", help="py-spy the app during the measured rounds; raw stacks to FILE.N")
    p.add_argument("--gc", metavar="T0,T1,T2", help="experiment: serve through bench/_subs_shim.py with "
                   "gc.set_threshold(T0, T1, T2) in the app process")
    p.add_argument("--gc-freeze", action="store_true", help="experiment: gc.freeze() in the app after startup (shim)")
    p.add_argument("--keep-db", action="store_true", help="leave the database in place afterwards")
    args = p.parse_args()
    report = None
    try:
        report = asyncio.run(main(args))
    finally:
        c._kill_children()
        w._kill_procs()
        if not args.keep_db:
            try:
                asyncio.run(c.drop_database(args.db))
            except Exception as exc:  # noqa: BLE001
                print(f"(could not drop {args.db}: {exc})", file=sys.stderr)
    print(json.dumps(report, sort_keys=True, default=str))


if __name__ == "__main__":
    cli()
