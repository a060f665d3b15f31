"""Shared pieces of the benchmark scripts: database setup, seeding, the app subprocess, load.

Not a test helper: it builds a throw-away PostgreSQL database, migrates it with the project's
migrations, seeds a small world through the ORM models, and starts the real app with uvicorn
in a subprocess that is always terminated on exit (normal, error or Ctrl-C).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PG_ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")

# The project's migrations are the top-level package `migrations` and `ordergraph` lives in src/.
for p in (str(ROOT / "src"), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)
os.chdir(ROOT)


def db_url(name: str) -> str:
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name


# -- database ---------------------------------------------------------------------------------


async def recreate_database(name: str) -> str:
    import asyncpg  # noqa: PLC0415

    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return db_url(name)


async def drop_database(name: str) -> None:
    import asyncpg  # noqa: PLC0415

    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _settings(url: str):
    from ordergraph.config import Settings  # noqa: PLC0415

    return Settings(database_url=url, log_level="WARNING", db_pool_size=20)


async def migrate_and_seed(url: str, *, stock: int = 1_000_000_000) -> dict:
    """Migrate, then seed: warehouses EAST (priority 1) and WEST (priority 2), channel WEB
    (PRIORITY, REJECT, capture ON_SHIPMENT) linked to both, SKU-A/B/C stocked with `stock`
    units in both warehouses, and a staff API key (all scopes)."""
    from tortoise import Tortoise  # noqa: PLC0415
    from tortoise.migrations.api import migrate  # noqa: PLC0415

    from ordergraph.auth.keys import create_api_key  # noqa: PLC0415
    from ordergraph.db import close_db, init_db, tortoise_config  # noqa: PLC0415
    from ordergraph.models import (  # noqa: PLC0415
        ChannelWarehouse,
        InventoryLevel,
        Product,
        ProductVariant,
        SalesChannel,
        Warehouse,
    )
    from ordergraph.models.enums import AllocationStrategy, CaptureMode, ChannelKind, Role, StockPolicy  # noqa: PLC0415

    settings = _settings(url)
    await migrate(config=tortoise_config(settings))
    await Tortoise.close_connections()
    await init_db(settings)
    try:
        whs = []
        for code, prio, lat, lon in (("EAST", 1, 40.7, -74.0), ("WEST", 2, 37.8, -122.4)):
            whs.append(await Warehouse.create(
                code=code, name=f"Warehouse {code}", priority=prio, latitude=lat, longitude=lon, active=True,
                address={"line1": "1 Dock Rd", "city": code, "postal_code": "00000", "country": "US"},
                ship_countries=["US", "CA"],
            ))
        ch = await SalesChannel.create(
            code="WEB", name="Channel WEB", kind=ChannelKind.WEB, currency="USD",
            allocation_strategy=AllocationStrategy.PRIORITY, stock_policy=StockPolicy.REJECT,
            capture_mode=CaptureMode.ON_SHIPMENT, sets_prices=False,
        )
        for w in whs:
            await ChannelWarehouse.create(channel=ch, warehouse=w)
        skus = {}
        for sku, price in (("SKU-A", "10.00"), ("SKU-B", "25.50"), ("SKU-C", "5.00")):
            product = await Product.create(name=f"Product {sku}")
            v = await ProductVariant.create(product=product, sku=sku, name=f"Variant {sku}", price=price, currency="USD")
            skus[sku] = v.id
            for w in whs:
                await InventoryLevel.create(warehouse=w, variant=v, on_hand=stock)
        key, _ = await create_api_key(Role.STAFF, None, name="bench")
    finally:
        await close_db()
    return {"key": key, "channel_id": ch.id, "warehouses": {w.code: w.id for w in whs}, "variants": skus}


# -- subprocesses -----------------------------------------------------------------------------

_children: list[subprocess.Popen] = []


def _kill_children() -> None:
    for proc in _children:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
    deadline = time.monotonic() + 5
    for proc in _children:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    _children.clear()


atexit.register(_kill_children)


def _on_signal(signum, _frame):
    _kill_children()
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    base_url: str
    log_path: Path

    def cpu_seconds(self) -> float:
        """user + system CPU time of the server process so far."""
        return proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc in _children:
            _children.remove(self.proc)
        if not os.environ.get("BENCH_KEEP_LOGS"):  # its output only matters when it failed to start
            self.log_path.unlink(missing_ok=True)


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        parts = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12])) / ticks  # utime, stime


def start_uvicorn(app: str, env: dict[str, str], *, factory: bool = False, app_dir: str | None = None,
                  health_path: str = "/healthz", name: str = "server") -> Server:
    """uvicorn in its own process group (1 worker), waiting until `health_path` answers."""
    import httpx  # noqa: PLC0415

    port = free_port()
    cmd = [PYTHON, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-access-log", "--workers", "1"]
    if factory:
        cmd.append("--factory")
    if app_dir:
        cmd += ["--app-dir", app_dir]
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), **env}
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{name}-{port}.log"
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=full_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _children.append(proc)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; log: {log_path}\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(base + health_path, timeout=1).status_code == 200:
                return Server(proc, base, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer {health_path} within 30 s; log: {log_path}")


REAL_ENTRY = "ordergraph.app:create_app"
SHIM_ENTRY = "_app_shim:create_app"


def start_app(url: str, *, name: str = "app", entry: str | None = None, app_dir: str | None = None) -> tuple[Server, str]:
    """The real app (`python -m uvicorn ordergraph.app:create_app --factory`, 1 worker).

    If its /readyz reports the database unreachable (the lifespan's Tortoise context is not
    visible to request tasks, see _app_shim.py), restart it through bench/_app_shim.py and
    say so in the returned entry description. `entry`/`app_dir` start another factory
    instead (to measure a candidate change without touching the app)."""
    import httpx  # noqa: PLC0415

    env = {"DATABASE_URL": url, "LOG_LEVEL": "WARNING", "DB_POOL_SIZE": os.environ.get("BENCH_APP_POOL", "20")}
    if entry:
        srv = start_uvicorn(entry, env, factory=True, app_dir=app_dir, name=name)
        ready = httpx.get(srv.base_url + "/readyz", timeout=10)
        if ready.status_code != 200:
            raise RuntimeError(f"{entry}: /readyz {ready.status_code} {ready.text}")
        return srv, entry
    srv = start_uvicorn(REAL_ENTRY, env, factory=True, name=name)
    ready = httpx.get(srv.base_url + "/readyz", timeout=10)
    if ready.status_code == 200:
        return srv, REAL_ENTRY
    detail = ready.text
    srv.stop()
    print(f"  ! {REAL_ENTRY}: /readyz {ready.status_code} {detail}; using bench/_app_shim.py", file=sys.stderr)
    srv = start_uvicorn(SHIM_ENTRY, env, factory=True, app_dir=str(ROOT / "bench"), name=name)
    ready = httpx.get(srv.base_url + "/readyz", timeout=10)
    if ready.status_code != 200:
        raise RuntimeError(f"the app is not ready even through the shim: {ready.status_code} {ready.text}")
    return srv, f"{SHIM_ENTRY} (fallback: {REAL_ENTRY} /readyz said {detail})"


# -- load -------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    count: int
    errors: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, successful calls only
    ends: list[float] = field(default_factory=list)  # completion times, seconds from the start
    first_error: str | None = None

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        data = sorted(self.latencies)
        idx = min(len(data) - 1, max(0, round(q / 100 * len(data)) - 1))
        return data[idx]

    def summary(self) -> dict:
        return {
            "requests": self.count,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.rate, 1),
            "p50_ms": round(self.pct(50) * 1000, 2),
            "p99_ms": round(self.pct(99) * 1000, 2),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 2) if self.latencies else None,
        }


async def run_load(call, *, concurrency: int, total: int | None = None, duration: float | None = None) -> LoadResult:
    """`concurrency` workers calling `await call(i)` (which returns None or an error string)
    until `total` calls were made or `duration` seconds passed."""
    assert (total is None) != (duration is None)
    counter = 0
    res = LoadResult(0, 0, 0.0)
    start = time.perf_counter()
    stop_at = start + duration if duration else None

    async def worker():
        nonlocal counter
        while True:
            if total is not None:
                if counter >= total:
                    return
            elif time.perf_counter() >= stop_at:
                return
            i = counter
            counter += 1
            t0 = time.perf_counter()
            try:
                err = await call(i)
            except Exception as exc:  # noqa: BLE001
                err = f"{type(exc).__name__}: {exc}"
            if err:
                res.errors += 1
                res.first_error = res.first_error or err
            else:
                res.latencies.append(time.perf_counter() - t0)
            res.ends.append(time.perf_counter() - start)
            res.count += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    res.seconds = time.perf_counter() - start
    return res


# -- CPU accounting ---------------------------------------------------------------------------

_HZ = os.sysconf("SC_CLK_TCK")


def system_busy(seconds: float = 1.0) -> float:
    """Fraction of all cores busy over `seconds`."""
    def snap():
        with open("/proc/stat") as fh:
            vals = [int(x) for x in fh.readline().split()[1:]]
        idle = vals[3] + vals[4]
        return sum(vals) - idle, sum(vals)

    b0, t0 = snap()
    time.sleep(seconds)
    b1, t1 = snap()
    return (b1 - b0) / max(1, t1 - t0)


def wait_until_quiet(max_wait: float, *, threshold: float = 0.15) -> float:
    """Benchmarks on a 2-core box are meaningless while something else burns CPU (other
    people's test runs): wait up to `max_wait` s for two quiet seconds in a row; return the
    last busy fraction seen (reported, so a contaminated run is visible)."""
    deadline = time.monotonic() + max_wait
    quiet = 0
    busy = system_busy(1.0)
    warned = False
    while time.monotonic() < deadline:
        if busy < threshold:
            quiet += 1
            if quiet >= 2:
                return busy
        else:
            quiet = 0
            if not warned:
                print(f"  … machine busy ({busy:.0%} of all cores, not ours); waiting up to {max_wait:.0f} s",
                      file=sys.stderr)
                warned = True
        busy = system_busy(1.0)
    print(f"  ! machine still busy ({busy:.0%}); measuring anyway", file=sys.stderr)
    return busy


def _proc_table() -> dict[int, tuple[str, int, int]]:
    """pid -> (comm, ppid, utime+stime ticks) for every process we can read."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                raw = fh.read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        parts = raw.rsplit(")", 1)[1].split()
        ticks = int(parts[11]) + int(parts[12])
        if int(entry) == os.getpid():
            ticks += int(parts[13]) + int(parts[14])  # children already reaped (a finished wrk run)
        out[int(entry)] = (comm, int(parts[1]), ticks)
    return out


