"""Resolution actions: the workflow moves that fix what an exception is about. Each resolves
the order's open exceptions it fixes (with the action's name), or the one given.

- `reallocate`: reroute the units a warehouse has not started picking to the other warehouses.
- `reship`: a parcel lost or refused: the same units again, as a linked replacement order at no
  charge, allocated like any order.
- `update_shipping_address`: before anything shipped; releases an ADDRESS hold.
- `cancel_and_refund`: cancel the order (allocations back, payment voided or refunded).
"""

from __future__ import annotations

from ordergraph.db import transaction
from ordergraph.models import FulfillmentOrder, Order, OrderHold, OrderLine, PackageItem, SalesChannel, Shipment
from ordergraph.models.enums import ExceptionKind as K
from ordergraph.models.enums import FulfillmentStatus, HoldReason, ShipmentDirection
from ordergraph.workflows import allocation, fulfillment
from ordergraph.workflows.commands import Address, LineCommand, PlaceOrderCommand
from ordergraph.workflows.errors import DomainError, ErrorCode, Problems
from ordergraph.workflows.events import order_event
from ordergraph.workflows.exceptions import resolve, resolve_cause


async def _resolve(order_id: int, kinds: tuple[K, ...], action: str, note: str, actor: str,
                   exception_id: int | None) -> None:
    if exception_id is not None:
        await resolve(exception_id, action, note, actor)
        return
    async with transaction():
        for kind in kinds:
            await resolve_cause(kind, actor, action, note, order_id=order_id)


async def reallocate(order_id: int, warehouse_id: int, actor: str, *, exception_id: int | None = None) -> Order:
    """Take the order's OPEN fulfillment orders away from `warehouse_id` and allocate their
    units from the channel's other warehouses (or backorder them)."""
    async with transaction():
        order = await Order.select_for_update().get_or_none(id=order_id)
        if order is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such order", ["orderId"])
        fos = await FulfillmentOrder.filter(order_id=order.id, warehouse_id=warehouse_id, status=FulfillmentStatus.OPEN)
        if not fos:
            raise DomainError(ErrorCode.INVALID_TRANSITION, "no fulfillment order of this order waits at that warehouse",
                              ["warehouse"])
        for fo in fos:
            await fulfillment._cancel_fo(fo, order, "rerouted to another warehouse", actor)
        channel = await SalesChannel.get(id=order.channel_id)
        lines = await OrderLine.filter(order_id=order.id).order_by("position")
        others = [w for w in await allocation.candidate_warehouses(channel, order.shipping_address.get("country", ""))
                  if w.id != warehouse_id]
        for ln in lines:  # what the cancelled fulfillment orders gave back is to be allocated again
            ln.backordered_quantity = 0
        plan = await allocation.allocate_lines(order, channel, lines, actor, reject_short=False, warehouses=others)
        codes = {w.id: w.code for w in others}
        await order_event(order, "ORDER_REALLOCATED", actor, reason="rerouted",
                          allocations=[{"sku": ln.sku, "warehouse": codes[lvl.warehouse_id], "quantity": q}
                                       for ln, lvl, q in plan.takes],
                          backordered=[{"sku": ln.sku, "quantity": ln.backordered_quantity} for ln in lines
                                       if ln.backordered_quantity])
        await fulfillment.create_fulfillment_orders(order, actor)
        await fulfillment.sync_order_status(order, actor, "rerouted")
    await _resolve(order_id, (K.OUT_OF_STOCK, K.SHIP_SLA_BREACH, K.SHORT_PICK), "REALLOCATE",
                   "rerouted to another warehouse", actor, exception_id)
    return await Order.get(id=order_id)


