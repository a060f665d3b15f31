"""Memory of live subscriptions on one API process, and clean-up after abrupt disconnects.

    .venv/bin/python bench/subscriptions_memory.py [--idle 2000] [--modes deflate,none] [--wave 5000] [--waves 3]

The app is served as in subscriptions_fanout.py: `python -m ordergraph.cli serve` (one
worker, serve's options) on PostgreSQL + Redis, MAX_WS_CONNECTIONS_PER_VIEWER raised. Every
connection is a graphql-transport-ws WebSocket (`websockets` library, in client processes)
subscribed to one order's `orderEvents` with `after: "0"`. It counts as subscribed once the
order's past events have been replayed to it, which happens after its hub registration.

1. Memory per idle subscribed connection, on a fresh app process per mode (`--modes`:
   `deflate` = the client offers permessage-deflate as browsers do (`ordergraph serve`
   declines it unless started with --ws-per-message-deflate);
   `none` = no compression):
   - warm-up: 200 connections subscribe, receive one event and are dropped, so one-time
     allocations (caches, imports, pools) are not counted;
   - VmRSS of the app process (median of 5 readings of /proc/PID/status, 0.2 s apart);
   - `--idle` K connections subscribe; /metrics must show K connections and K active
     subscriptions; after `--settle` seconds, VmRSS again. (after - before) / K is the
     figure. Target: <= 20 KiB.
   - Then one event is delivered to all K, and VmRSS is read a third time: the cost per
     connection once it has sent something.
2. Abrupt disconnects, on another fresh app process: `--waves` waves. In each wave, `--wave`
   connections subscribe and receive one event, then the client processes are SIGKILLed. The
   kernel closes their sockets: no `complete`, no close frame. The script reads how long
   `ordergraph_active_subscriptions` and `ordergraph_ws_connections` take to return to 0,
   and VmRSS and open file descriptors after each wave. A new subscriber must still get an
   event at the end.
With `--object-counts` (a diagnostic, not the measure) the app is served through
bench/_subs_shim.py, which reports the live Python objects and asyncio tasks after each wave;
the idle measure then forces a full gc.collect() in the app before the baseline and after
the K connections, and reports RSS and objects per connection once garbage is collected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
import _ws as w  # noqa: E402

TARGET_KIB = 20.0


class Session:
    """One app process and one order, with the number of events the order has so far."""

    def __init__(self, srv: c.Server, http, key: str, order: dict) -> None:
        self.srv, self.http, self.key, self.order = srv, http, key, order
        self.events = w.PLACED_EVENTS
        self.held = False

    @property
    def pid(self) -> int:
        return self.srv.proc.pid

    async def subscribe(self, n: int, processes: int, compression: str | None, timeout: float) -> tuple[w.Clients, dict]:
        clients = w.Clients(w.split(n, processes), url=self.srv.base_url, key=self.key, order_id=self.order["id"],
                            compression=compression, replay=self.events)
        setup = await clients.wait_ready(timeout)
        if setup["subscribed"] != n:
            clients.kill()
            raise RuntimeError(f"only {setup['subscribed']} of {n} connections subscribed: {setup}")
        g, waited = await w.wait_gauges(self.http, ws=n, subs=n, timeout=30)
        if g.get("active_subscriptions") != n or g.get("ws_connections") != n:
            clients.kill()
            raise RuntimeError(f"/metrics shows {g} with {n} subscribed connections")
        return clients, setup

    async def event(self, clients: w.Clients, timeout: float = 120) -> bool:
        """One event (placeHold or releaseHold) delivered to every subscribed connection."""
        data = await w.graphql(self.http, w.RELEASE if self.held else w.HOLD, {"id": self.order["id"]})
        res = next(iter(data.values()))
        if res["__typename"] != "OrderPayload":
            raise RuntimeError(f"hold/release refused: {res}")
        self.held = not self.held
        self.events += 1
        complete = await clients.wait_got(self.events, timeout)
        clients.check_alive()
        return complete

    async def drop(self, clients: w.Clients, timeout: float = 120) -> tuple[dict, float]:
        clients.kill()
        return await w.wait_gauges(self.http, ws=0, subs=0, timeout=timeout)


async def open_session(url: str, world: dict, *, max_ws: int, name: str, n: int, object_counts: bool = False):
    import httpx  # noqa: PLC0415

    srv = w.start_app(url, max_ws=max_ws, name=name, shim_env={"BENCH_OBJECT_COUNTS": "1"} if object_counts else None)
    http = httpx.AsyncClient(base_url=srv.base_url, timeout=60, headers={"Authorization": f"Bearer {world['key']}"})
    order = await w.place_order(http, n)
    return Session(srv, http, world["key"], order)


async def warm_up(s: Session, compression: str | None, args) -> None:
    clients, _ = await s.subscribe(200, 1, compression, args.connect_timeout)
    await s.event(clients)
    g, _ = await s.drop(clients)
    if g.get("active_subscriptions") != 0:
        raise RuntimeError(f"warm-up connections not released: {g}")
    await asyncio.sleep(2)


async def idle_memory(url: str, world: dict, mode: str, args) -> dict:
    compression = None if mode == "none" else "deflate"
    s = await open_session(url, world, max_ws=args.idle + 500, name=f"subs-mem-{mode}", n=10 + len(mode),
                           object_counts=args.object_counts)

    async def collected() -> dict | None:
        """With --object-counts: a full gc.collect() in the app, then its live objects."""
        return (await s.http.get("/debug/objects?collect=1")).json() if args.object_counts else None

    try:
        await warm_up(s, compression, args)
        await asyncio.to_thread(c.wait_until_quiet, args.wait_idle)
        objs0 = await collected()
        before = await asyncio.to_thread(w.settled_rss_kib, s.pid)
        fds0 = w.open_fds(s.pid)
        clients, setup = await s.subscribe(args.idle, args.clients, compression, args.connect_timeout)
        await asyncio.sleep(args.settle)
        idle = await asyncio.to_thread(w.settled_rss_kib, s.pid)
        g = await w.gauges(s.http)
        fds1 = w.open_fds(s.pid)
        gc_figures = {}
        if args.object_counts:  # what is live, against what is uncollected garbage
            objs1 = await collected()
            after_gc = await asyncio.to_thread(w.settled_rss_kib, s.pid)
            gc_figures = {"python_objects_per_connection": round((objs1["total"] - objs0["total"]) / args.idle, 1),
                          "asyncio_tasks_per_connection": round((objs1["tasks"] - objs0["tasks"]) / args.idle, 2),
                          "rss_kib_idle_after_full_gc": after_gc,
                          "kib_per_idle_connection_after_full_gc": round((after_gc - before) / args.idle, 2)}
            print(f"[idle/{mode}] after a full gc.collect() in the app: RSS {after_gc} KiB = "
                  f"{gc_figures['kib_per_idle_connection_after_full_gc']} KiB per connection; "
                  f"{gc_figures['python_objects_per_connection']} live Python objects and "
                  f"{gc_figures['asyncio_tasks_per_connection']} tasks per connection")
        complete = await s.event(clients)
        await asyncio.sleep(args.settle)
        after_event = await asyncio.to_thread(w.settled_rss_kib, s.pid)
        g_end, waited = await s.drop(clients)
        per = (idle - before) / args.idle
        out = {
            "mode": mode, "connections": args.idle, "setup_seconds": setup["seconds"], "gauges": g,
            "rss_kib_before": before, "rss_kib_idle": idle, "rss_kib_after_one_event": after_event,
            "kib_per_idle_connection": round(per, 2),
            "kib_per_connection_after_one_event": round((after_event - before) / args.idle, 2),
            "event_delivered_to_all": complete, "server_fds_added": fds1 - fds0,
            "gauges_after_drop": g_end, "seconds_to_zero": round(waited, 1),
            "target_kib": TARGET_KIB, "target_met": per <= TARGET_KIB,
        } | gc_figures
        print(f"[idle/{mode}] {args.idle} subscribed idle connections: RSS {before} -> {idle} KiB = "
              f"{per:.1f} KiB per connection (target <= {TARGET_KIB:.0f}: {'met' if per <= TARGET_KIB else 'NOT met'}); "
              f"after one event {out['kib_per_connection_after_one_event']} KiB per connection")
        return out
    finally:
        await s.http.aclose()
        s.srv.stop()
        w._kill_procs()


async def disconnect_waves(url: str, world: dict, args) -> dict:
    compression = None if args.wave_compression == "none" else "deflate"
    s = await open_session(url, world, max_ws=args.wave + 500, name="subs-waves", n=30, object_counts=args.object_counts)

    async def objects() -> dict | None:
        """Live objects and tasks in the app (bench/_subs_shim.py), garbage not collected first."""
        if not args.object_counts:
            return None
        return (await s.http.get("/debug/objects")).json()

    try:
        await warm_up(s, compression, args)
        await asyncio.to_thread(c.wait_until_quiet, args.wait_idle)
        base = await asyncio.to_thread(w.settled_rss_kib, s.pid)
        fds0 = w.open_fds(s.pid)
        objs0 = await objects()
        print(f"[waves] app RSS {base} KiB, {fds0} open fds before the first wave"
              + (f", {objs0['total']} Python objects, {objs0['tasks']} tasks" if objs0 else ""))
        snaps = [objs0]
        waves = []
        for i in range(1, args.waves + 1):
            clients, setup = await s.subscribe(args.wave, args.clients, compression, args.connect_timeout)
            g_peak = await w.gauges(s.http)
            complete = await s.event(clients)
            peak = w.rss_kib(s.pid)
            t0 = time.monotonic()
            g_end, waited = await s.drop(clients, timeout=args.zero_timeout)
            await asyncio.sleep(args.settle)
            after = await asyncio.to_thread(w.settled_rss_kib, s.pid)
            fds = w.open_fds(s.pid)
            objs = await objects()
            snaps.append(objs)
            wave = {"wave": i, "connections": args.wave, "setup_seconds": setup["seconds"], "gauges_subscribed": g_peak,
                    "event_delivered_to_all": complete, "rss_kib_peak": peak, "gauges_after_kill": g_end,
                    "seconds_to_zero": round(waited, 1), "rss_kib_after": after, "open_fds_after": fds,
                    "zero": g_end.get("active_subscriptions") == 0 and g_end.get("ws_connections") == 0}
            if objs:
                wave |= {"python_objects_after": objs["total"], "asyncio_tasks_after": objs["tasks"]}
            waves.append(wave)
            print(f"[waves] wave {i}: {args.wave} subscribed ({setup['seconds']} s), one event to all: {complete}; "
                  f"RSS peak {peak} KiB; killed -> gauges {g_end} after {waited:.1f} s "
                  f"(measured from the kill: {time.monotonic() - t0 - args.settle:.1f} s incl. reap); "
                  f"RSS {after} KiB, {fds} fds"
                  + (f", {objs['total']} Python objects, {objs['tasks']} tasks {objs['tasks_by_coroutine']}" if objs else ""))
        probe, _ = await s.subscribe(1, 1, compression, args.connect_timeout)
        alive = await s.event(probe, timeout=30)
        await s.drop(probe)
        growth = waves[-1]["rss_kib_after"] - waves[0]["rss_kib_after"]
        per_conn_cycle = growth * 1024 / (args.wave * max(1, args.waves - 1))
        flat = per_conn_cycle < 100  # bytes kept per connection opened and dropped after the first wave
        out = {"compression": args.wave_compression, "rss_kib_before": base, "open_fds_before": fds0, "waves": waves,
               "all_returned_to_zero": all(x["zero"] for x in waves),
               "fds_back_to_baseline": all(x["open_fds_after"] <= fds0 + 2 for x in waves),
               "rss_growth_kib_first_to_last_wave": growth,
               "bytes_kept_per_connection_after_first_wave": round(per_conn_cycle, 1),
               "memory_flat": flat, "new_subscriber_served_afterwards": alive}
        if args.object_counts:
            first, last = snaps[0]["by_type"], snaps[-1]["by_type"]
            grew = sorted(((last.get(k, 0) - first.get(k, 0), k) for k in set(first) | set(last)), reverse=True)
            out["objects_grown_before_first_to_after_last_wave"] = {k: d for d, k in grew[:15] if d > 0}
            out["python_objects_before_and_after_waves"] = [x["total"] for x in snaps]
            print(f"[waves] Python objects before and after each wave {out['python_objects_before_and_after_waves']}; "
                  f"most grown types: {out['objects_grown_before_first_to_after_last_wave']}")
            final = (await s.http.get("/debug/objects?collect=1")).json()
            rss_gc = await asyncio.to_thread(w.settled_rss_kib, s.pid)
            out |= {"python_objects_after_full_gc_at_end": final["total"], "rss_kib_after_full_gc_at_end": rss_gc}
            print(f"[waves] after a full gc.collect() in the app: {final['total']} Python objects "
                  f"(before the first wave {snaps[0]['total']}), {final['tasks']} tasks, RSS {rss_gc} KiB")
        print(f"[waves] subscriptions back to 0 after every wave: {out['all_returned_to_zero']}; fds back to baseline: "
              f"{out['fds_back_to_baseline']}; RSS after wave 1 -> wave {args.waves}: {growth:+d} KiB "
              f"({per_conn_cycle:.0f} bytes per dropped connection): {'flat' if flat else 'GROWING'}; "
              f"a new subscriber still served: {alive}")
        return out
    finally:
        await s.http.aclose()
        s.srv.stop()
        w._kill_procs()


async def main(args) -> dict:
    w.raise_nofile(max(args.idle, args.wave) + 1024)
    report: dict = {"bench": "subscriptions_memory", "machine": c.machine(), "postgres": await c.pg_version(),
                    "git": c.git_state(), "client_processes": args.clients}
    print(f"[setup] recreating database {args.db}")
    url = await c.recreate_database(args.db)
    world = await c.migrate_and_seed(url)
    w.reset_stream()
    report["idle"] = [await idle_memory(url, world, mode, args) for mode in args.modes.split(",") if mode]
    if args.waves:
        report["disconnects"] = await disconnect_waves(url, world, args)
    report["targets_met"] = {
        "idle_kib_per_connection": {x["mode"]: x["target_met"] for x in report["idle"]},
        "zero_after_abrupt_disconnects": report.get("disconnects", {}).get("all_returned_to_zero"),
        "memory_flat_over_waves": report.get("disconnects", {}).get("memory_flat"),
    }
    return report


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--idle", type=int, default=2000, help="idle subscribed connections measured (default 2000)")
    p.add_argument("--modes", default="deflate,none", help="compression modes for the idle measure (default deflate,none)")
    p.add_argument("--wave", type=int, default=5000, help="connections per disconnect wave (default 5000)")
    p.add_argument("--waves", type=int, default=3, help="disconnect waves (default 3; 0 skips them)")
    p.add_argument("--wave-compression", choices=("deflate", "none"), default="deflate")
    p.add_argument("--clients", type=int, default=2, help="client processes (default 2)")
    p.add_argument("--settle", type=float, default=3, help="seconds before reading RSS (default 3)")
    p.add_argument("--zero-timeout", type=float, default=120, help="seconds allowed for the gauges to reach 0")
    p.add_argument("--connect-timeout", type=float, default=600, help="seconds to open all connections")
    p.add_argument("--db", default="ordergraph_bench_subs_mem", help="database to recreate")
    p.add_argument("--wait-idle", type=float, default=600,
                   help="seconds to wait for the machine to be quiet before measuring (default 600)")
    p.add_argument("--object-counts", action="store_true",
                   help="diagnostic: serve the app through bench/_subs_shim.py; count its live Python objects and "
                        "asyncio tasks after each wave, and for the idle measure also read RSS and objects after a "
                        "full gc.collect() (tells live memory and leaks from uncollected garbage)")
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
