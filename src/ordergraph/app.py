"""Starlette app factory and lifespan: database, event bus, background jobs."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from datetime import timedelta

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from strawberry.asgi import GraphQL
from cross_web import HTTPException as GraphQLHTTPException
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from ordergraph.auth.resolve import InvalidCredentials, viewer_from_credentials
from ordergraph.config import Settings, get_settings
from ordergraph.context import Context
from ordergraph.db import close_db, fetch, init_db
from ordergraph.jobs import default_jobs
from ordergraph.observability import WS_CONNECTIONS, configure_logging, log, new_request_id, request_id_var
from ordergraph.response_cache import with_response_cache
from ordergraph.rest import routes as rest_routes
from ordergraph.schema.root import build_schema
from ordergraph.subscriptions import runtime as streaming
from ordergraph.subscriptions import transport_ws
from ordergraph.subscriptions.live import SubscriptionExecutor


class GraphQLApp(GraphQL):
    """Strawberry's ASGI view for HTTP; WebSockets (graphql-transport-ws only) are served by
    our compact handler, transport_ws.serve, which calls back `viewer_for`, `on_ws_connect`
    and `release_ws_slot` here."""

    def __init__(self, schema, settings: Settings) -> None:
        if schema.execution_context_class is SubscriptionExecutor.__mro__[1]:  # strawberry's default
            schema.execution_context_class = SubscriptionExecutor
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),  # the legacy graphql-ws is off
            connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_seconds),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        )
        self.settings = settings
        self.ws_connections: Counter[str] = Counter()  # open WebSocket connections per viewer

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            await transport_ws.serve(self, scope, receive, send)
            return
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Forget the context: scope -> context -> request -> scope is a cycle that would keep
            # the request in memory until a full garbage collection.
            scope.pop("ordergraph.context", None)

    async def viewer_for(self, authorization: str | None, api_key: str | None):
        """The viewer of a WebSocket handshake's headers; PermissionError if they are invalid."""
        try:
            return await viewer_from_credentials(authorization, api_key)
        except InvalidCredentials as exc:
            raise PermissionError(str(exc)) from None

    def release_ws_slot(self, context: Context | None) -> None:
        """The connection is over: the viewer's slot is free again."""
        if context is not None and context.ws_slot:
            slot, context.ws_slot = context.ws_slot, None
            self.ws_connections[slot] -= 1
            if self.ws_connections[slot] <= 0:
                del self.ws_connections[slot]
            WS_CONNECTIONS.dec()

    async def get_context(self, request, response) -> Context:
        headers = request.headers
        try:
            viewer = await viewer_from_credentials(
                headers.get("authorization"), headers.get("x-api-key")
            )
        except InvalidCredentials as exc:
            raise GraphQLHTTPException(401, str(exc)) from None
        context = Context(viewer=viewer, settings=self.settings, request=request, response=response)
        request.scope["ordergraph.context"] = context
        return context

    async def on_ws_connect(self, context: Context):
        """`connection_init`: credentials in the payload (`Authorization: Bearer …`, or
        `authToken`) decide the viewer; each viewer may hold a limited number of connections."""
        params = context.connection_params or {}
        context.connection_params = None  # read once here; not kept for the connection's life
        auth = params.get("Authorization") or params.get("authorization")
        token = params.get("authToken") or params.get("apiKey")
        if auth or token:
            try:
                context.viewer = await viewer_from_credentials(auth, token)
            except InvalidCredentials:
                raise ConnectionRejectionError({"reason": "invalid credentials"}) from None
        principal = context.viewer.principal
        if self.ws_connections[principal] >= self.settings.max_ws_connections_per_viewer:
            raise ConnectionRejectionError({"reason": "too many connections for this viewer"})
        self.ws_connections[principal] += 1
        context.ws_slot = principal
        WS_CONNECTIONS.inc()
        return None


class RequestIdMiddleware:
    """Gives every HTTP request an id (or keeps the caller's X-Request-ID) and logs it.

    `websockets` maps paths to the apps serving WebSockets there, called straight from here:
    a WebSocket lives for hours, and every frame of the middleware and routing stack it would
    otherwise pass through stays in memory for as long, per connection."""

    def __init__(self, app, websockets: dict | None = None) -> None:
        self.app = app
        self.websockets = websockets or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and (ws_app := self.websockets.get(scope["path"])) is not None:
            return await ws_app(scope, receive, send)
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode()[:64] or new_request_id()
        token = request_id_var.set(rid)
        start = time.perf_counter()
        status = {"code": 0}

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            # A WebSocket's messages go straight to the server: the id is only added to an HTTP
            # response's headers, and a live event written to thousands of sockets should not
            # pass through one more coroutine each time.
            await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)
        finally:
            if scope["type"] == "http" and scope.get("path") not in ("/healthz", "/metrics"):
                log.info(
                    "http.request",
                    method=scope.get("method"),
                    path=scope.get("path"),
                    status=status["code"],
                    duration_ms=round((time.perf_counter() - start) * 1000, 2),
                )
            request_id_var.reset(token)


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    checks: dict[str, str] = {}
    ok = True
    try:
        await fetch("SELECT 1 AS ok")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        ok = False
        checks["database"] = f"error: {type(exc).__name__}"
    if settings.redis_url:
        try:
            import redis.asyncio as aioredis  # noqa: PLC0415

            client = aioredis.from_url(settings.redis_url, socket_connect_timeout=2)
            try:
                await client.ping()
                checks["redis"] = "ok"
            finally:
                await client.aclose()
        except Exception as exc:  # noqa: BLE001
            ok = False
            checks["redis"] = f"error: {type(exc).__name__}"
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)


async def metrics(_: Request) -> Response:
    return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings | None = None, *, manage_db: bool = True) -> Starlette:
    """The ASGI app. `manage_db=False` when the caller (tests, CLI) owns the connections."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)
    graphql = GraphQLApp(build_schema(settings), settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if manage_db:
            await init_db(settings, process_wide=True)  # requests run in other tasks
            await fetch("SELECT 1 AS ok")  # connect now, not inside the first job tick
        stream = await streaming.start(settings)
        jobs = default_jobs(relay=stream.relay) if settings.run_jobs else None
        if jobs is not None:
            jobs.start()
        app.state.jobs = jobs
        app.state.streaming = stream
        log.info("ordergraph.start", database=settings.database_url.split("@")[-1], redis=bool(settings.redis_url))
        try:
            yield
        finally:
            if jobs is not None:
                await jobs.stop()
            await streaming.stop(stream)
            if manage_db:
                await close_db()

    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            *rest_routes(),  # carrier webhooks, printable documents
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    return RequestIdMiddleware(  # type: ignore[return-value]
        with_response_cache(app, graphql.schema, settings), websockets={"/graphql": graphql}
    )
