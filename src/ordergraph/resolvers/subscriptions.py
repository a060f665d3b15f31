"""Subscriptions: every event of an order, order feeds, the customer's and the guest's
views, stock changes and low-stock alerts. Authorization is checked when subscribing and
for every event (by routing each viewer only to the topics it may read)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.types import Info
from tortoise.expressions import Subquery

from ordergraph.auth.permissions import can_read_order, order_scope
from ordergraph.auth.viewer import ViewerKind, guest_viewer
from ordergraph.models import Event, Order, ProductVariant, Warehouse
from ordergraph.schema.enums import ExceptionKind, Severity, Team
from ordergraph.schema.orders import TrackedOrder
from ordergraph.schema.streams import InventoryUpdate, OrderUpdate, StreamEvent, event_time
from ordergraph.subscriptions.messages import EventMessage
from ordergraph.subscriptions.outbox import routing_for
from ordergraph.subscriptions.streams import REPLAY_LIMIT, event_stream
from ordergraph.subscriptions.live import live_lane


def _cursor(after: str | None) -> int | None:
    if after is None:
        return None
    if not after.isdigit():
        raise GraphQLError(f"invalid cursor {after!r}")
    return int(after)


def _missing_order(ref: str) -> GraphQLError:
    return GraphQLError(f"no order {ref}", extensions={"code": "NOT_FOUND"})


async def _readable_order(info: Info, order_id: relay.GlobalID) -> Order:
    order = None
    if order_id.type_name == "Order" and order_id.node_id.isdigit():
        order = await Order.get_or_none(id=int(order_id.node_id))
    if order is None or not can_read_order(info.context.viewer, order):
        raise _missing_order(str(order_id))
    return order


async def _names(m: EventMessage) -> tuple[str, str]:
    inv = m.routing.get("inventory") or {}
    return await _sku(inv.get("variant_id")), await _warehouse(inv.get("warehouse_id"))


_SKUS: dict[int, str] = {}
_WAREHOUSES: dict[int, str] = {}


async def _sku(variant_id: int | None) -> str:
    if variant_id not in _SKUS:
        v = await ProductVariant.get_or_none(id=variant_id)
        _SKUS[variant_id] = v.sku if v else ""
    return _SKUS[variant_id]


async def _warehouse(warehouse_id: int | None) -> str:
    if warehouse_id not in _WAREHOUSES:
        w = await Warehouse.get_or_none(id=warehouse_id)
        _WAREHOUSES[warehouse_id] = w.code if w else ""
    return _WAREHOUSES[warehouse_id]


def _inventory_update(m: EventMessage, sku: str, warehouse: str) -> InventoryUpdate:
    d = m.data
    return InventoryUpdate(
        cursor=str(m.id), type=m.type, sku=sku, warehouse=warehouse, kind=d.get("kind"), quantity=d.get("quantity"),
        on_hand=d["on_hand"], allocated=d["allocated"], reserved=d["reserved"], safety_stock=d["safety_stock"],
        available=d["available"], reorder_point=d["reorder_point"], created_at=event_time(m.created_at),
    )


def _order_feed_topics(info: Info, channel_id: int | None) -> list[tuple]:
    viewer = info.context.viewer
    if viewer.kind is ViewerKind.STAFF and viewer.has_scope("orders:read"):
        return [("channel", channel_id)] if channel_id else [("orders",)]
    if viewer.kind is ViewerKind.PARTNER and viewer.has_scope("orders:read"):
        ids = [channel_id] if channel_id else sorted(viewer.channel_ids)
        return [("channel", c) for c in ids if c in viewer.channel_ids]
    if viewer.kind is ViewerKind.CUSTOMER and viewer.email:
        return [("customer", viewer.email)]
    raise GraphQLError("this subscription needs the orders:read scope", extensions={"code": "FORBIDDEN"})


@strawberry.input
class OrderUpdatesFilter:
    channel: str | None = None
    status: list[str] | None = None


@strawberry.type
class SubscriptionRoot:
    @strawberry.subscription(description="Every event of one order, replayed after `after` and then live.")
    async def order_events(
        self, info: Info, order_id: relay.GlobalID, after: str | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        oid = (await _readable_order(info, order_id)).id  # only the id is kept while it streams
        since = _cursor(after)

        async def replay(after_id: int):
            return await Event.filter(order_id=oid, id__gt=after_id).order_by("id").limit(REPLAY_LIMIT)

        async for m in event_stream([("order", oid)], after=since, replay=replay,
                                    accept=lambda m: m.order_id == oid,
                                    lane=live_lane(info, StreamEvent.from_message)):
            yield StreamEvent.from_message(m)

    @strawberry.subscription(description="Orders changing: staff see all (or one channel), partners their channels.")
    async def order_updates(
        self, info: Info, filter: OrderUpdatesFilter | None = None, after: str | None = None
    ) -> AsyncGenerator[OrderUpdate, None]:
        async for update in _order_feed(info, filter, after):
            yield update

    @strawberry.subscription(description="The signed-in customer's orders changing.")
    async def my_orders(self, info: Info, after: str | None = None) -> AsyncGenerator[OrderUpdate, None]:
        if info.context.viewer.kind is not ViewerKind.CUSTOMER:
            raise GraphQLError("myOrders needs a customer token", extensions={"code": "FORBIDDEN"})
        async for update in _order_feed(info, None, after):
            yield update

    @strawberry.subscription(description="A guest's live view of one order: the number and the e-mail it was placed with.")
    async def order_tracking(self, info: Info, number: str, email: str) -> AsyncGenerator[TrackedOrder, None]:
        guest = guest_viewer(email.strip())
        order = await Order.get_or_none(number=number.strip(), customer_email=guest.email)
        if order is None:
            raise _missing_order(number)
        yield _tracked(order)

        async def replay(after_id: int):
            return await Event.filter(order_id=order.id, aggregate_type__in=TRACKED, id__gt=after_id).order_by("id")

        async for _ in event_stream([("order", order.id)], after=None, replay=replay,
                                    accept=lambda m: m.aggregate_type in TRACKED and m.order_id == order.id):
            await order.refresh_from_db()
            yield _tracked(order)

    @strawberry.subscription(description="Stock changes, optionally of one SKU and/or warehouse.")
    async def inventory_changed(
        self, info: Info, sku: str | None = None, warehouse: str | None = None
    ) -> AsyncGenerator[InventoryUpdate, None]:
        async for update in _inventory_feed(info, sku, warehouse, low_only=False):
            yield update

    @strawberry.subscription(description="Stock levels crossing their reorder point.")
    async def low_stock_alerts(self, info: Info, warehouse: str | None = None) -> AsyncGenerator[InventoryUpdate, None]:
        async for update in _inventory_feed(info, None, warehouse, low_only=True):
            yield update

    @strawberry.subscription(description="Exceptions as they are raised (filled by the exceptions workflow).")
    async def exception_raised(self, info: Info, after: str | None = None) -> AsyncGenerator[StreamEvent, None]:
        viewer = info.context.viewer
        if not (viewer.kind is ViewerKind.STAFF and viewer.has_scope("orders:read")):
            raise GraphQLError("exceptionRaised needs a staff key with orders:read", extensions={"code": "FORBIDDEN"})

        async def replay(after_id: int):
            return await Event.filter(aggregate_type="Exception", id__gt=after_id).order_by("id").limit(REPLAY_LIMIT)

        async for m in event_stream([("exceptions",)], after=_cursor(after), replay=replay,
                                    accept=lambda m: m.aggregate_type == "Exception",
                                    lane=live_lane(info, StreamEvent.from_message)):
            yield StreamEvent.from_message(m)


    @strawberry.subscription(description="Exceptions as they are raised and as they move (acknowledged, escalated, "
                                          "resolved…), for staff; optionally only some kinds, severities or teams.")
    async def exception_updates(self, info: Info, kind: list[ExceptionKind] | None = None,
                                severity: list[Severity] | None = None, team: list[Team] | None = None,
                                after: str | None = None) -> AsyncGenerator[StreamEvent, None]:
        viewer = info.context.viewer
        if not (viewer.kind is ViewerKind.STAFF and viewer.has_scope("orders:read")):
            raise GraphQLError("exceptionUpdates needs a staff key with orders:read", extensions={"code": "FORBIDDEN"})
        wanted = {"kind": {str(k) for k in kind or []}, "severity": {str(s) for s in severity or []},
                  "team": {str(t) for t in team or []}}

        def accept(m: EventMessage) -> bool:
            return m.aggregate_type == "Exception" and all(not values or str(m.data.get(field)) in values
                                                           for field, values in wanted.items())

        async def replay(after_id: int):
            return await Event.filter(aggregate_type="Exception", id__gt=after_id).order_by("id").limit(REPLAY_LIMIT)

        async for m in event_stream([("exceptions",)], after=_cursor(after), replay=replay, accept=accept):
            yield StreamEvent.from_message(m)

    @strawberry.subscription(description="Returns moving: a customer's own, a partner's channels', all for staff.")
    async def return_updates(self, info: Info, after: str | None = None) -> AsyncGenerator[StreamEvent, None]:
        viewer = info.context.viewer
        if viewer.kind is ViewerKind.CUSTOMER and viewer.email:
            topics = [("customer", viewer.email)]
        elif viewer.kind is ViewerKind.PARTNER and viewer.has_scope("orders:read"):
            topics = [("channel", cid) for cid in sorted(viewer.channel_ids)]
        elif viewer.kind is ViewerKind.STAFF and viewer.has_scope("orders:read"):
            topics = [("orders",)]
        else:
            raise GraphQLError("returnUpdates needs a customer token, or a partner or staff key with orders:read",
                               extensions={"code": "FORBIDDEN"})

        def accept(m: EventMessage) -> bool:
            o = m.routing.get("order")
            if m.aggregate_type != "Return" or not o:
                return False
            if viewer.kind is ViewerKind.PARTNER:
                return o["channel_id"] in viewer.channel_ids
            if viewer.kind is ViewerKind.CUSTOMER:
                return o["email"] == viewer.email
            return True

        async def replay(after_id: int):
            return await Event.filter(
                aggregate_type="Return", id__gt=after_id,
                order_id__in=Subquery(Order.filter(order_scope(viewer)).values("id")),
            ).order_by("id").limit(REPLAY_LIMIT)

        async for m in event_stream(topics, after=_cursor(after), replay=replay, accept=accept, routing=routing_for):
            yield StreamEvent.from_message(m)


# What changes the guest's view: the order's status, its shipments' labels and scans.
TRACKED = ("Order", "Shipment")


def _tracked(o: Order) -> TrackedOrder:
    return TrackedOrder(number=o.number, status=o.status, placed_at=o.placed_at, updated_at=o.updated_at,
                        service_level=o.service_level, email=o.customer_email, order_id=o.id, currency=o.currency)


async def _order_feed(info: Info, f: OrderUpdatesFilter | None, after: str | None):
    from ordergraph.models import SalesChannel  # noqa: PLC0415

    channel_id = None
    if f and f.channel:
        channel = await SalesChannel.get_or_none(code=f.channel)
        channel_id = channel.id if channel else -1
    topics = _order_feed_topics(info, channel_id)
    viewer = info.context.viewer
    statuses = set(f.status) if f and f.status else None
    allowed_channels = {t[1] for t in topics if t[0] == "channel"}

    def accept(m: EventMessage) -> bool:
        o = m.routing.get("order")
        if not o or m.aggregate_type != "Order":
            return False
        if allowed_channels and o["channel_id"] not in allowed_channels:
            return False
        if viewer.kind is ViewerKind.CUSTOMER and o["email"] != viewer.email:
            return False
        return statuses is None or OrderUpdate.from_message(m).status in statuses

    async def replay(after_id: int):
        scoped = Order.filter(order_scope(viewer))
        if channel_id:
            scoped = scoped.filter(channel_id=channel_id)
        return await Event.filter(
            aggregate_type="Order", id__gt=after_id, order_id__in=Subquery(scoped.values("id"))
        ).order_by("id").limit(REPLAY_LIMIT)

    async for m in event_stream(topics, after=_cursor(after), replay=replay, accept=accept, routing=routing_for):
        yield OrderUpdate.from_message(m)


async def _inventory_feed(info: Info, sku: str | None, warehouse: str | None, *, low_only: bool):
    from ordergraph.models import ChannelWarehouse  # noqa: PLC0415

    viewer = info.context.viewer
    if not viewer.has_scope("inventory:read") or viewer.kind not in (ViewerKind.STAFF, ViewerKind.PARTNER):
        raise GraphQLError("this subscription needs the inventory:read scope", extensions={"code": "FORBIDDEN"})
    warehouses = None  # partners see the warehouses their channels ship from
    if viewer.kind is ViewerKind.PARTNER:
        warehouses = set(await ChannelWarehouse.filter(channel_id__in=list(viewer.channel_ids)).values_list("warehouse_id", flat=True))

    def accept(m: EventMessage) -> bool:
        inv = m.routing.get("inventory") or {}
        return m.aggregate_type == "InventoryLevel" and (warehouses is None or inv.get("warehouse_id") in warehouses)

    async def replay(after_id: int):
        return []

    async for m in event_stream([("low-stock",) if low_only else ("inventory",)], after=None, replay=replay, accept=accept):
        if low_only and m.type != "LOW_STOCK" or not low_only and m.type != "STOCK_CHANGED":
            continue
        m_sku, m_wh = await _names(m)
        if (sku and m_sku != sku) or (warehouse and m_wh != warehouse):
            continue
        yield _inventory_update(m, m_sku, m_wh)
