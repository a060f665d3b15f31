"""Holds, cancellation, allocation re-runs, payments capture/refund, refused transitions."""

from ordergraph.models import Event, InventoryLevel, Payment, StockMovement
from ordergraph.models.enums import CaptureMode
from tests import factories as f
from tests.orders_helpers import (
    ALLOCATE, CANCEL, CAPTURE, HOLD, ORDER_BY_NUMBER, PLACE, REFUND, RELEASE, order_input, world,
)


async def _place(gql, key, lines=(("SKU-A", 2),), **kw):
    r = (await gql(PLACE, {"input": order_input(list(lines), **kw)}, auth=key))["placeOrder"]
    assert r["__typename"] == "OrderPayload", r
    return r["order"]


async def test_holds_stack_and_release_one_by_one(gql, db):
    await world()
    key = await f.staff_key()
    o = await _place(gql, key)
    a = (await gql(HOLD, {"id": o["id"], "reason": "FRAUD_REVIEW"}, auth=key))["placeHold"]["order"]
    b = (await gql(HOLD, {"id": o["id"], "reason": "ADDRESS"}, auth=key))["placeHold"]["order"]
    assert a["onHold"] and b["holds"] == [{"reason": "FRAUD_REVIEW", "active": True}, {"reason": "ADDRESS", "active": True}]
    assert b["availableActions"] == ["CANCEL", "PLACE_HOLD", "RELEASE_HOLD"]
    dup = (await gql(HOLD, {"id": o["id"], "reason": "ADDRESS"}, auth=key))["placeHold"]
    assert dup["code"] == "ALREADY_EXISTS"
    missing = (await gql(RELEASE, {"id": o["id"], "reason": "CUSTOMER"}, auth=key))["releaseHold"]
    assert missing["code"] == "HOLD_NOT_FOUND"
    c = (await gql(RELEASE, {"id": o["id"], "reason": "FRAUD_REVIEW"}, auth=key))["releaseHold"]["order"]
    assert c["onHold"] is True
    d = (await gql(RELEASE, {"id": o["id"], "reason": "ADDRESS"}, auth=key))["releaseHold"]["order"]
    assert d["onHold"] is False
    assert d["holds"] == [{"reason": "FRAUD_REVIEW", "active": False}, {"reason": "ADDRESS", "active": False}]
    types = [e["type"] for e in d["timeline"]]
    assert [t for t in types if t.startswith("HOLD_")][-4:] == ["HOLD_PLACED", "HOLD_PLACED", "HOLD_RELEASED", "HOLD_RELEASED"]
    # fraud review and address holds are exceptions: raised with the hold, resolved with its release
    assert [(e["type"], e["data"]["kind"]) for e in d["timeline"] if e["type"].startswith("EXCEPTION_")] == [
        ("EXCEPTION_RAISED", "FRAUD_REVIEW"), ("EXCEPTION_RAISED", "ADDRESS_INVALID"),
        ("EXCEPTION_RESOLVED", "FRAUD_REVIEW"), ("EXCEPTION_RESOLVED", "ADDRESS_INVALID")]
    none_left = (await gql(RELEASE, {"id": o["id"], "reason": "ADDRESS"}, auth=key))["releaseHold"]
    assert none_left["__typename"] == "InvalidTransitionError"
    assert none_left["currentState"] == "ALLOCATED"


async def test_cancel_releases_allocations_voids_payment_and_refuses_twice(gql, db):
    w = await world()
    key = await f.staff_key()
    o = await _place(gql, key, [("SKU-A", 5)])
    r = (await gql(CANCEL, {"id": o["id"], "reason": "customer asked"}, auth=key))["cancelOrder"]["order"]
    assert r["status"] == "CANCELLED"
    assert r["lines"][0]["cancelledQuantity"] == 5 and r["lines"][0]["allocatedQuantity"] == 0
    assert {a["status"] for a in r["lines"][0]["allocations"]} == {"RELEASED"}
    assert r["payments"][0]["status"] == "VOIDED"
    assert [e["type"] for e in r["timeline"] if not e["type"].startswith("FULFILLMENT_")][-2:] == [
        "ORDER_CANCELLED", "PAYMENT_VOIDED"]
    assert "FULFILLMENT_ORDER_CANCELLED" in [e["type"] for e in r["timeline"]]  # its warehouses' work is called off
    assert r["availableActions"] == []
    levels = await InventoryLevel.filter(variant=w["a"]).order_by("id").values_list("allocated", flat=True)
    assert list(levels) == [0, 0]
    dealloc = await StockMovement.filter(kind="DEALLOCATION").order_by("id").values_list("quantity", "allocated_after")
    assert dealloc == [(-3, 0), (-2, 0)]
    events = await Event.all().count()
    again = (await gql(CANCEL, {"id": o["id"], "reason": "again"}, auth=key))["cancelOrder"]
    assert again["__typename"] == "InvalidTransitionError"
    assert again["code"] == "INVALID_TRANSITION"
    assert again["currentState"] == "CANCELLED"
    assert again["allowedActions"] == []
    assert await Event.all().count() == events


