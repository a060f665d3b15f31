"""graphql-transport-ws, served by our own compact ASGI handler, plus shared live delivery.

The protocol is the one strawberry's `BaseGraphQLTransportWSHandler` speaks, message for
message and close code for code (4400 bad message, 4401 subscribe before ack, 4403 refused
at init, 4406 subprotocol, 4408 init timeout, 4409 duplicate id, 4429 second init; the
`Subscription limit reached` error), and every operation still runs through strawberry's
`schema.stream` (parsing, validation caches, extensions, error masking): replays, errors,
queries and subscriptions without a lane take that ordinary path, in a task per operation.

What differs is what an idle connection holds (issue 3: memory per idle subscription):

- one task per connection, its receive loop, awaiting the next message with nothing else on
  its stack (no Starlette WebSocket, no strawberry handler, no middleware frames: app.py
  routes the WebSocket straight here), and no reference to the last message;
- a live subscription with a `Lane` (lanes.py) holds no task once it is parked: its stream
  hands its live state (streams.LiveState) to a `LiveTail` (live.py) and the operation's
  task ends. Events that continue the stream are written by the hub through the lane,
  rendered once per group of subscribers with the same document, variables and viewer by a
  shared `Renderer`; anything else (a gap, an overflow, the first event of an aggregate)
  wakes the tail, which runs the stream's own logic in a short task and goes back to sleep;
- everything that points back at the connection is dropped when it ends, so it is freed by
  reference counting, not by a later full garbage collection.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.exceptions import ConnectionRejectionError
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.unset import UnsetType
from strawberry.utils.aio import aclosing

from ordergraph.observability import log
from ordergraph.subscriptions.live import (
    LiveTail,
    Renderer,
    SubscriptionExecutor,
    _deref,
    _executor,
    _operation,
    _release,
    _shared_executors,
    _task_done,
    live_lane,
)
from ordergraph.subscriptions.messages import EventMessage

if TYPE_CHECKING:
    from ordergraph.subscriptions.streams import LiveState

__all__ = ["Connection", "LiveTail", "Operation", "SubscriptionExecutor", "live_lane", "serve"]


# -- the connection ---------------------------------------------------------------------------


class _Handshake:
    """What strawberry's origin check reads of a handshake: its headers."""

    __slots__ = ("headers",)

    def __init__(self, scope: dict) -> None:
        from starlette.datastructures import Headers  # noqa: PLC0415

        self.headers = Headers(scope=scope)


async def serve(view: Any, scope: dict, receive: Callable, send: Callable) -> None:
    """The ASGI app of one graphql-transport-ws connection. `view` is the GraphQL view
    (app.GraphQLApp): its schema, settings, JSON encoding, origin rules, `viewer_for`,
    `on_ws_connect` and `release_ws_slot`."""
    from ordergraph.context import Context  # noqa: PLC0415

    if (await receive())["type"] != "websocket.connect":
        return
    handshake = _Handshake(scope)
    if not view._check_websocket_origin(handshake):  # noqa: SLF001 - strawberry's own rule
        await send({"type": "websocket.close", "code": 1008})  # refused: HTTP 403
        return
    headers, handshake = handshake.headers, None
    try:
        viewer = await view.viewer_for(headers.get("authorization"), headers.get("x-api-key"))
    except PermissionError:
        await send({"type": "websocket.close", "code": 1008})  # invalid credentials: HTTP 403
        return
    if GRAPHQL_TRANSPORT_WS_PROTOCOL not in (scope.get("subprotocols") or ()):
        await send({"type": "websocket.accept", "subprotocol": None})
        await send({"type": "websocket.close", "code": 4406, "reason": "Subprotocol not acceptable"})
        return
    await send({"type": "websocket.accept", "subprotocol": GRAPHQL_TRANSPORT_WS_PROTOCOL})
    conn = Connection(view, send, Context(viewer=viewer, settings=view.settings))
    del viewer, scope, headers
    try:
        await conn.run(receive)
    finally:
        await conn.shutdown()