class CpuMeter:
    """CPU used during a phase, in cores, split into this benchmark (this process and its
    children), PostgreSQL (all backends, including other users') and everything else."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.before = _proc_table()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        after = _proc_table()
        mine = {os.getpid()}
        changed = True
        while changed:  # descendants of this process
            changed = False
            for pid, (_, ppid, _) in after.items():
                if ppid in mine and pid not in mine:
                    mine.add(pid)
                    changed = True
        groups = {"bench": 0, "postgres": 0, "other": 0}
        for pid, (comm, _, ticks) in after.items():
            delta = ticks - self.before.get(pid, (comm, 0, 0))[2] if pid in self.before else ticks
            if delta <= 0:
                continue
            key = "bench" if pid in mine else "postgres" if comm.startswith("postgres") else "other"
            groups[key] += delta
        self.cores = {k: round(v / _HZ / max(wall, 1e-9), 2) for k, v in groups.items()}


# -- statements per operation -----------------------------------------------------------------


@contextlib.contextmanager
def statement_log():
    """Every statement sent through asyncpg in this process while the block runs."""
    from asyncpg.connection import Connection  # noqa: PLC0415

    log = _StatementLog()
    saved = {}
    saved["_get_statement"] = get_statement = Connection._get_statement

    async def counted(self, query, timeout, **kwargs):
        # Not in the connection's statement cache: asyncpg first prepares it (Parse/Describe),
        # one more round trip before the statement runs.
        key = (query, kwargs.get("record_class") or self._protocol.get_record_class(),
               kwargs.get("ignore_custom_codec", False))
        if kwargs.get("use_cache", True) and self._stmt_cache.get(key, promote=False) is None:
            log.prepared.append(query)
        return await get_statement(self, query, timeout, **kwargs)

    Connection._get_statement = counted
    for name in ("fetch", "fetchrow", "fetchval", "execute", "executemany"):
        saved[name] = orig = getattr(Connection, name)

        def wrap(orig):
            async def logged(self, query, *args, **kwargs):
                log.append(query)
                return await orig(self, query, *args, **kwargs)

            return logged

        setattr(Connection, name, wrap(orig))
    try:
        yield log
    finally:
        for name, orig in saved.items():
            setattr(Connection, name, orig)


class _StatementLog(list):
    """The statements sent, and in `prepared` those asyncpg had to prepare first (cache misses)."""

    def __init__(self) -> None:
        super().__init__()
        self.prepared: list[str] = []


def classify(statements: list[str]) -> dict:
    out = {"total": len(statements), "pool_resets": 0, "begin_commit": 0, "reads": 0, "writes": 0}
    if isinstance(statements, _StatementLog):
        out["prepared"] = len(statements.prepared)  # each one more round trip
    for q in statements:
        head = q.lstrip().split(None, 1)[0].upper().rstrip(";") if q.strip() else ""
        if "pg_advisory_unlock_all" in q:
            out["pool_resets"] += 1
        elif head in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"):
            out["begin_commit"] += 1
        elif head == "SELECT" and "FOR UPDATE" not in q.upper():
            out["reads"] += 1
        else:
            out["writes"] += 1  # INSERT / UPDATE / SELECT … FOR UPDATE
    return out


async def app_statements(url: str, key: str, body: dict, repeat_body=None, warm: int = 1) -> tuple[dict, list[str]]:
    """Statements the app sends for one POST /graphql (served in this process through httpx's
    ASGI transport on the bench database; one identical request first so one-time type
    introspection is not counted; `warm` of them). `repeat_body(i)` gives the i-th body when requests
    must differ. The result counts, as `prepared`, the statements asyncpg had to prepare first
    because their text was not in the connection's cache (one more round trip each)."""
    import httpx  # noqa: PLC0415

    from ordergraph.app import create_app  # noqa: PLC0415
    from ordergraph.db import close_db, init_db  # noqa: PLC0415

    settings = _settings(url)
    await init_db(settings)
    try:
        app = create_app(settings, manage_db=False)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
            for i in range(warm):  # every pooled connection has prepared the statements that repeat
                first = repeat_body(i) if repeat_body else body
                (await http.post("/graphql", json=first, headers=headers)).raise_for_status()
            with statement_log() as log:
                resp = await http.post("/graphql", json=repeat_body(warm) if repeat_body else body, headers=headers)
            resp.raise_for_status()
            if "errors" in resp.json():
                raise RuntimeError(f"statement count request failed: {resp.text[:500]}")
    finally:
        await close_db()
    return classify(log), log


