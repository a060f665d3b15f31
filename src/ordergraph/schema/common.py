"""Shared GraphQL building blocks: Money, Relay connections, viewer helpers."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

T = TypeVar("T")


@strawberry.type(description="An amount of money: a decimal and its ISO 4217 currency.")
class Money:
    amount: Decimal
    currency: str


def money(amount: Decimal | int | str, currency: str) -> Money:
    return Money(amount=Decimal(amount).quantize(Decimal("0.01")), currency=currency)


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int

    @strawberry.field
    def nodes(self) -> list[T]:
        return [e.node for e in self.edges]


def _cursor(offset: int) -> str:
    return base64.b64encode(f"o:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.b64decode(cursor.encode()).decode()
        kind, _, value = raw.partition(":")
        if kind != "o":
            raise ValueError(raw)
        return int(value) + 1
    except Exception as exc:  # noqa: BLE001
        raise GraphQLError(f"invalid cursor {cursor!r}") from exc


async def paginate(info: Info, queryset, first: int | None, after: str | None, to_node) -> Any:
    """Offset pagination over a Tortoise queryset; page size is capped by settings."""
    limit_max = info.context.settings.max_page_size
    first = limit_max if first is None else first
    if first < 0 or first > limit_max:
        raise GraphQLError(f"first must be between 0 and {limit_max}")
    start = _offset(after)
    total = await queryset.count()
    rows = await queryset.offset(start).limit(first) if first else []
    nodes = await to_node(list(rows)) if rows else []
    edges = [Edge(cursor=_cursor(start + i), node=n) for i, n in enumerate(nodes)]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=start + len(rows) < total,
            has_previous_page=start > 0,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=total,
    )


def viewer(info: Info):
    return info.context.viewer


def require_scope(info: Info, scope: str) -> None:
    """Queries: a viewer without the scope gets a GraphQL error, not data."""
    if not info.context.viewer.has_scope(scope):
        raise GraphQLError(f"this field needs the {scope} scope", extensions={"code": "FORBIDDEN"})


def node_pk(gid, type_name: str) -> int | None:
    """The database id in a Relay global id of `type_name`; None for another type or a malformed id."""
    return int(gid.node_id) if gid.type_name == type_name and gid.node_id.isdigit() else None


async def readable_by_order(info: Info, model, type_name: str, id, number: str | None):
    """A row of `model` (fulfillment order, return…) by global id or number, when the viewer may
    read its order; None otherwise, exactly as when it does not exist."""
    from ordergraph.auth.permissions import can_read_order  # noqa: PLC0415
    from ordergraph.models import Order  # noqa: PLC0415

    if id is not None:
        pk = node_pk(id, type_name)
        row = await model.get_or_none(id=pk) if pk is not None else None
    elif number is not None:
        row = await model.get_or_none(number=number)
    else:
        return None
    order = await Order.get_or_none(id=row.order_id) if row else None
    return row if order is not None and can_read_order(info.context.viewer, order) else None
