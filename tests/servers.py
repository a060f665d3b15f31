"""Serving an ASGI app over real HTTP on a free local port, inside the test's event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from ordergraph.cli import LEAN_WS  # what `ordergraph serve` runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def serve(app, *, lifespan: str = "on", ws: str = LEAN_WS) -> AsyncIterator[str]:
    """Run `app` with uvicorn (the WebSocket protocol `ordergraph serve` uses, unless `ws`)
    until the block ends; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan, ws=ws
    )
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    for _ in range(250):
        if srv.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        await task
