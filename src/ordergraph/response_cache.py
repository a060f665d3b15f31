"""A response cache for order reads that is never stale and never leaks.

What is cached: the exact bytes the API answered (status, headers, body) to a POST /graphql
whose document is one query with one root field, `order(id|number)` or
`trackOrder(number, email)`, and whose every selected field is on `ALLOWED`: fields computed
from the order's own rows only (the order, its lines, allocations, holds, payments, payment
transactions and events; the channel and warehouse codes, which never change). A document
that selects anything else (`variant`, another root field, introspection, a fragment on a
type off the list, a directive other than @skip/@include) is never cached. Only an answer
with no errors and a non-null order is kept.

The key: the raw request body (document, variables and operation name) and the viewer's kind.

What every request checks, cached or not, in ONE statement: the order's row found the way
the resolver finds it, the viewer's right to read it (the same rule as the resolver:
`may_read_order`, or the e-mail for `trackOrder`) and the order's version:
`(id, placed_at, updated_at, number of the order's events)` — plus the number of its payment
transactions when the document selects them. A cached answer is served only when that version
equals the one read *before* the cached answer was computed.

Why that is never stale: every change to the order's rows writes an event with the order's id
in the same transaction (DESIGN.md; checked for holds, cancels, allocations, payment
authorisations, captures, refunds and voids), and events are never deleted, so the count of
committed events grows with every committed change. The one exception found is a payment
transaction recorded when the gateway is unreachable (`workflows/payments.py`
`_gateway_call`): no event, hence the transaction count. The version is read before the miss
runs the query; whatever commits after that read makes the stored version old, so an answer
can be newer than its version, never older. Since the check reads the database on every
request, a change made through another process is seen at once: nothing is invalidated
in memory and nothing needs the bus.

Why it never leaks: the viewer's right is decided per request from the row just read, before
the cache is consulted; a viewer who may not read the order goes to the app, which answers as
it always does. Invalid credentials go to the app too (401).

A hit skips Starlette routing and Strawberry's parse, validation and execution; the document
is parsed once per query string (a bounded LRU) to check it against `ALLOWED`.

Bounded: at most `response_cache_max_entries` request bodies and `response_cache_max_bytes`
bytes (least recently used first out). Off with `response_cache_enabled = false`.
Metrics: `ordergraph_response_cache_requests_total{result="hit|miss|bypass"}` and
`ordergraph_response_cache_entries`; hits also count in `ordergraph_graphql_requests_total`.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    VariableNode,
    Visitor,
    parse,
    visit,
)
from prometheus_client import Counter, Gauge
from strawberry.relay import GlobalID

from ordergraph.auth.resolve import InvalidCredentials, viewer_from_credentials
from ordergraph.db import fetch, placeholders
from ordergraph.observability import GRAPHQL_LATENCY, GRAPHQL_REQUESTS
from ordergraph.resolvers.orders import may_read_order

# Fields that depend only on the order's own rows (GraphQL type name -> field names).
ALLOWED: dict[str, frozenset[str]] = {
    "Query": frozenset({"order", "trackOrder"}),
    "Node": frozenset({"id"}),
    "Order": frozenset({
        "id", "number", "externalId", "status", "customer", "shippingAddress", "billingAddress", "serviceLevel",
        "notes", "subtotal", "total", "placedAt", "updatedAt", "cancelledAt", "cancelReason", "channelCode",
        "lines", "holds", "onHold", "payments", "timeline", "availableActions",
    }),
    "Customer": frozenset({"email", "name", "phone"}),
    "Address": frozenset({"name", "company", "line1", "line2", "city", "region", "postalCode", "country", "phone"}),
    "Money": frozenset({"amount", "currency"}),
    "OrderLine": frozenset({  # not `variant`: the catalog changes without an order event
        "id", "sku", "name", "quantity", "unitPrice", "lineTotal", "allocatedQuantity", "backorderedQuantity",
        "shippedQuantity", "cancelledQuantity", "externalLineId", "allocations",
    }),
    "AllocationType": frozenset({"quantity", "status", "createdAt", "warehouseCode"}),
    "Hold": frozenset({"reason", "note", "placedBy", "createdAt", "releasedAt", "releasedBy", "releaseNote", "active"}),
    "Payment": frozenset({
        "id", "gateway", "method", "status", "amount", "authorized", "captured", "refunded",
        "authorizationExpiresAt", "failureCode", "createdAt", "availableActions", "transactions",
    }),
    "PaymentTransactionType": frozenset({"kind", "amount", "success", "gatewayReference", "errorCode", "createdAt"}),
    "TimelineEvent": frozenset({"cursor", "sequence", "type", "data", "actor", "createdAt"}),
    "TrackedOrder": frozenset({"number", "status", "placedAt", "updatedAt", "serviceLevel", "email", "lines"}),
    "TrackedLine": frozenset({"sku", "name", "quantity", "shippedQuantity", "cancelledQuantity"}),
}
DIRECTIVES = frozenset({"skip", "include"})
MAX_BODY = 16 * 1024  # larger request bodies are not cached

CACHE_REQUESTS = Counter(
    "ordergraph_response_cache_requests_total",
    "POST /graphql requests seen by the order response cache: hit, miss (cacheable, computed), bypass (not cacheable)",
    ["result"],
)
CACHE_ENTRIES = Gauge("ordergraph_response_cache_entries", "Request bodies with a cached answer")


def _setting(settings: Any, name: str, default: Any) -> Any:
    """A cache setting (config.Settings reads them from the environment: RESPONSE_CACHE_…)."""
    value = getattr(settings, name, None)
    return default if value is None else value


# -- the document: checked once per query string ----------------------------------------------


@dataclass(frozen=True)
class Plan:
    root: str  # "order" or "trackOrder"
    arguments: dict[str, Any]  # argument name -> value node
    defaults: dict[str, Any]  # variable name -> default value node
    transactions: bool  # selects Payment.transactions
    operation: str  # for the operation metrics


class _NotCacheable(Exception):
    pass


class _AllowedFields(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.transactions = False

    def enter_field(self, node: FieldNode, *_):
        name = node.name.value
        if name == "__typename":
            return
        parent = self.type_info.get_parent_type()
        if parent is None or self.type_info.get_field_def() is None or name not in ALLOWED.get(parent.name, ()):
            raise _NotCacheable
        if parent.name == "Payment" and name == "transactions":
            self.transactions = True

    def enter_directive(self, node, *_):
        if node.name.value not in DIRECTIVES:
            raise _NotCacheable


def make_plan(schema: GraphQLSchema, query: str) -> Plan | None:
    try:
        document: DocumentNode = parse(query)
    except GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation is not OperationType.QUERY:
        return None
    op = operations[0]
    roots = op.selection_set.selections
    if len(roots) != 1 or not isinstance(roots[0], FieldNode) or roots[0].name.value not in ("order", "trackOrder"):
        return None
    type_info = TypeInfo(schema)
    fields = _AllowedFields(type_info)
    try:
        visit(document, TypeInfoVisitor(type_info, fields))
    except _NotCacheable:
        return None
    root = roots[0]
    if root.directives:
        return None
    return Plan(
        root=root.name.value,
        arguments={a.name.value: a.value for a in root.arguments},
        defaults={v.variable.name.value: v.default_value for v in op.variable_definitions},
        transactions=fields.transactions,
        operation=op.name.value if op.name else "anonymous",
    )


def _value(plan: Plan, name: str, variables: dict) -> str | None:
    """The argument's value as the resolver receives it (a string or None)."""
    node = plan.arguments.get(name)
    if isinstance(node, VariableNode):
        var = node.name.value
        if var in variables:
            value = variables[var]
            if value is None or isinstance(value, str):
                return value
            raise _NotCacheable
        node = plan.defaults.get(var)
    if node is None or isinstance(node, NullValueNode):
        return None
    if isinstance(node, StringValueNode):
        return node.value
    raise _NotCacheable


