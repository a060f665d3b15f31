"""Request-scoped DataLoaders: one query per kind of related row, whatever the page size."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from strawberry.dataloader import DataLoader
from strawberry.types import Info

from ordergraph.models import (
    Allocation,
    Event,
    OrderHold,
    OrderLine,
    Payment,
    PaymentTransaction,
    ProductVariant,
    SalesChannel,
)


def _grouped(model, fk: str, order_by: tuple[str, ...]) -> Callable:
    async def load(keys: list[int]):
        groups = defaultdict(list)
        for row in await model.filter(**{f"{fk}__in": list(keys)}).order_by(*order_by):
            groups[getattr(row, fk)].append(row)
        return [groups.get(k, []) for k in keys]

    return load


def _allocations_by_order() -> Callable:
    """An order's allocations as rows with their warehouse code joined (no warehouse lookup)."""

    async def load(keys: list[int]):
        groups = defaultdict(list)
        rows = await Allocation.filter(order_id__in=list(keys)).order_by("id").values(
            "order_id", "line_id", "quantity", "status", "created_at", warehouse_code="warehouse__code"
        )
        for row in rows:
            groups[row["order_id"]].append(row)
        return [groups.get(k, []) for k in keys]

    return load


def _by_id(model) -> Callable:
    async def load(keys: list[int]):
        rows = {r.id: r for r in await model.filter(id__in=list(keys))}
        return [rows.get(k) for k in keys]

    return load


LOADERS: dict[str, Callable] = {
    "lines_by_order": lambda: _grouped(OrderLine, "order_id", ("position",)),
    "allocations_by_order": _allocations_by_order,
    "payments_by_order": lambda: _grouped(Payment, "order_id", ("id",)),
    "transactions_by_payment": lambda: _grouped(PaymentTransaction, "payment_id", ("id",)),
    "events_by_order": lambda: _grouped(Event, "order_id", ("id",)),
    "holds_by_order": lambda: _grouped(OrderHold, "order_id", ("id",)),
    "channel": lambda: _by_id(SalesChannel),
    "variant": lambda: _by_id(ProductVariant),
}


def loader(info: Info, name: str) -> DataLoader:
    return info.context.loader(name, lambda: DataLoader(load_fn=LOADERS[name]()))
