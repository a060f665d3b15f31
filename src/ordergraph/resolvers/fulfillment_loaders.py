"""Request-scoped DataLoaders of the fulfillment graph: one query per kind of related row, read
with the same plain-SQL readers as the order loaders."""

from __future__ import annotations

from collections.abc import Callable

from strawberry.dataloader import DataLoader
from strawberry.types import Info

from ordergraph.models import (
    FulfillmentLine,
    FulfillmentOrder,
    Package,
    PackageItem,
    PickListItem,
    Shipment,
    TrackingEvent,
    Warehouse,
)
from ordergraph.resolvers.loaders import _by_id, _grouped  # the order loaders' plain-SQL readers serve here too


LOADERS: dict[str, Callable] = {
    "fos_by_order": lambda: _grouped(FulfillmentOrder, "order_id", "id"),
    "fos_by_pick_list": lambda: _grouped(FulfillmentOrder, "pick_list_id", "id"),
    "flines_by_fo": lambda: _grouped(FulfillmentLine, "fulfillment_order_id", "id"),
    "packages_by_fo": lambda: _grouped(Package, "fulfillment_order_id", "id"),
    "package_items_by_package": lambda: _grouped(PackageItem, "package_id", "id"),
    "shipments_by_order": lambda: _grouped(Shipment, "order_id", "id"),
    "shipments_by_fo": lambda: _grouped(Shipment, "fulfillment_order_id", "id"),
    "shipments_by_package": lambda: _grouped(Shipment, "package_id", "id"),
    "tracking_by_shipment": lambda: _grouped(TrackingEvent, "shipment_id", "occurred_at, id"),
    "pick_items_by_list": lambda: _grouped(PickListItem, "pick_list_id", "bin_location, sku, fulfillment_order_id"),
    "fline": lambda: _by_id(FulfillmentLine),
    "fo": lambda: _by_id(FulfillmentOrder),
    "warehouse": lambda: _by_id(Warehouse),
}


def floader(info: Info, name: str) -> DataLoader:
    return info.context.loader(f"f:{name}", lambda: DataLoader(load_fn=LOADERS[name]()))