async def test_cancel_after_capture_refunds(gql, db):
    await world(capture=CaptureMode.ON_CONFIRMATION)
    key = await f.staff_key()
    o = await _place(gql, key, [("SKU-B", 2)])
    assert o["payments"][0]["status"] == "CAPTURED"
    assert o["payments"][0]["captured"] == {"amount": "51.00"}
    r = (await gql(CANCEL, {"id": o["id"], "reason": "fraud"}, auth=key))["cancelOrder"]["order"]
    assert r["payments"][0]["status"] == "REFUNDED"
    assert r["payments"][0]["refunded"] == {"amount": "51.00"}


async def test_capture_on_confirmation_failure_puts_order_on_payment_hold(gql, db):
    await world(capture=CaptureMode.ON_CONFIRMATION)
    key = await f.staff_key()
    o = await _place(gql, key, [("SKU-A", 1)], token="tok_expiring")
    got = (await gql(ORDER_BY_NUMBER, {"n": o["number"]}, auth=key))["order"]
    assert got["payments"][0]["status"] == "AUTHORIZED"
    assert got["holds"] == [{"reason": "PAYMENT", "active": True}]
    assert "PAYMENT_CAPTURE_FAILED" in [e["type"] for e in got["timeline"]]


async def test_partial_capture_and_refunds_never_exceed_captured(gql, db):
    await world()
    key = await f.staff_key()
    o = await _place(gql, key, [("SKU-A", 3)])  # 30.00 authorized
    assert o["firstPaymentActions"] == [{"availableActions": ["CAPTURE", "VOID"]}]
    r = (await gql(CAPTURE, {"id": o["id"], "amount": "20.00"}, auth=key))["capturePayment"]["order"]
    assert r["payments"][0]["status"] == "PARTIALLY_CAPTURED"
    assert r["firstPaymentActions"] == [{"availableActions": ["CAPTURE", "REFUND"]}]
    over = (await gql(CAPTURE, {"id": o["id"], "amount": "10.01"}, auth=key))["capturePayment"]
    assert over["code"] == "CAPTURE_EXCEEDS_AUTHORIZED"
    r = (await gql(REFUND, {"id": o["id"], "amount": "5.00"}, auth=key))["refundPayment"]["order"]
    assert r["payments"][0]["status"] == "PARTIALLY_REFUNDED"
    assert r["payments"][0]["refunded"] == {"amount": "5.00"}
    before = await Payment.get(id=1)
    too_much = (await gql(REFUND, {"id": o["id"], "amount": "15.01"}, auth=key))["refundPayment"]
    assert too_much["__typename"] == "PaymentError"
    assert too_much["code"] == "REFUND_EXCEEDS_CAPTURED"
    after = await Payment.get(id=1)
    assert (after.refunded_amount, after.status) == (before.refunded_amount, before.status)
    r = (await gql(REFUND, {"id": o["id"]}, auth=key))["refundPayment"]["order"]
    assert r["payments"][0]["status"] == "REFUNDED" and r["payments"][0]["refunded"] == {"amount": "20.00"}


async def test_payments_need_payments_scope(gql, db):
    await world()
    key = await f.staff_key(["orders:read", "orders:write"])
    o = await _place(gql, await f.staff_key(), [("SKU-A", 1)])
    r = (await gql(CAPTURE, {"id": o["id"]}, auth=key))["capturePayment"]
    assert (r["__typename"], r["code"]) == ("NotAuthorizedError", "FORBIDDEN")
    assert (await Payment.get(id=1)).captured_amount == 0


async def test_allocate_order_reruns_for_backordered_units(gql, db):
    from ordergraph.models.enums import MovementKind, StockPolicy
    from ordergraph.workflows.stock import move

    w = await world(stock_policy=StockPolicy.ACCEPT)
    key = await f.staff_key()
    o = await _place(gql, key, [("SKU-C", 3)])
    assert o["status"] == "PARTIALLY_ALLOCATED"
    level = await InventoryLevel.get(warehouse=w["west"], variant=w["c"])
    await move(level.id, MovementKind.RECEIPT, actor="test", d_on_hand=1)  # no hook: manual re-run
    r = (await gql(ALLOCATE, {"id": o["id"]}, auth=key))["allocateOrder"]["order"]
    assert r["status"] == "ALLOCATED"
    assert r["lines"][0]["allocatedQuantity"] == 3
    done = (await gql(ALLOCATE, {"id": o["id"]}, auth=key))["allocateOrder"]
    assert done["__typename"] == "InvalidTransitionError"
    assert done["currentState"] == "ALLOCATED"


async def test_unknown_order_id_is_not_found(gql, db):
    key = await f.staff_key()
    r = (await gql(CANCEL, {"id": "T3JkZXI6OTk5", "reason": "x"}, auth=key))["cancelOrder"]
    assert (r["__typename"], r["code"]) == ("NotFoundError", "NOT_FOUND")