class Connection:
    __slots__ = ("view", "_send", "context", "ops", "acked", "init_received", "timed_out", "closed", "_timer",
                 "base_context", "__weakref__")

    def __init__(self, view: Any, send: Callable, context: Any) -> None:
        self.view = view
        self._send = send
        self.context = context
        self.ops: dict[str, Operation] = {}
        self.acked = False
        self.init_received = False
        self.timed_out = False
        self.closed = False
        self._timer: asyncio.TimerHandle | None = None
        # The context variables of the connection as it starts (the ORM's context, the request
        # id): a parked operation's tail runs its tasks in a copy of it, not in the context of
        # the operation's own task (strawberry's and our per-operation variables).
        self.base_context = contextvars.copy_context()

    async def run(self, receive: Callable) -> None:
        timeout = self.view.connection_init_wait_timeout.total_seconds()
        self._timer = asyncio.get_running_loop().call_later(timeout, self._init_timeout)
        decode = self.view.decode_json
        while not self.closed:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                self.closed = True
                return
            if kind != "websocket.receive":
                continue
            text = message.get("text")
            message = None  # not kept while the loop waits for the next one
            if text is None:
                await self.close(4400, "WebSocket message type must be text")
                return
            try:
                data = decode(text)
            except ValueError:
                await self.close(4400, "WebSocket message must be valid JSON")
                return
            text = None
            await self.handle(data)
            data = None

    async def handle(self, data: Any) -> None:
        try:
            kind = data["type"]
            if kind == "connection_init":
                await self.on_init(data)
            elif kind == "ping":
                await self.send_json({"type": "pong"})
            elif kind == "pong":
                pass
            elif kind == "subscribe":
                await self.on_subscribe(data)
            elif kind == "complete":
                op = self.ops.pop(data["id"], None)
                if op is not None:
                    op.close()
            else:
                await self.close(4400, f"Unknown message type: {kind}")
        except (KeyError, TypeError):
            await self.close(4400, "Failed to parse message")

    def _init_timeout(self) -> None:
        self._timer = None
        if self.init_received or self.closed:
            return
        self.timed_out = True
        task = asyncio.ensure_future(self.close(4408, "Connection initialisation timeout"))
        task.add_done_callback(_task_done)

    async def on_init(self, data: dict) -> None:
        if self.timed_out:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        payload = data.get("payload", {})
        if not isinstance(payload, dict):
            await self.close(4400, "Invalid connection init payload")
            return
        if self.init_received:
            await self.close(4429, "Too many initialisation requests")
            return
        self.init_received = True
        self.context.connection_params = payload
        try:
            ack = await self.view.on_ws_connect(self.context)
        except ConnectionRejectionError:
            await self.close(4403, "Forbidden")
            return
        await self.send_json({"type": "connection_ack"} if isinstance(ack, UnsetType)
                             else {"type": "connection_ack", "payload": ack})
        self.acked = True

    async def on_subscribe(self, data: dict) -> None:
        if not self.acked:
            await self.close(4401, "Unauthorized")
            return
        op_id = data["id"]
        if op_id in self.ops:
            await self.close(4409, f"Subscriber for {op_id} already exists")
            return
        cap = self.view.max_subscriptions_per_connection
        if cap is not None and len(self.ops) >= cap:
            error = GraphQLError("Subscription limit reached")
            await self.send_json({"id": op_id, "type": "error", "payload": [error.formatted]})
            return
        payload = data["payload"]
        op = Operation(self, op_id, payload["query"], payload.get("variables"), payload.get("operationName"))
        op.task = asyncio.get_running_loop().create_task(op.run())
        op.task.add_done_callback(op.task_done)
        self.ops[op_id] = op

    async def send_text(self, text: str) -> None:
        if self.closed:
            return
        try:
            await self._send({"type": "websocket.send", "text": text})
        except OSError:  # the client is gone (uvicorn's ClientDisconnected): the receive loop ends
            self.closed = True

    async def send_json(self, message: dict) -> None:
        await self.send_text(self.view.encode_json(message))

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with suppress(OSError, RuntimeError):
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

    async def shutdown(self) -> None:
        """The connection is over: stop its operations, free its slot, drop every reference
        that points back at it (the cycles through it are broken here, not by the GC)."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        ops = list(self.ops.values())
        self.ops.clear()
        tasks = [op.task for op in ops if op.task is not None]
        for op in ops:
            op.close()
        for task in tasks:  # let cancelled operations run their finally blocks first
            with suppress(Exception, asyncio.CancelledError):
                await task
        self.view.release_ws_slot(self.context)
        self.context = None
        self._send = None
        self.base_context = None


# -- one operation ----------------------------------------------------------------------------


class Operation:
    __slots__ = ("conn", "id", "query", "variables", "operation_name", "completed", "task", "tail", "__weakref__")

    def __init__(self, conn: Connection, op_id: str, query: str, variables: dict | None, name: str | None) -> None:
        self.conn: Connection | None = conn
        self.id = op_id
        self.query = query
        self.variables = variables
        self.operation_name = name
        self.completed = False
        self.task: asyncio.Task | None = None
        self.tail: LiveTail | None = None

    def is_open(self) -> bool:
        conn = self.conn
        return not self.completed and conn is not None and conn.ops.get(self.id) is self

    async def send_message(self, message: dict) -> None:
        conn = self.conn
        if self.completed or conn is None:
            return
        if message["type"] in ("complete", "error"):
            self.completed = True
            if conn.ops.get(self.id) is self:  # the id may be used again at once
                del conn.ops[self.id]
        await conn.send_json(message)

    async def send_next(self, data: Any, errors: list[GraphQLError] | None = None, extensions: Any = None) -> None:
        payload: dict[str, Any] = {"data": data}
        if errors:
            payload["errors"] = [err.formatted for err in errors]
        if extensions:
            payload["extensions"] = extensions
        await self.send_message({"id": self.id, "type": "next", "payload": payload})

    async def run(self) -> None:
        """The ordinary path, as strawberry runs an operation; ends early (cancelled) when a
        subscription's stream parks on its lane and hands its live tail over (`park`)."""
        _operation.set(weakref.ref(self))  # this task's context only
        conn = self.conn
        try:
            source = await conn.view.schema.stream(self.query, variable_values=self.variables,
                                                    context_value=conn.context, root_value=None,
                                                    operation_name=self.operation_name)
            async with aclosing(source):
                first = True
                async for result in source:
                    if first and isinstance(result, PreExecutionError):
                        await self._pre_execution_error(result)
                        return
                    if not isinstance(result, ExecutionResult):
                        error = GraphQLError("Incremental delivery is not supported over graphql-transport-ws")
                        await self.send_message({"id": self.id, "type": "error", "payload": [error.formatted]})
                        return
                    await self.send_next(result.data, result.errors, result.extensions)
                    first = False
            await self.send_message({"id": self.id, "type": "complete"})
        except asyncio.CancelledError:
            if self.tail is not None:  # parked: the tail goes on without this task
                return
            raise
        except Exception as error:
            log.exception("subscription.operation_failed", error=repr(error))
            with suppress(Exception):
                await self.send_message({"id": self.id, "type": "complete"})
            raise
        finally:
            executor = _deref(_executor.get())
            _executor.set(None)
            _operation.set(None)
            if executor is not None and id(executor) not in _shared_executors:
                _release(executor)

    async def _pre_execution_error(self, result: PreExecutionError) -> None:
        error = result.errors[0]
        reason = None
        if isinstance(error, GraphQLSyntaxError):
            reason = error.message
        elif isinstance(error.original_error, CannotGetOperationTypeError):
            reason = error.original_error.as_http_error_reason()
        if reason is not None:
            conn = self.conn
            if conn.ops.get(self.id) is self:
                del conn.ops[self.id]
            await conn.close(4400, reason)
            return
        await self.send_message({"id": self.id, "type": "error", "payload": [e.formatted for e in result.errors]})

    def task_done(self, task: asyncio.Task) -> None:
        if self.task is task:
            self.task = None
        _task_done(task)

    def park(self, state: LiveState, renderer: Renderer, to_value: Callable[[EventMessage], Any]) -> bool:
        """Called by the stream (in this operation's task) when it waits with nothing queued:
        the live tail goes on without the task, which is cancelled."""
        task = self.task
        if not self.is_open() or task is None or task is not asyncio.current_task():
            return False
        self.tail = LiveTail(self, state, renderer, to_value)
        state.sub.notify = self.tail.wake
        task.cancel()
        return True

    def close(self) -> None:
        """Completed by the client, or the connection is over."""
        self.completed = True
        if self.task is not None:
            self.task.cancel()
        tail, self.tail = self.tail, None
        if tail is not None:
            tail.close()
        self.conn = None
