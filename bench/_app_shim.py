"""Fallback entry point for the benchmarks: the real app, with its database opened so that
request tasks can see it.

Before commit 092c316, `ordergraph.app.create_app(manage_db=True)` opened Tortoise inside the
lifespan task with `Tortoise.init(config=...)`; Tortoise ≥ 1.1 binds that state to a context
variable of the lifespan task only, so under a standalone uvicorn every request failed with
"No TortoiseContext is currently active" (/readyz answered 503). The benchmarks start the real
factory first and use this shim only when /readyz says the database is unreachable. The
shim changes nothing else: same schema, same resolvers, same workflows, same middleware;
it only passes `_enable_global_fallback=True` when opening the connections.

    python -m uvicorn _app_shim:create_app --factory --app-dir bench
"""

from __future__ import annotations

from tortoise import Tortoise

from ordergraph.app import create_app as _create_app
from ordergraph.config import Settings
from ordergraph.db import close_db, tortoise_config


class _OpenDatabase:
    def __init__(self, app, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)

        async def receive_():
            message = await receive()
            if message["type"] == "lifespan.startup":
                await Tortoise.init(config=tortoise_config(self.settings), _enable_global_fallback=True)
            return message

        async def send_(message):
            if message["type"] == "lifespan.shutdown.complete":
                await close_db()
            await send(message)

        await self.app(scope, receive_, send_)


def create_app():
    settings = Settings()
    return _OpenDatabase(_create_app(settings, manage_db=False), settings)
