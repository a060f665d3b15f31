"""Diagnostic entry point for the subscription benchmarks; the real app plus two optional knobs.

    uvicorn _subs_shim:create_app --factory --app-dir bench

- `BENCH_OBJECT_COUNTS=1` adds GET /debug/objects: live Python objects by type (gc.get_objects,
  after a gc.collect() when `?collect=1`) and asyncio tasks by coroutine. subscriptions_memory.py
  uses it with `--object-counts` to tell a leak of objects or tasks from allocator behaviour.
- `BENCH_GC="THRESHOLD0,THRESHOLD1,THRESHOLD2"` sets the cyclic GC thresholds, and
  `BENCH_GC_FREEZE=1` moves everything alive after startup to the permanent generation
  (gc.freeze). subscriptions_fanout.py uses them with `--gc` to measure what the collector
  costs during a fan-out. These are candidate app settings, measured without touching src/.
- `BENCH_TRACEMALLOC=N` traces allocations (N frames) from startup and adds
  GET /debug/tracemalloc: `?mark=1` keeps a snapshot; without it, the allocations grown since
  the mark, grouped by the innermost frame of `ordergraph`/library code (`?key=traceback` for
  whole stacks). Used by hand to find what one subscribed connection costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections import Counter

from starlette.responses import JSONResponse

from ordergraph.app import create_app as _create_app


def _break_context_cycle() -> None:
    """Candidate fix, measured here: forget the request's Context in the ASGI scope once the
    connection is over (app.py stores it there, and the Context holds the request, which holds
    the scope: a reference cycle that keeps the whole connection alive until a full GC)."""
    from ordergraph.app import GraphQLApp  # noqa: PLC0415

    call = GraphQLApp.__call__

    async def __call__(self, scope, receive, send):  # noqa: N807
        try:
            await call(self, scope, receive, send)
        finally:
            scope.pop("ordergraph.context", None)

    GraphQLApp.__call__ = __call__


def _tracemalloc_route(starlette_app) -> None:
    import tracemalloc  # noqa: PLC0415

    marks: dict[str, tracemalloc.Snapshot] = {}

    async def trace(request):
        gc.collect()
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        if request.query_params.get("mark") == "1":
            marks["mark"] = snap
            return JSONResponse({"marked": True})
        key = request.query_params.get("key", "lineno")
        top = int(request.query_params.get("top", "40"))
        stats = snap.compare_to(marks["mark"], key)
        out = [{"kib": round(s.size_diff / 1024, 1), "count": s.count_diff,
                "where": [f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in s.traceback[-int(request.query_params.get("frames", "8")):]]}
               for s in stats[:top]]
        return JSONResponse({"total_kib": round(sum(s.size_diff for s in stats) / 1024, 1), "top": out})

    starlette_app.add_route("/debug/tracemalloc", trace)


def create_app():
    if os.environ.get("BENCH_TRACEMALLOC"):
        import tracemalloc  # noqa: PLC0415

        tracemalloc.start(int(os.environ["BENCH_TRACEMALLOC"]))
    if os.environ.get("BENCH_BREAK_CONTEXT_CYCLE") == "1":
        _break_context_cycle()
    app = _create_app()
    starlette_app = app
    while not hasattr(starlette_app, "add_route"):  # RequestIdMiddleware, the response cache… wrap it
        starlette_app = starlette_app.app
    if os.environ.get("BENCH_GC"):
        gc.set_threshold(*(int(x) for x in os.environ["BENCH_GC"].split(",")))
    if os.environ.get("BENCH_GC_FREEZE") == "1":
        lifespan = starlette_app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def frozen(app_):
            async with lifespan(app_) as state:
                gc.collect()
                gc.freeze()
                yield state

        starlette_app.router.lifespan_context = frozen
    if os.environ.get("BENCH_TRACEMALLOC"):
        _tracemalloc_route(starlette_app)
    if os.environ.get("BENCH_OBJECT_COUNTS") == "1":
        async def objects(request):
            if request.query_params.get("collect") == "1":
                gc.collect()
            by_type = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
            tasks = Counter(getattr(t.get_coro(), "__qualname__", "?") for t in asyncio.all_tasks())
            return JSONResponse({"total": sum(by_type.values()), "by_type": dict(by_type.most_common(300)),
                                 "tasks": sum(tasks.values()), "tasks_by_coroutine": dict(tasks)})

        starlette_app.add_route("/debug/objects", objects)
    return app