@dataclass(frozen=True)
class Lookup:
    """How the resolver finds the order: by id or number; `email` for trackOrder."""

    by: str
    value: Any
    email: str | None
    plan: Plan


def lookup(plan: Plan, variables: dict) -> Lookup | None:
    try:
        if plan.root == "trackOrder":
            number, email = _value(plan, "number", variables), _value(plan, "email", variables)
            if number is None or email is None:
                return None
            return Lookup("number", number.strip(), email.strip().lower(), plan)
        gid, number = _value(plan, "id", variables), _value(plan, "number", variables)
    except _NotCacheable:
        return None
    if gid is not None:
        try:
            parsed = GlobalID.from_id(gid)
        except Exception:  # noqa: BLE001 - the app answers the error
            return None
        if parsed.type_name != "Order" or not parsed.node_id.isdigit():
            return None
        return Lookup("id", int(parsed.node_id), None, plan)
    if number is None:
        return None
    return Lookup("number", number, None, plan)


@cache
def _version_sql(by: str, transactions: bool) -> str:
    extra = (
        ", (SELECT count(*) FROM payment_transactions t JOIN payments p ON p.id = t.payment_id"
        " WHERE p.order_id = o.id) AS transactions"
        if transactions else ""
    )
    return (
        "SELECT o.id, o.channel_id, o.customer_email, o.placed_at, o.updated_at,"
        " (SELECT count(*) FROM events e WHERE e.order_id = o.id) AS events"
        f"{extra} FROM orders o WHERE o.{by} = {placeholders(1)[0]}"
    )


