"""Who may see and change what. Another viewer's data answers exactly like missing data."""

from __future__ import annotations

from tortoise.expressions import Q

from ordergraph.auth.viewer import Viewer, ViewerKind

NOTHING = Q(id=-1)


def order_scope(viewer: Viewer, write: bool = False) -> Q:
    """A filter selecting the orders the viewer may read (or write)."""
    scope = "orders:write" if write else "orders:read"
    if viewer.kind is ViewerKind.STAFF:
        return Q() if viewer.has_scope(scope) else NOTHING
    if viewer.kind is ViewerKind.PARTNER:
        if not viewer.has_scope(scope) or not viewer.channel_ids:
            return NOTHING
        return Q(channel_id__in=list(viewer.channel_ids))
    if viewer.kind is ViewerKind.CUSTOMER and viewer.email and not write:
        return Q(customer_email=viewer.email)
    return NOTHING


def can_read_order(viewer: Viewer, order) -> bool:
    if viewer.kind is ViewerKind.STAFF:
        return viewer.has_scope("orders:read")
    if viewer.kind is ViewerKind.PARTNER:
        return viewer.has_scope("orders:read") and order.channel_id in viewer.channel_ids
    if viewer.kind in (ViewerKind.CUSTOMER, ViewerKind.GUEST):
        return bool(viewer.email) and order.customer_email == viewer.email
    return False


def can_write_order(viewer: Viewer, order) -> bool:
    if viewer.kind is ViewerKind.STAFF:
        return viewer.has_scope("orders:write")
    if viewer.kind is ViewerKind.PARTNER:
        return viewer.has_scope("orders:write") and order.channel_id in viewer.channel_ids
    return False
