"""graphql-transport-ws, as strawberry serves it, plus shared live delivery (lanes.py).

Strawberry runs every subscription operation in its own task and, for every event, executes
the operation's selection on the resolver's value and encodes the `next` message. That stays
the path of replays, gaps, errors and everything unusual. For the live tail of a stream, the
resolver may ask for a `Lane` (`live_lane`): the same execution (graphql-core's per-event
executor of this very operation) and the same JSON, made once per event for every subscriber
with the same document, variables and viewer, then written to each socket with its own
operation id. The `next` message is byte for byte what strawberry would send.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from inspect import isawaitable
from typing import Any

from graphql.language import OperationType
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)

from ordergraph.observability import log
from ordergraph.subscriptions.lanes import Lane, Position
from ordergraph.subscriptions.messages import EventMessage

# Set in the operation's task: which operation (and executor) a subscription resolver runs for.
# Weak references: every task started from the operation's task copies its context, and a
# strong one there would keep the whole connection alive as long as any such task is kept.
_operation: ContextVar[tuple[weakref.ref[BaseGraphQLTransportWSHandler], str] | None] = ContextVar(
    "ordergraph_ws_operation", default=None
)
_executor: ContextVar[weakref.ref[StrawberryGraphQLCoreExecutionContext] | None] = ContextVar(
    "ordergraph_subscription_executor", default=None
)


class SubscriptionExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor; a subscription's executor makes itself known to its resolver,
    which renders shared payloads with it (`build_per_event_executor`, as graphql-core does)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.operation.operation is OperationType.SUBSCRIPTION:
            _executor.set(weakref.ref(self))

    def build_per_event_executor(self, payload: Any) -> StrawberryGraphQLCoreExecutionContext:
        executor = super().build_per_event_executor(payload)
        # graphql-core 3.3 memoizes collected subfields in a dict that its per-event copies
        # share, keyed by the identity of lists each execution makes anew: it would grow by an
        # entry (about 1.3 KiB for an orderEvents selection) per event for the life of the
        # subscription. Within one event the memo still serves lists of values.
        executor._relevant_sub_fields = {}  # noqa: SLF001
        return executor


class TransportWSHandler(BaseGraphQLTransportWSHandler):
    async def run_operation(self, operation: Operation) -> None:
        _operation.set((weakref.ref(self), operation.id))  # this task's context only
        try:
            await super().run_operation(operation)
        finally:
            # graphql-core's executor holds bound methods of itself (async_helpers): a cycle that
            # would keep it, the context and so the whole connection in memory until a full
            # collection after the client has gone. Nothing runs on it any more.
            executor = _deref(_executor.get())
            if executor is not None:
                executor.async_helpers = None
            _executor.set(None)
            _operation.set(None)


def _deref(ref: weakref.ref | None) -> Any:
    return ref() if ref is not None else None


def _variables_key(variables: dict[str, Any] | None) -> str:
    return json.dumps(variables or {}, sort_keys=True, separators=(",", ":"), default=str)


def live_lane(info: Any, to_value: Callable[[EventMessage], Any]) -> Callable[[Position, Callable], Lane | None] | None:
    """A lane factory for the subscription resolver running now, or None when it does not run
    under `TransportWSHandler` (another transport, or a direct `schema.subscribe`).
    `to_value(message)` is what the resolver would yield for the message; it must depend on
    the message only (the result may be shared by every subscriber of the same key)."""
    current = _operation.get()
    executor = _deref(_executor.get())
    handler = _deref(current[0]) if current is not None else None
    op = handler.operations.get(current[1]) if handler is not None else None
    if op is None or executor is None:
        return None
    viewer = getattr(info.context, "viewer", None)
    key = (info.field_name, op.query, op.operation_name, _variables_key(op.variables), viewer)
    encode = handler.view.encode_json
    prefix = encode({"id": op.id, "type": "next", "payload": None})
    marker = '"payload":null}'
    if not prefix.endswith(marker):  # not the encoding assumed below: stay on the ordinary path
        return None
    prefix = prefix[: -len("null}")]
    per_event = executor.build_per_event_executor
    sync_only = {"ok": True}

    def render(m: EventMessage) -> str | None:
        """The payload for every lane of this key (the hub asks one lane per group)."""
        if not sync_only["ok"]:
            return None
        result = per_event(to_value(m)).execute_operation(False)
        if isawaitable(result):  # an async field in the selection: strawberry's path for these
            sync_only["ok"] = False
            _discard(result)
            return None
        if result.errors:  # masked, logged and sent by the ordinary path
            return None
        return encode({"data": result.data})

    def is_open() -> bool:
        return not op.completed and handler.operations.get(op.id) is op

    ws = getattr(handler.websocket, "ws", None)
    if ws is None:
        return None
    send_text = ws.send_text

    def make(position: Position, accept: Callable[[EventMessage], bool]) -> Lane | None:
        if not sync_only["ok"]:
            return None
        return Lane(key=key, position=position, accept=accept, render=render, prefix=prefix,
                    send_text=send_text, is_open=is_open)

    return make


def _discard(awaitable: Any) -> None:
    import asyncio  # noqa: PLC0415

    def done(fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.debug("subscription.render_discarded", error=repr(fut.exception()))

    asyncio.ensure_future(awaitable).add_done_callback(done)