async def reship(shipment_id: int, actor: str, *, exception_id: int | None = None) -> Order:
    """Send the contents of a lost or failed parcel again: a replacement order, linked in its
    notes and events, with no payment (nothing more is charged)."""
    from ordergraph.workflows.orders import place_order  # noqa: PLC0415

    shipment = await Shipment.get_or_none(id=shipment_id)
    if shipment is None or shipment.direction is not ShipmentDirection.OUTBOUND or shipment.package_id is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such outbound shipment", ["shipmentId"])
    if shipment.status in ("LABEL_CREATED", "DELIVERED", "VOIDED"):
        raise DomainError(ErrorCode.INVALID_TRANSITION, f"shipment {shipment.tracking_number} is {shipment.status}: "
                          "only a parcel that left and did not arrive is shipped again", ["shipmentId"])
    order = await Order.get(id=shipment.order_id)
    if await Order.filter(notes=f"Reship of {shipment.tracking_number}").exists():
        raise DomainError(ErrorCode.ALREADY_EXISTS, f"{shipment.tracking_number} was already shipped again", ["shipmentId"])
    channel = await SalesChannel.get(id=order.channel_id)
    items = await PackageItem.filter(package_id=shipment.package_id).prefetch_related("fulfillment_line__order_line")
    replacement = await place_order(PlaceOrderCommand(
        channel_code=channel.code, customer_email=order.customer_email, customer_name=order.customer_name,
        customer_phone=order.customer_phone, service_level=order.service_level, notes=f"Reship of {shipment.tracking_number}",
        shipping_address=Address.from_stored(order.shipping_address),
        lines=[LineCommand(sku=it.fulfillment_line.sku, quantity=it.quantity,
                           unit_price=it.fulfillment_line.order_line.unit_price if channel.sets_prices else None)
               for it in items],
        payment=None,
    ), actor)
    async with transaction():
        locked = await Order.select_for_update().get(id=order.id)
        await order_event(locked, "ORDER_RESHIPPED", actor, tracking_number=shipment.tracking_number,
                          replacement=replacement.number)
    await _resolve(order.id, (K.LOST_IN_TRANSIT, K.DELIVERY_FAILED), "RESHIP", f"replacement {replacement.number}",
                   actor, exception_id)
    return replacement


async def update_shipping_address(order_id: int, address: Address, actor: str, *, exception_id: int | None = None) -> Order:
    """A corrected address, before anything shipped or got a label; an ADDRESS hold is released."""
    from ordergraph.workflows.order_capture import _check_address  # noqa: PLC0415
    from ordergraph.workflows.orders import _address, release_hold  # noqa: PLC0415

    problems = Problems()
    _check_address(address, problems, "address", True)
    problems.raise_if_any()
    async with transaction():
        order = await Order.select_for_update().get_or_none(id=order_id)
        if order is None:
            raise DomainError(ErrorCode.NOT_FOUND, "no such order", ["orderId"])
        if order.status in ("CANCELLED", "SHIPPED", "PARTIALLY_SHIPPED", "DELIVERED", "COMPLETED") or \
                await Shipment.filter(order_id=order.id, direction=ShipmentDirection.OUTBOUND).exclude(status="VOIDED").exists():
            raise DomainError(ErrorCode.INVALID_TRANSITION, f"order {order.number} has a label or left already", ["orderId"])
        before = order.shipping_address
        order.shipping_address = _address(address)
        await order.save(update_fields=["shipping_address", "updated_at"])
        await order_event(order, "SHIPPING_ADDRESS_UPDATED", actor, before=before, after=order.shipping_address)
    if await OrderHold.filter(order_id=order_id, reason=HoldReason.ADDRESS, released_at__isnull=True).exists():
        await release_hold(order_id, HoldReason.ADDRESS, "address corrected", actor)
    await _resolve(order_id, (K.ADDRESS_INVALID, K.DELIVERY_FAILED), "UPDATE_SHIPPING_ADDRESS", "address corrected",
                   actor, exception_id)
    return await Order.get(id=order_id)


async def cancel_and_refund(order_id: int, reason: str, actor: str, *, exception_id: int | None = None) -> Order:
    from ordergraph.workflows.orders import cancel_order  # noqa: PLC0415

    order = await cancel_order(order_id, reason, actor)
    await _resolve(order_id, tuple(K), "CANCEL_AND_REFUND", reason, actor, exception_id)
    return order
