"""Shared pieces of the subscription benchmarks (subscriptions_fanout.py, subscriptions_memory.py).

- the app served by `ordergraph serve` (uvicorn, 1 worker, serve's options) on PostgreSQL
  **and Redis** (the production bus), with the per-viewer WebSocket cap raised for the run;
- client processes (multiprocessing, spawn), each holding many graphql-transport-ws
  connections made with the `websockets` library, every one subscribed to one order's
  `orderEvents`; the parent drives them through a pipe and can kill them (abrupt disconnect);
- readings of the server: `/metrics` gauges, VmRSS and open file descriptors from `/proc`.

Not a test helper. Every process started here is stopped on exit (normal, error, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import multiprocessing as mp
import os
import resource
import signal
import statistics
import sys
import time
from array import array
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/14")
STREAM = "ordergraph:events"  # ordergraph.subscriptions.bus.STREAM
PROTOCOL = "graphql-transport-ws"

# What a client that shows an order's live timeline selects.
ORDER_EVENTS = (
    "subscription Timeline($id: ID!, $after: String) {"
    " orderEvents(orderId: $id, after: $after) { cursor aggregateType sequence type data actor createdAt } }"
)
PLACE = """
mutation Place($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    __typename
    ... on OrderPayload { order { id number status } }
    ... on Error { code message }
  }
}"""
HOLD = """
mutation Hold($id: ID!) {
  placeHold(id: $id, reason: MANUAL, note: "bench") {
    __typename ... on OrderPayload { order { status } } ... on Error { code message }
  }
}"""
RELEASE = """
mutation Release($id: ID!) {
  releaseHold(id: $id, reason: MANUAL) {
    __typename ... on OrderPayload { order { status } } ... on Error { code message }
  }
}"""
PLACED_EVENTS = 4  # ORDER_PLACED, PAYMENT_AUTHORIZED, ORDER_CONFIRMED, ORDER_ALLOCATED


# -- limits, the app, its readings ------------------------------------------------------------


def raise_nofile(need: int) -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it); fails if `need` is beyond it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < need:
        raise SystemExit(f"RLIMIT_NOFILE hard limit is {hard}, {need} file descriptors are needed; "
                         "raise it (ulimit -Hn) or lower the connection count")
    return target


def reset_stream() -> None:
    """Drop the app's Redis stream in the bench's Redis database (not the tests')."""
    import redis  # noqa: PLC0415

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.delete(STREAM)
    finally:
        client.close()


SHIM_ENTRY = "_subs_shim:create_app"  # the real app plus diagnostics (bench/_subs_shim.py)
SERVE_ENTRY = "ordergraph serve"


def _launch(cmd: list[str], env: dict[str, str], name: str, port: int) -> c.Server:
    """A server process in its own process group, registered for cleanup, once /healthz answers."""
    import subprocess  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(c.ROOT / "src"), str(c.ROOT)]), **env}
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{name}-{port}.log"
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=full_env, cwd=c.ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    c._children.append(proc)  # noqa: SLF001 - _common stops it on exit, error and signals
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; log: {log_path}\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return c.Server(proc, base, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer /healthz within 30 s; log: {log_path}")


def start_app(url: str, *, max_ws: int, name: str, shim_env: dict[str, str] | None = None) -> c.Server:
    """The app as `ordergraph serve` runs it (`python -m ordergraph.cli serve`, one worker, its
    options: no permessage-deflate, no access log), on PostgreSQL and Redis. With `shim_env`,
    bench/_subs_shim.py serves the same app with those diagnostic settings, through uvicorn's
    command line with the same options as `serve`."""
    import httpx  # noqa: PLC0415

    env = {"DATABASE_URL": url, "REDIS_URL": REDIS_URL, "LOG_LEVEL": "WARNING", "DB_POOL_SIZE": "20",
           "MAX_WS_CONNECTIONS_PER_VIEWER": str(max_ws)}
    port = c.free_port()
    if shim_env:
        cmd = [c.PYTHON, "-m", "uvicorn", SHIM_ENTRY, "--factory", "--app-dir", str(c.ROOT / "bench"),
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
               "--workers", "1", "--ws-per-message-deflate", "false",
               "--ws", "ordergraph.ws_protocol:LeanWebSocketProtocol"]  # serve's default (cli.LEAN_WS)
        srv = _launch(cmd, env | shim_env, name, port)
    else:
        cmd = [c.PYTHON, "-m", "ordergraph.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        srv = _launch(cmd, env, name, port)
    ready = httpx.get(srv.base_url + "/readyz", timeout=10)
    if ready.status_code != 200:
        srv.stop()
        raise RuntimeError(f"the app is not ready: /readyz {ready.status_code} {ready.text}")
    return srv


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def settled_rss_kib(pid: int, samples: int = 5, every: float = 0.2) -> int:
    """Median of a few VmRSS readings (the app's periodic jobs move it by a few pages)."""
    vals = []
    for _ in range(samples):
        vals.append(rss_kib(pid))
        time.sleep(every)
    return int(statistics.median(vals))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def gauges(http) -> dict[str, float]:
    """The WebSocket gauges from the app's /metrics."""
    text = (await http.get("/metrics")).text
    out = {}
    for line in text.splitlines():
        for name in ("ordergraph_ws_connections", "ordergraph_active_subscriptions"):
            if line.startswith(name + " "):
                out[name.removeprefix("ordergraph_")] = float(line.split()[1])
    return out


async def wait_gauges(http, *, ws: float, subs: float, timeout: float) -> tuple[dict, float]:
    """Poll /metrics until both gauges have the given values; returns (last reading, seconds waited)."""
    t0 = time.monotonic()
    g: dict = {}
    while time.monotonic() - t0 < timeout:
        g = await gauges(http)
        if g.get("ws_connections") == ws and g.get("active_subscriptions") == subs:
            break
        await asyncio.sleep(0.1)
    return g, time.monotonic() - t0


async def graphql(http, query: str, variables: dict) -> dict:
    resp = await http.post("/graphql", json={"query": query, "variables": variables})
    resp.raise_for_status()
    body = resp.json()
    if "errors" in body:
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


async def place_order(http, n: int) -> dict:
    """One order (3 lines, approved payment): ALLOCATED with its 4 events."""
    data = await graphql(http, PLACE, {"input": {
        "channel": "WEB",
        "customer": {"email": f"subs{n}@example.com", "name": "Bench Subscriber"},
        "shippingAddress": {"name": "Ada Lovelace", "line1": "1 Main St", "city": "Springfield",
                            "postalCode": "62701", "country": "US"},
        "lines": [{"sku": s, "quantity": 1} for s in ("SKU-A", "SKU-B", "SKU-C")],
        "payment": {"token": "tok_approve"},
    }})
    res = data["placeOrder"]
    if res["__typename"] != "OrderPayload" or res["order"]["status"] != "ALLOCATED":
        raise RuntimeError(f"placeOrder: {res}")
    return res["order"]


def pct(data: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted `data`."""
    if not data:
        return float("nan")
    return data[min(len(data) - 1, max(0, round(q / 100 * len(data)) - 1))]


# -- client processes -------------------------------------------------------------------------


def _worker_entry(pipe, cfg: dict) -> None:
    """A client process: `cfg["n"]` connections; talks to the parent through `pipe`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    with contextlib.suppress(Exception):  # die with the parent even if it is SIGKILLed
        import ctypes  # noqa: PLC0415

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    raise_nofile(cfg["n"] + 64)
    try:
        import uvloop  # noqa: PLC0415

        uvloop.run(_worker(pipe, cfg))
    except ImportError:
        asyncio.run(_worker(pipe, cfg))


async def _worker(pipe, cfg: dict) -> None:  # noqa: C901, PLR0915 - one client process, kept in one place
    from websockets.asyncio.client import connect  # noqa: PLC0415
    from websockets.exceptions import ConnectionClosed  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    n = cfg["n"]
    init = json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {cfg['key']}"}})
    subscribe = json.dumps({"id": "1", "type": "subscribe", "payload": {
        "query": ORDER_EVENTS, "variables": {"id": cfg["order_id"], "after": "0"}}})
    sem = asyncio.Semaphore(cfg.get("connect_concurrency", 64))
    socks: list = []
    recv: dict[int, array] = {}  # event sequence -> receive times (time.monotonic) over all connections
    created: dict[int, str] = {}  # event sequence -> createdAt as delivered
    count: Counter = Counter()
    state = {"ready": 0, "setup_done": 0, "dups": 0, "gaps": 0, "errors": 0, "closed": 0}
    failures: list[str] = []
    first_error: list[str] = []
    stop = asyncio.Event()

    def send(msg) -> None:
        try:
            # uvloop's add_reader leaves the pipe non-blocking, and a report is larger than the
            # pipe buffer: write it whole (the parent reads it as it arrives).
            os.set_blocking(pipe.fileno(), True)
            pipe.send(msg)
        except OSError as exc:  # the parent is gone
            print(f"ws client {os.getpid()}: cannot reach the parent ({exc!r}); exiting", file=sys.stderr)
            stop.set()

    def sequence_of(message: dict) -> int | None:
        """The order's own sequence; None for the other aggregates of its stream (its fulfillment
        orders, shipments…), which have sequences of their own."""
        if message.get("type") != "next" or "errors" in message.get("payload", {}):
            raise RuntimeError(f"unexpected message {str(message)[:300]}")
        event = message["payload"]["data"]["orderEvents"]
        return event["sequence"] if event.get("aggregateType", "Order") == "Order" else None

    def setup_finished() -> None:
        state["setup_done"] += 1
        if state["setup_done"] == n:
            send(("ready", state["ready"], len(failures), failures[:3]))

    async def one() -> None:
        try:
            async with sem:
                ws = await connect(cfg["url"], subprotocols=[PROTOCOL], compression=cfg["compression"],
                                   ping_interval=None, max_size=None, open_timeout=120, close_timeout=5, proxy=None)
                socks.append(ws)
                await ws.send(init)
                ack = json.loads(await asyncio.wait_for(ws.recv(), 120))
                if ack.get("type") != "connection_ack":
                    raise RuntimeError(f"no connection_ack: {ack}")
                await ws.send(subscribe)
                last, replayed = 0, 0
                while replayed < cfg["replay"]:  # the replay proves the subscription is in the hub
                    seq = sequence_of(json.loads(await asyncio.wait_for(ws.recv(), 120)))
                    if seq is not None:
                        last, replayed = seq, replayed + 1
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{type(exc).__name__}: {exc}")
            setup_finished()
            return
        state["ready"] += 1
        setup_finished()
        try:
            async for raw in ws:
                t = time.monotonic()
                message = json.loads(raw)
                if message.get("type") == "ping":
                    await ws.send('{"type":"pong"}')
                    continue
                try:
                    seq = sequence_of(message)
                except RuntimeError as exc:
                    state["errors"] += 1
                    first_error[:] = first_error or [str(exc)]
                    continue
                if seq is None:
                    continue
                if seq <= last:
                    state["dups"] += 1
                    continue
                if seq != last + 1:
                    state["gaps"] += 1
                last = seq
                (recv.get(seq) or recv.setdefault(seq, array("d"))).append(t)
                if seq not in created:
                    created[seq] = message["payload"]["data"]["orderEvents"]["createdAt"]
                count[seq] += 1
                if count[seq] == state["ready"]:
                    send(("got", seq))
        except ConnectionClosed:
            pass
        state["closed"] += 1

    async def close_all() -> None:
        await asyncio.gather(*(ws.close() for ws in socks), return_exceptions=True)
        send(("closed", len(socks)))

    def on_command() -> None:
        try:
            cmd = pipe.recv()
        except (EOFError, OSError):
            stop.set()
            return
        if cmd == "report":
            send(("report", {"recv": recv, "created": created, "ready": state["ready"], "failures": len(failures),
                             "dups": state["dups"], "gaps": state["gaps"], "errors": state["errors"],
                             "closed_by_server": state["closed"], "first_error": first_error[:1]}))
        elif cmd == "close":
            loop.create_task(close_all())
        elif cmd == "quit":
            stop.set()

    loop.add_reader(pipe.fileno(), on_command)
    tasks = [loop.create_task(one()) for _ in range(n)]
    await stop.wait()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


_procs: list[mp.Process] = []


def _kill_procs() -> None:
    for p in _procs:
        if p.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
    for p in _procs:
        p.join(5)
    _procs.clear()


atexit.register(_kill_procs)


class Clients:
    """`len(counts)` client processes, process i holding counts[i] subscribed connections."""

    def __init__(self, counts: list[int], *, url: str, key: str, order_id: str, compression: str | None,
                 replay: int = PLACED_EVENTS) -> None:
        ctx = mp.get_context("spawn")
        self.counts = counts
        self.pipes = []
        self.procs = []
        self.ready: dict[int, tuple] = {}
        self.got: dict[int, set[int]] = {}
        self.reports: dict[int, dict] = {}
        self.closed: dict[int, int] = {}
        self.eof: set[int] = set()
        self._changed = asyncio.Event()
        ws_url = url.replace("http", "ws", 1) + "/graphql"
        for n in counts:
            parent, child = ctx.Pipe(duplex=True)
            cfg = {"n": n, "url": ws_url, "key": key, "order_id": order_id, "compression": compression,
                   "replay": replay}
            proc = ctx.Process(target=_worker_entry, args=(child, cfg), daemon=True, name="ws-clients")
            proc.start()
            child.close()
            _procs.append(proc)
            self.pipes.append(parent)
            self.procs.append(proc)
        loop = asyncio.get_running_loop()
        for i, pipe in enumerate(self.pipes):
            loop.add_reader(pipe.fileno(), self._on_message, i)

    def _on_message(self, i: int) -> None:
        try:
            os.set_blocking(self.pipes[i].fileno(), True)  # read a large report whole
            msg = self.pipes[i].recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self.pipes[i].fileno())
            self.eof.add(i)
            self._changed.set()
            return
        kind = msg[0]
        if kind == "ready":
            self.ready[i] = msg[1:]
        elif kind == "got":
            self.got.setdefault(msg[1], set()).add(i)
        elif kind == "report":
            self.reports[i] = msg[1]
        elif kind == "closed":
            self.closed[i] = msg[1]
        self._changed.set()

    async def _until(self, cond, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
        return True

    async def wait_ready(self, timeout: float) -> dict:
        """Wait until every connection is subscribed (its replay arrived) or failed."""
        t0 = time.monotonic()
        await self._until(lambda: len(self.ready) + len(self.eof) >= len(self.procs), timeout)
        ready = sum(r[0] for r in self.ready.values())
        failed = sum(r[1] for r in self.ready.values())
        samples = [s for r in self.ready.values() for s in r[2]]
        return {"subscribed": ready, "failed": failed, "failure_samples": samples[:3],
                "seconds": round(time.monotonic() - t0, 1), "dead_processes": sorted(self.eof)}

    def _subscribed(self) -> set[int]:
        return {i for i in range(len(self.procs)) if self.ready.get(i, (0,))[0] > 0}

    def check_alive(self) -> None:
        """Fail loudly when a client process has gone (its connections with it): the figures
        would otherwise count the server as losing events."""
        dead = {i: p.exitcode for i, p in enumerate(self.procs) if i in self.eof or not p.is_alive()}
        if dead:
            raise RuntimeError(f"client process(es) ended before the measure was over (index: exit code): {dead}")

    async def wait_got(self, seq: int, timeout: float) -> bool:
        """Until every client process has the event `seq` on all of its subscribed connections
        (False on timeout, or when a client process has died)."""
        await self._until(lambda: self._subscribed() <= self.got.get(seq, set()) or bool(self.eof), timeout)
        return self._subscribed() <= self.got.get(seq, set())

    async def report(self, timeout: float = 60) -> list[dict]:
        self.reports.clear()
        live = [i for i in range(len(self.procs)) if i not in self.eof]
        for i in live:
            self.pipes[i].send("report")
        await self._until(lambda: all(i in self.reports or i in self.eof for i in live), timeout)
        return [self.reports[i] for i in live if i in self.reports]

    async def close(self, timeout: float = 60) -> None:
        """Graceful: every connection sends a close frame (still no `complete`)."""
        live = [i for i in range(len(self.procs)) if i not in self.eof]
        for i in live:
            self.pipes[i].send("close")
        await self._until(lambda: all(i in self.closed or i in self.eof for i in live), timeout)

    def exit_codes(self) -> list[int | None]:
        """Each client process's exit code (None while it runs; -9 when SIGKILLed)."""
        return [p.exitcode for p in self.procs]

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.procs:
            with contextlib.suppress(OSError):
                total += c.proc_cpu_seconds(p.pid)
        return total

    def kill(self) -> None:
        """Abrupt: SIGKILL the client processes; the kernel closes their sockets, no `complete`
        and no WebSocket close frame is sent."""
        for p in self.procs:
            if p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        for i, pipe in enumerate(self.pipes):
            if i not in self.eof:
                with contextlib.suppress(OSError):
                    pipe.send("quit")
        for p in self.procs:
            p.join(10)
        self.kill()

    def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        for i, (p, pipe) in enumerate(zip(self.procs, self.pipes, strict=True)):
            p.join(10)
            if i not in self.eof:
                loop.remove_reader(pipe.fileno())
                self.eof.add(i)
            pipe.close()
            if p in _procs:
                _procs.remove(p)


def split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


# -- profile ----------------------------------------------------------------------------------

# Buckets for a WebSocket-heavy profile, before _common's (first match, innermost frame first).
WS_BUCKETS = (
    ("permessage-deflate (zlib)", ("permessage_deflate",)),
    ("websockets protocol (frames)", ("websockets/",)),
)


def profile_summary(path: Path, top: int = 20) -> dict:
    saved = c.BUCKETS
    c.BUCKETS = WS_BUCKETS + saved
    try:
        return c.summarize_collapsed(path, top)
    finally:
        c.BUCKETS = saved
