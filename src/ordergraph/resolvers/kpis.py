"""`metrics(from, to, channel)`: the KPIs of a period beside their best-in-class targets (staff)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from ordergraph.models import SalesChannel
from ordergraph.schema.common import require_scope
from ordergraph.schema.enums import ExceptionKind
from ordergraph.workflows import kpis


@strawberry.type
class Kpi:
    value: float | None = strawberry.field(description="Null when the period has nothing to measure.")
    target: str
    met: bool | None


@strawberry.type
class ExceptionRate:
    kind: ExceptionKind
    count: int
    per_order: float


@strawberry.type
class Metrics:
    orders: int
    shipped_orders: int
    cycle_time_p50_hours: Kpi = strawberry.field(description="Order placed to fully shipped, median.")
    cycle_time_p90_hours: Kpi
    order_accuracy: Kpi = strawberry.field(description="Shipped orders with no WRONG_ITEM return, as a share.")
    sla_achievement: Kpi = strawberry.field(description="Shipped orders that left by their promised ship date, as a share.")
    exception_rates: list[ExceptionRate]
    returns_refunded: int
    returns_processing_p50_hours: Kpi = strawberry.field(description="Return requested to refunded, median.")
    returns_processing_average_hours: float | None


def _kpi(value: float | None, target: str, ok) -> Kpi:
    return Kpi(value=value, target=target, met=None if value is None else ok(value))


@strawberry.type
class KpiQuery:
    @strawberry.field(description="KPIs of orders placed from `from` (inclusive) to `to` (exclusive), optionally of one "
                                  "channel, computed in the database.")
    async def metrics(self, info: Info, from_: Annotated[datetime, strawberry.argument(name="from")], to: datetime,
                      channel: str | None = None) -> Metrics | None:
        require_scope(info, "orders:read")
        if not info.context.viewer.is_staff:
            return None
        channel_id = None
        if channel is not None:
            ch = await SalesChannel.get_or_none(code=channel)
            if ch is None:
                return None
            channel_id = ch.id
        k = await kpis.compute(from_, to, channel_id)
        t = kpis.TARGETS
        return Metrics(
            orders=k.orders, shipped_orders=k.shipped_orders,
            cycle_time_p50_hours=_kpi(k.cycle_p50_hours, "< 24 h", lambda v: v < t["cycle_p50_hours"]),
            cycle_time_p90_hours=_kpi(k.cycle_p90_hours, "< 24 h", lambda v: v < t["cycle_p50_hours"]),
            order_accuracy=_kpi(k.accuracy, "> 99.5 %", lambda v: v > t["accuracy"]),
            sla_achievement=_kpi(k.sla_achievement, "> 96 %", lambda v: v > t["sla"]),
            exception_rates=[ExceptionRate(kind=kind, count=n, per_order=round(n / k.orders, 4) if k.orders else 0.0)
                             for kind, n in k.exceptions.items()],
            returns_refunded=k.returns_refunded,
            returns_processing_p50_hours=_kpi(k.returns_p50_hours, "< 5 business days",
                                              lambda v: v < t["returns_days"] * 24),
            returns_processing_average_hours=k.returns_average_hours,
        )
