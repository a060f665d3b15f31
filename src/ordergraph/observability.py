"""JSON logs with a request id, and Prometheus metrics."""

from __future__ import annotations

import logging
import sys
import uuid
from contextvars import ContextVar

import structlog
from prometheus_client import Counter, Gauge, Histogram

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

GRAPHQL_REQUESTS = Counter(
    "ordergraph_graphql_requests_total",
    "GraphQL operations executed",
    ["type", "operation", "outcome"],
)
GRAPHQL_LATENCY = Histogram(
    "ordergraph_graphql_duration_seconds",
    "GraphQL operation latency",
    ["type", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WS_CONNECTIONS = Gauge("ordergraph_ws_connections", "Open GraphQL WebSocket connections")
# Its value comes from the live hubs (set_function in subscriptions/hub.py).
ACTIVE_SUBSCRIPTIONS = Gauge("ordergraph_active_subscriptions", "Subscriptions registered in this process's event hub")
ORDERS_PLACED = Counter("ordergraph_orders_placed_total", "Orders placed", ["channel"])
ALLOCATION_FAILURES = Counter(
    "ordergraph_allocation_failures_total",
    "Allocation runs that could not allocate every unit",
    ["channel", "outcome"],
)


def _add_request_id(_, __, event_dict):
    rid = request_id_var.get()
    if rid:
        event_dict["request_id"] = rid
    return event_dict


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    logging.basicConfig(stream=sys.stdout, level=level, format="%(message)s")
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_request_id,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )


def new_request_id() -> str:
    return uuid.uuid4().hex


log = structlog.get_logger("ordergraph")