def git_state() -> dict:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "migrations"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return {"commit": sha, "app_sources_modified": bool(dirty)}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "app_sources_modified": None}


# -- profiling (optional: py-spy) -------------------------------------------------------------


def py_spy() -> str | None:
    import shutil  # noqa: PLC0415

    candidate = Path(PYTHON).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


class Profiler:
    """`py-spy record` on a process for the duration of a phase (collapsed stacks, on-CPU only)."""

    def __init__(self, pid: int, out: Path, rate: int = 250) -> None:
        self.pid, self.out, self.rate = pid, out, rate
        self.proc = None

    def __enter__(self):
        exe = py_spy()
        if exe is None:
            print("  ! py-spy not found (.venv/bin/pip install py-spy); no profile", file=sys.stderr)
            return self
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--format", "raw",
             "--output", str(self.out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        _children.append(self.proc)
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc in _children:
            _children.remove(self.proc)

    def summary(self, top: int = 15) -> dict | None:
        if self.proc is None or not self.out.exists():
            return None
        return summarize_collapsed(self.out, top)


BUCKETS = (  # first match on any frame's file, innermost first, wins
    ("asyncpg driver", ("asyncpg/",)),
    ("tortoise ORM", ("tortoise/", "pypika")),
    ("graphql-core (parse/validate/execute)", ("graphql/",)),
    ("strawberry", ("strawberry/",)),
    ("http server (uvicorn/httptools/starlette)", ("uvicorn/", "httptools", "starlette/", "h11/")),
    ("logging (structlog)", ("structlog/", "logging/")),
    ("json", ("json/",)),
    ("ordergraph code", ("ordergraph/",)),
    ("asyncio event loop", ("asyncio/", "uvloop")),
)


def _frame_file(frame: str) -> str:
    if "(" in frame and frame.endswith(")"):
        return frame[frame.rindex("(") + 1 : -1]
    return frame


def summarize_collapsed(path: Path, top: int = 15) -> dict:
    """Self time per function and time per library (innermost matching frame) from py-spy raw output."""
    from collections import Counter  # noqa: PLC0415

    self_time: Counter = Counter()
    buckets: Counter = Counter()
    ordergraph_incl: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        leaf = frames[-1]
        self_time[leaf.split(" (")[0] + " (" + _frame_file(leaf).split("site-packages/")[-1].split("/src/")[-1] + ")"] += n
        bucket = "other"
        for frame in reversed(frames):
            f = _frame_file(frame)
            hit = next((name for name, keys in BUCKETS if any(k in f for k in keys)), None)
            if hit:
                bucket = hit
                break
        buckets[bucket] += n
        seen = set()
        for frame in frames:
            f = _frame_file(frame)
            if "ordergraph/" in f:
                name = frame.split(" (")[0] + " (" + f.split("/src/")[-1].rsplit(":", 1)[0] + ")"
                if name not in seen:
                    seen.add(name)
                    ordergraph_incl[name] += n
    pct = lambda n: round(100 * n / max(total, 1), 1)  # noqa: E731
    return {
        "samples": total,
        "by_library_pct": {k: pct(v) for k, v in buckets.most_common()},
        "top_self_pct": {k: pct(v) for k, v in self_time.most_common(top)},
        "ordergraph_inclusive_pct": {k: pct(v) for k, v in ordergraph_incl.most_common(top)},
    }


# -- reporting --------------------------------------------------------------------------------


def machine() -> dict:
    model = "unknown"
    mem_kb = 0
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


async def pg_version() -> str:
    import asyncpg  # noqa: PLC0415

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        return (await conn.fetchval("SHOW server_version")).split()[0]
    finally:
        await conn.close()