# -- the ASGI wrapper -------------------------------------------------------------------------


@dataclass
class Answer:
    version: tuple
    start: dict
    body: bytes


@dataclass
class Slot:
    lookup: Lookup
    answers: dict[str, Answer] = field(default_factory=dict)  # viewer kind -> answer
    size: int = 0


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value
    return None


class ResponseCache:
    def __init__(self, app, schema: GraphQLSchema, settings: Any = None) -> None:
        self.app = app
        self.schema = schema
        self.max_entries = int(_setting(settings, "response_cache_max_entries", 10_000))
        self.max_bytes = int(_setting(settings, "response_cache_max_bytes", 64 * 1024 * 1024))
        self.slots: OrderedDict[bytes, Slot] = OrderedDict()
        self.bytes = 0
        self.plan = lru_cache(maxsize=int(_setting(settings, "response_cache_max_documents", 256)))(
            lambda query: make_plan(schema, query)
        )

    def clear(self) -> None:
        self.slots.clear()
        self.bytes = 0
        CACHE_ENTRIES.set(0)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/graphql":
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
        replayed = False
        app_called = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def app(send_):
            nonlocal app_called
            app_called = True
            await self.app(scope, replay, send_)

        try:
            served = await self._serve(scope, body, app, send)
        except Exception:  # noqa: BLE001 - a failing cache never fails a request: the app answers
            if app_called:  # the app already answered (or failed) this request
                raise
            served = False
        if not served:
            CACHE_REQUESTS.labels("bypass").inc()
            await self.app(scope, replay, send)

    async def _serve(self, scope, body: bytes, app, send) -> bool:
        """Answer from the cache, or run the app and keep its answer; False: not cacheable."""
        start = time.perf_counter()
        slot = self.slots.get(body)
        found = slot.lookup if slot is not None else self._lookup(scope, body)
        if found is None:
            return False
        try:
            viewer = await viewer_from_credentials(
                (_header(scope, b"authorization") or b"").decode("latin-1") or None,
                (_header(scope, b"x-api-key") or b"").decode("latin-1") or None,
            )
        except InvalidCredentials:
            return False
        rows = await fetch(_version_sql(found.by, found.plan.transactions), [found.value])
        if not rows:
            return False
        row = rows[0]
        if found.email is not None:
            if row["customer_email"] != found.email:
                return False
            kind = "GUEST"  # trackOrder answers the same to anyone holding the number and e-mail
        else:
            if not may_read_order(viewer, row["channel_id"], row["customer_email"]):
                return False
            kind = str(viewer.kind)
        version = (row["id"], row["placed_at"], row["updated_at"], row["events"], row.get("transactions"))
        answer = slot.answers.get(kind) if slot is not None else None
        if answer is not None and answer.version == version:
            self.slots.move_to_end(body)
            # a copy: middleware outside may change the message it is given (X-Request-ID)
            await send({**answer.start, "headers": list(answer.start["headers"])})
            await send({"type": "http.response.body", "body": answer.body})
            CACHE_REQUESTS.labels("hit").inc()
            GRAPHQL_REQUESTS.labels("query", found.plan.operation, "ok").inc()
            GRAPHQL_LATENCY.labels("query", found.plan.operation).observe(time.perf_counter() - start)
            return True
        CACHE_REQUESTS.labels("miss").inc()
        await self._fill(body, found, kind, version, app, send)
        return True

    def _lookup(self, scope, body: bytes) -> Lookup | None:
        if len(body) > MAX_BODY:
            return None
        content_type = _header(scope, b"content-type") or b""
        if not content_type.split(b";")[0].strip().lower() == b"application/json":
            return None
        if b"multipart" in (_header(scope, b"accept") or b""):
            return None
        try:
            request = json.loads(body)
        except ValueError:
            return None
        if not isinstance(request, dict) or not set(request) <= {"query", "variables", "operationName"}:
            return None
        query, variables = request.get("query"), request.get("variables") or {}
        if not isinstance(query, str) or not isinstance(variables, dict):
            return None
        plan = self.plan(query)
        if plan is None:
            return None
        name = request.get("operationName")
        if name is not None and name != plan.operation:
            return None
        return lookup(plan, variables)

    async def _fill(self, body: bytes, found: Lookup, kind: str, version: tuple, app, send) -> None:
        start: dict | None = None
        chunks: list[bytes] = []

        async def capture(message):
            nonlocal start
            if message["type"] == "http.response.start":  # as the app sent it, before any middleware
                start = {**message, "headers": list(message.get("headers") or [])}
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await app(capture)
        if start is None or start.get("status") != 200:
            return
        answer = b"".join(chunks)
        if not self._keepable(answer, found.plan.root):
            return
        self._store(body, found, kind, Answer(version, start, answer))

    @staticmethod
    def _keepable(answer: bytes, root: str) -> bool:
        try:
            data = json.loads(answer)
        except ValueError:
            return False
        if not isinstance(data, dict) or set(data) != {"data"} or not isinstance(data["data"], dict):
            return False
        values = list(data["data"].values())
        return len(values) == 1 and isinstance(values[0], dict)

    def _store(self, body: bytes, found: Lookup, kind: str, answer: Answer) -> None:
        size = len(answer.body) + 512
        if size + len(body) > self.max_bytes:
            return
        slot = self.slots.get(body)
        if slot is None:
            slot = self.slots[body] = Slot(found, size=len(body))
            self.bytes += len(body)
        old = slot.answers.get(kind)
        if old is not None:
            slot.size -= len(old.body) + 512
            self.bytes -= len(old.body) + 512
        slot.answers[kind] = answer
        slot.size += size
        self.bytes += size
        self.slots.move_to_end(body)
        while len(self.slots) > self.max_entries or self.bytes > self.max_bytes:
            _, evicted = self.slots.popitem(last=False)
            self.bytes -= evicted.size
        CACHE_ENTRIES.set(len(self.slots))


def with_response_cache(app, schema, settings: Any = None):
    """`app` behind the order response cache, or `app` itself when the setting turns it off.
    `schema`: the strawberry Schema (or graphql-core schema) the app serves."""
    if not _setting(settings, "response_cache_enabled", True):
        return app
    return ResponseCache(app, getattr(schema, "_schema", schema), settings)


def create_cached_app(settings: Any = None, *, manage_db: bool = True):
    """`ordergraph.app.create_app` with the response cache in front of its routes (inside the
    request-id middleware, so hits are logged and carry X-Request-ID like any request).

        uvicorn ordergraph.response_cache:create_cached_app --factory
    """
    from starlette.routing import Route  # noqa: PLC0415

    from ordergraph.app import create_app  # noqa: PLC0415
    from ordergraph.config import get_settings  # noqa: PLC0415

    settings = settings or get_settings()
    outer = create_app(settings, manage_db=manage_db)
    if isinstance(outer.app, ResponseCache):  # create_app wires the cache in itself
        return outer
    routes = outer.app.routes
    graphql = next(r.endpoint for r in routes if isinstance(r, Route) and r.path == "/graphql")
    outer.app = with_response_cache(outer.app, graphql.schema, settings)
    return outer
