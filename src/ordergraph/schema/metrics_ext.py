"""Prometheus metrics per GraphQL operation, and the logging of masked errors."""

from __future__ import annotations

import time

from strawberry.extensions import SchemaExtension

from ordergraph.observability import GRAPHQL_LATENCY, GRAPHQL_REQUESTS, log


class OperationMetrics(SchemaExtension):
    def on_operation(self):
        start = time.perf_counter()
        yield
        ctx = self.execution_context
        name = ctx.operation_name or "anonymous"
        op_type = ctx.operation_type.value if ctx.operation_type else "unknown"
        result = ctx.result
        errors = getattr(result, "errors", None) if result is not None else None
        outcome = "error" if errors else "ok"
        GRAPHQL_REQUESTS.labels(op_type, name, outcome).inc()
        GRAPHQL_LATENCY.labels(op_type, name).observe(time.perf_counter() - start)
        for err in errors or ():
            original = getattr(err, "original_error", None)
            if original is not None:
                log.error("graphql.error", operation=name, error=repr(original), exc_info=original)
