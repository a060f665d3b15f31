"""Diagnostic entry point for the subscription benchmarks; the real app plus two optional knobs.

    uvicorn _subs_shim:create_app --factory --app-dir bench

- `BENCH_OBJECT_COUNTS=1` adds GET /debug/objects: live Python objects by type (gc.get_objects,
  after a gc.collect() when `?collect=1`) and asyncio tasks by coroutine. subscriptions_memory.py
  uses it with `--object-counts` to tell a leak of objects or tasks from allocator behaviour.
- `BENCH_GC="THRESHOLD0,THRESHOLD1,THRESHOLD2"` sets the cyclic GC thresholds, and
  `BENCH_GC_FREEZE=1` moves everything alive after startup to the permanent generation
  (gc.freeze). subscriptions_fanout.py uses them with `--gc` to measure what the collector
  costs during a fan-out. These are candidate app settings, measured without touching src/.
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


def create_app():
    if os.environ.get("BENCH_BREAK_CONTEXT_CYCLE") == "1":
        _break_context_cycle()
    app = _create_app()
    starlette_app = app.app  # RequestIdMiddleware wraps the Starlette app
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
