"""Live delivery of a parked subscription, shared by every subscriber of the same key.

A subscription whose resolver asks for a lane (`live_lane`) gets, once live, the hub's fast
path (lanes.py): events that continue its stream are rendered once per group of subscribers
with the same document, variables and viewer by a shared `Renderer` (graphql-core's
per-event executor of that operation, as graphql-core itself renders subscription events),
and written to each socket with its own operation id: byte for byte the `next` message the
ordinary path would send. When its stream parks, the operation (transport_ws.Operation)
hands the stream's live state to a `LiveTail` and its task ends; the tail wakes, in a short
task of its own, only for what the lane does not take (a gap to fill from the log, the first
event of an aggregate, an overflow, a render with errors or that must await).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import weakref
from collections.abc import Callable
from contextlib import suppress
from inspect import isawaitable
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError
from graphql.language import OperationType
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from ordergraph.observability import log
from ordergraph.subscriptions.lanes import Lane, Position
from ordergraph.subscriptions.messages import EventMessage

if TYPE_CHECKING:
    from ordergraph.subscriptions.streams import LiveState
    from ordergraph.subscriptions.transport_ws import Operation

_operation: contextvars.ContextVar[weakref.ref[Operation] | None] = contextvars.ContextVar(
    "ordergraph_ws_operation", default=None
)
_executor: contextvars.ContextVar[weakref.ref[StrawberryGraphQLCoreExecutionContext] | None] = (
    contextvars.ContextVar("ordergraph_subscription_executor", default=None)
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


_shared_executors: set[int] = set()  # ids of the executors that Renderers hold (not released)


def _release(executor: Any) -> None:
    # graphql-core's executor holds bound methods of itself (async_helpers): a cycle that
    # would keep it, the context and so the whole connection in memory until a full
    # collection. Called once nothing runs on it any more.
    if executor is not None:
        executor.async_helpers = None


def _task_done(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: logged where it happened


def _deref(ref: weakref.ref | None) -> Any:
    return ref() if ref is not None else None


class LiveTail:
    """A parked subscription's live stream: no task while nothing needs the stream's own path."""

    __slots__ = ("op", "state", "renderer", "to_value", "task")

    def __init__(self, op: Operation, state: LiveState, renderer: Renderer, to_value: Callable) -> None:
        self.op = op
        self.state = state
        self.renderer = renderer
        self.to_value = to_value
        self.task: asyncio.Task | None = None

    def wake(self) -> None:
        """The hub queued a message for the stream (sub.notify)."""
        conn = self.op.conn if self.op is not None else None
        if self.task is None and conn is not None and conn.base_context is not None:
            # in a copy of the connection's context: not the operation's task's variables, nor
            # those of whoever dispatched the message
            self.task = asyncio.get_running_loop().create_task(self._run(), context=conn.base_context.copy())
            self.task.add_done_callback(_task_done)

    async def _run(self) -> None:
        state = self.state
        sub = state.sub
        try:
            while self.op is not None and self.op.is_open():
                if sub.overflowed:
                    messages = await state.caught_up()
                elif sub.empty():
                    if sub.lane is not None:
                        sub.lane.parked = True
                    return
                else:
                    m = sub.pop()
                    if sub.lane is not None:
                        sub.lane.parked = False
                        await sub.lane.flushed()  # what the lane took first is on the wire first
                    messages = await state.taken(m)
                for m in messages:
                    if self.op is None:
                        return
                    await self.send(m)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the stream failed (the log unreadable…): as strawberry ends it
            op = self.op
            if op is not None:
                log.exception("subscription.live_tail_failed", error=repr(exc))
                with suppress(Exception):
                    await op.send_next(None, self.renderer.masked([GraphQLError(str(exc), original_error=exc)]))
                    await op.send_message({"id": op.id, "type": "complete"})
                op.close()
        finally:
            self.task = None

    async def send(self, m: EventMessage) -> None:
        result = self.renderer.execute(self.to_value(m))
        if isawaitable(result):
            result = await result
        op = self.op
        if op is not None:
            await op.send_next(result.data, self.renderer.masked(result.errors) if result.errors else None)

    def close(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
        self.state.sub.close()
        self.op = None


# -- shared rendering and lanes ---------------------------------------------------------------


class Renderer:
    """One subscription executor shared by every subscriber with the same key (document,
    variables, viewer): renders an event's payload once for all of them."""

    __slots__ = ("executor", "to_value", "encode", "schema", "sync_only", "__weakref__")

    def __init__(self, executor: Any, to_value: Callable, encode: Callable, schema: Any) -> None:
        self.executor = executor
        _shared_executors.add(id(executor))
        self.to_value = to_value
        self.encode = encode
        self.schema = schema
        self.sync_only = True

    def execute(self, value: Any) -> Any:
        return self.executor.build_per_event_executor(value).execute_operation(False)

    def render(self, m: EventMessage) -> str | None:
        """The payload for every lane of this key (the hub asks one lane per group)."""
        if not self.sync_only:
            return None
        result = self.execute(self.to_value(m))
        if isawaitable(result):  # an async field in the selection: the tail's path for these
            self.sync_only = False
            _discard(result)
            return None
        if result.errors:  # masked, logged and sent by the tail's path
            return None
        return self.encode({"data": result.data})

    def masked(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        """As strawberry sends them: logged, and masked by the schema's MaskErrors."""
        self.schema.process_errors(errors)
        from strawberry.extensions import MaskErrors  # noqa: PLC0415

        for extension in self.schema.get_extensions():
            if isinstance(extension, MaskErrors):
                errors = extension._process_errors(errors)  # noqa: SLF001
        return errors

    def __del__(self) -> None:
        _shared_executors.discard(id(self.executor))
        _release(self.executor)


_renderers: weakref.WeakValueDictionary[tuple, Renderer] = weakref.WeakValueDictionary()


def _variables_key(variables: dict[str, Any] | None) -> str:
    return json.dumps(variables or {}, sort_keys=True, separators=(",", ":"), default=str)


def live_lane(info: Any, to_value: Callable[[EventMessage], Any]) -> Callable[[Position, Callable], Lane | None] | None:
    """A lane factory for the subscription resolver running now, or None when it does not run
    under this transport (a direct `schema.subscribe`, say). `to_value(message)` is what the
    resolver would yield for the message; it must depend on the message only (the result may
    be shared by every subscriber of the same key)."""
    op = _deref(_operation.get())
    executor = _deref(_executor.get())
    if op is None or executor is None or not op.is_open():
        return None
    conn = op.conn
    view = conn.view
    viewer = getattr(info.context, "viewer", None)
    key = (info.field_name, op.query, op.operation_name, _variables_key(op.variables), viewer)
    encode = view.encode_json
    prefix = encode({"id": op.id, "type": "next", "payload": None})
    marker = '"payload":null}'
    if not prefix.endswith(marker):  # not the encoding assumed below: stay on the ordinary path
        return None
    prefix = prefix[: -len("null}")]
    renderer = _renderers.get(key)
    if renderer is None or not renderer.sync_only:
        renderer = Renderer(executor, to_value, encode, view.schema)
        _renderers[key] = renderer
    op_ref = weakref.ref(op)

    def make(position: Position, accept: Callable[[EventMessage], bool]) -> Lane | None:
        live = op_ref()
        if live is None or live.conn is None or not renderer.sync_only:
            return None
        lane = Lane(key=key, position=position, accept=accept, render=renderer.render, prefix=prefix,
                    send_text=live.conn.send_text, is_open=live.is_open)
        lane.park = lambda state: live.park(state, renderer, to_value)
        return lane

    return make


def _discard(awaitable: Any) -> None:
    def done(fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.debug("subscription.render_discarded", error=repr(fut.exception()))

    asyncio.ensure_future(awaitable).add_done_callback(done)
