"""Order capture and lifecycle use cases: place, confirm, hold, release, cancel."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from types import SimpleNamespace
from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError

from ordergraph.db import Params, Raw, create_rows, dialect, fetch, insert_sql, model_rows, save_fields, transaction
from ordergraph.integrations.payments import GatewayUnavailable
from ordergraph.models import Order, OrderHold, OrderLine, Payment
from ordergraph.models.enums import HoldReason, OrderStatus, PaymentStatus
from ordergraph.observability import ORDERS_PLACED, log
from ordergraph.workflows import allocation, payments
from ordergraph.workflows.backorders import on_stock_increased
from ordergraph.workflows.commands import PaymentCommand, PlaceOrderCommand
from ordergraph.workflows.errors import DomainError, ErrorCode, ValidationFailed
from ordergraph.workflows.events import deferred, order_event
from ordergraph.workflows.order_capture import duplicate_external_id, validate_order
from ordergraph.workflows.order_lifecycle import ORDER, OrderContext
from ordergraph.models.enums import CaptureMode


def _address(a) -> dict:
    if a is None:
        return {}
    data = {k: v for k, v in asdict(a).items() if v not in (None, "")}
    if "country" in data:
        data["country"] = data["country"].strip().upper()
    return data


async def place_order(cmd: PlaceOrderCommand, actor: str, allowed_channel_ids: frozenset[int] | None = None) -> Order:
    """Capture, validate, authorize, confirm and allocate an order.

    Nothing is written when validation fails or when a REJECT channel lacks stock (an
    authorization already obtained is voided). A declined payment still captures the
    order, PENDING on a PAYMENT hold.
    """
    valid = await validate_order(cmd, allowed_channel_ids)
    auth = None
    pay: PaymentCommand | None = cmd.payment
    total = valid.subtotal
    if pay is not None:
        try:
            auth = await payments.authorize(pay.gateway, total, valid.currency, pay.token)
        except GatewayUnavailable as exc:
            raise DomainError(ErrorCode.GATEWAY_UNAVAILABLE, "the payment gateway is unavailable; retry later", ["payment"]) from exc
    # Routing facts are read before the transaction: it then holds its connection (and, from
    # the moment it locks them, the inventory rows) for fewer statements.
    country = _address(cmd.shipping_address).get("country", "")
    if valid.warehouses is not None:  # read with the channel (PostgreSQL)
        warehouses = allocation.shipping_to(valid.warehouses, country)
    else:
        warehouses = await allocation.candidate_warehouses(valid.channel, country)
    try:
        try:
            order = await _write_order(cmd, valid, auth, actor, warehouses, plan_before_locking=True)
        except allocation.PlanChanged:
            # The stock moved between the plan and the locks; all of it was rolled back.
            order = await _write_order(cmd, valid, auth, actor, warehouses, plan_before_locking=False)
    except BaseException:
        if auth is not None and auth.approved:
            try:
                await payments.void_authorization(pay.gateway, auth.reference)
            except Exception:  # noqa: BLE001
                log.error("payment.void_failed", reference=auth.reference)
        raise
    ORDERS_PLACED.labels(valid.channel.code).inc()
    if order.status in allocation.ALLOCATED_STATES and valid.channel.capture_mode is CaptureMode.ON_CONFIRMATION:
        await capture_on_confirmation(order, actor)
    return order


async def _write_order(cmd: PlaceOrderCommand, valid, auth, actor: str, warehouses, *, plan_before_locking: bool) -> Order:
    channel = valid.channel
    try:
        # The events of the whole placement go in one INSERT at its end (still in the transaction).
        async with transaction(), deferred():
            now = datetime.now(UTC)
            order_row = {
                "number": f"TMP-{uuid.uuid4().hex[:24]}",
                "channel_id": channel.id,
                "external_id": cmd.external_id,
                "customer_email": cmd.customer_email.strip().lower(),
                "customer_name": cmd.customer_name.strip(),
                "customer_phone": cmd.customer_phone.strip(),
                "shipping_address": _address(cmd.shipping_address),
                "billing_address": _address(cmd.billing_address or cmd.shipping_address),
                "service_level": cmd.service_level,
                "notes": cmd.notes,
                "currency": valid.currency,
                "subtotal": valid.subtotal,
                "total": valid.subtotal,
                "placed_at": now,
                "updated_at": now,
            }
            line_rows = [
                {"position": i, "variant_id": valid.variants[ln.sku].id, "sku": ln.sku,
                 "name": valid.variants[ln.sku].name, "external_line_id": ln.external_line_id,
                 "quantity": ln.quantity, "unit_price": price}
                for i, (ln, price) in enumerate(zip(cmd.lines, valid.prices, strict=True))
            ]
            if dialect() == "postgres":  # the order, its lines and its payment in one statement
                order, lines, payment = await _insert_order_pg(order_row, line_rows, cmd, auth)
            else:
                [order] = await create_rows(Order, [order_row])
                lines = await create_rows(OrderLine, [{**row, "order_id": order.id} for row in line_rows])
                payment = None
            # The number (and CONFIRMED, below) reach the row with its next update, in this
            # transaction: no one else sees the row before it commits.
            order.number = f"SO-{order.id:06d}"
            await order_event(
                order, "ORDER_PLACED", actor, new=True, status=order.status, channel=channel.code, total=order.total,
                currency=order.currency, lines=[{"sku": ln.sku, "quantity": ln.quantity} for ln in lines],
            )
            if auth is not None:
                if payment is None:
                    await payments.record_authorization(order, cmd.payment.gateway, cmd.payment.method, auth, actor)
                else:
                    await payments.authorization_event(order, payment, auth, actor)
                if not auth.approved:
                    await save_fields(order, ["number"])
                    await _hold(order, HoldReason.PAYMENT, f"payment declined: {auth.decline_code}", actor)
                    if cmd.reservation_token:
                        await _release_reservation(cmd.reservation_token, actor)
                    return order
            # A brand-new order: no holds, the payment just authorized (or none), nothing allocated.
            ctx = OrderContext(order, 0, PaymentStatus.AUTHORIZED if auth else None, sum(ln.quantity for ln in lines))
            await _confirm(order, actor, ctx, write=False)  # allocation writes the row: number and status
            await _allocate_new(order, cmd, lines, valid, ctx, actor, warehouses, plan_before_locking)
            return order
    except IntegrityError as exc:
        if cmd.external_id:  # lost a race with a concurrent capture of the same external id
            existing = await Order.get_or_none(channel_id=channel.id, external_id=cmd.external_id)
            if existing:
                raise ValidationFailed([duplicate_external_id(cmd, existing.number)]) from None
        raise


async def _insert_order_pg(order_row: dict, line_rows: list[dict], cmd: PlaceOrderCommand, auth):
    """PostgreSQL: the order, its lines and (with `auth`) its payment and the payment's
    transaction in one statement (data-modifying CTEs; the others take the order's id from its
    CTE). Returns the instances as written, with their ids; the payment is None without `auth`."""
    p = Params()
    o_cols, o_vals = model_rows(Order, [order_row])
    l_cols, l_vals = model_rows(OrderLine, [{**row, "order_id": Raw("(SELECT id FROM _o)")} for row in line_rows])
    ctes = [
        f"_o AS ({insert_sql('orders', o_cols, o_vals, 'id', params=p)[0]})",
        f"_l AS ({insert_sql('order_lines', l_cols, l_vals, 'id, position', params=p)[0]})",
    ]
    made_payment = None
    if auth is not None:
        probe = SimpleNamespace(id=None, currency=order_row["currency"], total=order_row["total"])  # what they read
        payment_row, transaction_row = payments.authorization_rows(probe, cmd.payment.gateway, cmd.payment.method, auth)
        more, made_payment = payments.authorization_ctes({**payment_row, "order_id": Raw("(SELECT id FROM _o)")},
                                                         transaction_row, p)
        ctes += more
    [row] = await fetch(
        f"WITH {', '.join(ctes)} SELECT (SELECT id FROM _o) AS order_id,"
        " ARRAY(SELECT id FROM _l ORDER BY position) AS line_ids"
        + (", (SELECT id FROM _p) AS payment_id" if auth is not None else ""),
        p.values,
    )
    order_id = row["order_id"]
    order = Order._init_from_db(id=order_id, **dict(zip(o_cols, o_vals[0], strict=True)))
    lines = []
    for line_id, values in zip(row["line_ids"], l_vals, strict=True):
        written = {c: v for c, v in zip(l_cols, values, strict=True) if not isinstance(v, Raw)}
        lines.append(OrderLine._init_from_db(id=line_id, order_id=order_id, **written))
    payment = None
    if made_payment is not None:
        payment = made_payment(row["payment_id"])
        payment.order_id = order_id
    return order, lines, payment


async def _release_reservation(token: str, actor: str) -> None:
    from ordergraph.workflows.reservations import release_reservation  # noqa: PLC0415

    try:
        await release_reservation(token, actor)
    except DomainError:
        pass  # already gone: nothing held for this order


async def _allocate_new(
    order: Order, cmd: PlaceOrderCommand, lines: list[OrderLine], valid, ctx, actor: str, warehouses,
    plan_before_locking: bool,
) -> None:
    channel = valid.channel
    variants = {v.id: v for v in valid.variants.values()}
    if not cmd.reservation_token:
        # Everything but the stock itself is written before the inventory rows are locked.
        await allocation.run_allocation(
            order, actor, reject_short=True, ctx=ctx, channel=channel, lines=lines, variants=variants,
            warehouses=warehouses, plan_before_locking=plan_before_locking, also_save=("number",),
            early_levels=valid.levels if plan_before_locking else None,
        )
        return
    variant_ids = list({ln.variant_id for ln in lines})
    from ordergraph.models import Reservation, ReservationLine  # noqa: PLC0415

    reserved_wh: list[int] = []
    res = await Reservation.get_or_none(token=cmd.reservation_token)
    if res is not None:
        reserved_wh = list(await ReservationLine.filter(reservation_id=res.id).values_list("warehouse_id", flat=True))
    levels = await allocation.lock_levels(list({w.id for w in warehouses} | set(reserved_wh)), variant_ids)
    await _consume_reservation(order, cmd.reservation_token, lines, actor)
    for lvl in levels.values():
        await lvl.refresh_from_db()
    await allocation.run_allocation(
        order, actor, reject_short=True, ctx=ctx, channel=channel, lines=lines, variants=variants, levels=levels,
        warehouses=warehouses, also_save=("number",),
    )


async def _consume_reservation(order: Order, token: str, lines: list[OrderLine], actor: str) -> None:
    from ordergraph.models import Allocation  # noqa: PLC0415
    from ordergraph.workflows.reservations import consume_reservation  # noqa: PLC0415

    needs: dict[int, int] = {}
    for ln in lines:
        needs[ln.variant_id] = needs.get(ln.variant_id, 0) + ln.quantity
    taken = await consume_reservation(token, order.channel_id, needs, order.id, actor)
    by_variant = {}
    for ln in lines:
        by_variant.setdefault(ln.variant_id, []).append(ln)
    for (warehouse_id, variant_id), qty in taken.items():
        for ln in by_variant.get(variant_id, []):
            room = ln.quantity - ln.allocated_quantity
            take = min(room, qty)
            if take <= 0:
                continue
            await Allocation.create(line=ln, order_id=order.id, warehouse_id=warehouse_id, quantity=take)
            ln.allocated_quantity += take
            await ln.save(update_fields=["allocated_quantity"])
            qty -= take
            if qty == 0:
                break


async def _confirm(order: Order, actor: str, ctx: OrderContext | None = None, *, write: bool = True) -> None:
    """`write=False`: the caller writes the row later in the same transaction."""
    ORDER.target(order, "CONFIRM", ctx or await allocation.order_context(order))
    order.status = OrderStatus.CONFIRMED
    if write:
        await order.save(update_fields=["status", "updated_at"])
    await order_event(order, "ORDER_CONFIRMED", actor, status={"from": OrderStatus.PENDING, "to": OrderStatus.CONFIRMED})


async def capture_on_confirmation(order: Order, actor: str) -> None:
    """Channels that capture on confirmation: capture the whole authorization now.

    A failed capture (expired authorization, gateway down) puts the order on a PAYMENT hold.
    """
    payment = await payments.primary_payment(order.id)
    if payment is None or payment.status is not PaymentStatus.AUTHORIZED:
        return
    try:
        await payments.capture(payment.id, None, actor)
    except DomainError as exc:
        async with transaction():
            locked = await Order.select_for_update().get(id=order.id)
            await _hold(locked, HoldReason.PAYMENT, f"capture failed: {exc.code}", actor)


async def _hold(order: Order, reason: HoldReason, note: str, actor: str) -> OrderHold:
    hold = await OrderHold.create(order=order, reason=reason, note=note, placed_by=actor)
    await order_event(order, "HOLD_PLACED", actor, hold_id=hold.id, reason=reason, note=note)
    from ordergraph.workflows.exceptions import on_hold_placed  # noqa: PLC0415

    await on_hold_placed(order, hold, actor)
    return hold


async def locked_order(order_id: int) -> Order:
    """The order, row-locked for the rest of the transaction; NOT_FOUND when there is none."""
    order = await Order.select_for_update().get_or_none(id=order_id)
    if order is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such order", ["id"])
    return order


async def place_hold(order_id: int, reason: HoldReason, note: str, actor: str) -> Order:
    async with transaction():
        order = await locked_order(order_id)
        ORDER.target(order, "PLACE_HOLD", await allocation.order_context(order))
        if await OrderHold.filter(order_id=order.id, reason=reason, released_at__isnull=True).exists():
            raise DomainError(ErrorCode.ALREADY_EXISTS, f"the order already has an active {reason} hold", ["reason"])
        await _hold(order, reason, note, actor)
    return order


async def release_hold(order_id: int, reason: HoldReason, note: str, actor: str) -> Order:
    """Release one hold; when none is left the order continues (confirm, allocate)."""
    async with transaction():
        order = await locked_order(order_id)
        ORDER.target(order, "RELEASE_HOLD", await allocation.order_context(order))
        hold = await OrderHold.filter(order_id=order.id, reason=reason, released_at__isnull=True).first()
        if hold is None:
            raise DomainError(ErrorCode.HOLD_NOT_FOUND, f"the order has no active {reason} hold", ["reason"])
        hold.released_at = datetime.now(UTC)
        hold.released_by = actor
        hold.release_note = note
        await hold.save(update_fields=["released_at", "released_by", "release_note"])
        await order_event(order, "HOLD_RELEASED", actor, hold_id=hold.id, reason=reason, note=note)
        from ordergraph.workflows.exceptions import on_hold_released  # noqa: PLC0415

        await on_hold_released(order, hold, actor)
        ctx = await allocation.order_context(order)
        if not ctx.active_holds:
            await _resume(order, ctx, actor)
    if order.status in allocation.ALLOCATED_STATES:
        channel = await order.channel
        if channel.capture_mode is CaptureMode.ON_CONFIRMATION:
            await capture_on_confirmation(order, actor)
    return order


async def _resume(order: Order, ctx: OrderContext, actor: str) -> None:
    if order.status is OrderStatus.PENDING and "CONFIRM" in ORDER.available(order, ctx):
        await _confirm(order, actor)
        ctx = await allocation.order_context(order)
    if "ALLOCATE" in ORDER.available(order, ctx):
        await allocation.run_allocation(order, actor, reject_short=False)


async def cancel_order(order_id: int, reason: str, actor: str) -> Order:
    """Cancel before shipment: release allocations, then void or refund the payment."""
    async with transaction():
        order = await locked_order(order_id)
        ORDER.target(order, "CANCEL", await allocation.order_context(order))
        before = order.status
        freed = await allocation.release_allocations(order, actor, f"order cancelled: {reason}")
        lines = await OrderLine.filter(order_id=order.id)
        for ln in lines:
            ln.cancelled_quantity = ln.quantity - ln.shipped_quantity
            ln.allocated_quantity = 0
            ln.backordered_quantity = 0
        if lines:
            await OrderLine.bulk_update(lines, fields=["cancelled_quantity", "allocated_quantity", "backordered_quantity"])
        order.status = OrderStatus.CANCELLED
        order.cancelled_at = datetime.now(UTC)
        order.cancel_reason = reason
        await order.save(update_fields=["status", "cancelled_at", "cancel_reason", "updated_at"])
        await order_event(order, "ORDER_CANCELLED", actor, status={"from": before, "to": OrderStatus.CANCELLED}, reason=reason)
        from ordergraph.workflows.fulfillment import cancel_for_order  # noqa: PLC0415

        await cancel_for_order(order, reason, actor)
    await _settle_cancelled_payment(order, actor)
    for variant_id in freed:
        await on_stock_increased(variant_id, actor)
    return order


async def _settle_cancelled_payment(order: Order, actor: str) -> None:
    for payment in await Payment.filter(order_id=order.id):
        try:
            if payment.status is PaymentStatus.AUTHORIZED:
                await payments.void(payment.id, actor)
            elif payment.captured_amount > payment.refunded_amount:
                await payments.refund(payment.id, None, actor, reason="order cancelled")
        except DomainError as exc:
            # The order stays cancelled; the failed settlement is on its timeline for follow-up.
            async with transaction():
                await order_event(order, "PAYMENT_SETTLEMENT_FAILED", actor, payment_id=payment.id, code=exc.code)


async def retry_payment(order_id: int, pay: PaymentCommand, actor: str) -> Order:
    """A new payment for an order whose payment failed; success releases the PAYMENT hold."""
    order = await Order.get_or_none(id=order_id)
    if order is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such order", ["id"])
    if order.status is not OrderStatus.PENDING or await payments.primary_payment(order.id):
        raise DomainError(ErrorCode.INVALID_TRANSITION, f"order {order.number} has no failed payment to retry")
    try:
        auth = await payments.authorize(pay.gateway, order.total, order.currency, pay.token)
    except GatewayUnavailable as exc:
        raise DomainError(ErrorCode.GATEWAY_UNAVAILABLE, "the payment gateway is unavailable; retry later", ["payment"]) from exc
    async with transaction():
        order = await locked_order(order_id)
        await payments.record_authorization(order, pay.gateway, pay.method, auth, actor)
    if not auth.approved:
        raise DomainError(
            payments.decline_error(auth.decline_code), auth.message or "payment declined", ["payment"],
            {"decline_code": auth.decline_code},
        )
    if await OrderHold.filter(order_id=order.id, reason=HoldReason.PAYMENT, released_at__isnull=True).exists():
        return await release_hold(order.id, HoldReason.PAYMENT, "payment authorized", actor)
    return order
