"""Issue 5 over HTTP: a partner app's return from request to refund (auto-approval, label, the
carrier's signed webhook, receipt, inspection, refund), its idempotent retry, and every
refusal a typed error with nothing written."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from ordergraph.integrations.carriers import TrackingStatus as CarrierStatus
from ordergraph.integrations.carriers.registry import local_carrier
from ordergraph.integrations.webhooks import carrier_webhook_headers
from ordergraph.models import Event, InventoryLevel, Order, Payment, ReturnAuthorization, SalesChannel
from ordergraph.models.enums import CaptureMode
from ordergraph.seed import fulfil_order
from ordergraph.workflows.commands import Address, LineCommand, PaymentCommand, PlaceOrderCommand
from ordergraph.workflows.orders import place_order
from tests import factories as f

RESULT = """__typename
  ... on ReturnPayload { return { id number status autoApproved availableActions
      lines { id sku quantity reason receivedQuantity inspectedQuantity refundedQuantity
              inspections { quantity condition disposition warehouseCode } }
      labels { carrier trackingNumber direction status }
      refundAmount { amount } refundPreview { merchandise { amount } total { amount } } } }
  ... on InvalidInputError { problems { code field } }
  ... on Error { code message field }"""
REQUEST = """mutation($order: ID!, $lines: [ReturnLineInput!]!, $key: String) {
  requestReturn(orderId: $order, lines: $lines, idempotencyKey: $key) { %s } }""" % RESULT
LABEL = "mutation($id: ID!) { issueReturnLabel(id: $id) { %s } }" % RESULT
RECEIVE = "mutation($id: ID!, $lines: [ReceivedLineInput!]!) { receiveReturn(id: $id, lines: $lines) { %s } }" % RESULT
INSPECT = "mutation($id: ID!, $items: [InspectionInput!]!) { inspectReturn(id: $id, items: $items) { %s } }" % RESULT
REFUND = "mutation($id: ID!) { refundReturn(id: $id) { %s } }" % RESULT
APPROVE = "mutation($id: ID!) { approveReturn(id: $id) { %s } }" % RESULT
ORDER = """query($n: String!) { order(number: $n) { id status lines { id sku }
  returns { number status } timeline { type } } }"""
NYC = Address(name="Ada Lovelace", line1="1 Main St", city="New York", postal_code="10001", country="US")


async def _world():
    east = await f.warehouse("EAST", priority=1)
    web = await f.channel("WEB", [east], capture=CaptureMode.ON_SHIPMENT)
    other = await f.channel("MKT", [east])
    await SalesChannel.filter(id=web.id).update(auto_approve_reasons=["DAMAGED", "DEFECTIVE"],
                                                auto_approve_max_value=Decimal("100"))
    for sku, price in (("SKU-A", "10.00"), ("SKU-B", "25.00")):
        await f.stock(east, await f.variant(sku, price=price, weight_grams=500), 10)
    order = await place_order(PlaceOrderCommand("WEB", "ada@example.com", [LineCommand("SKU-A", 2), LineCommand("SKU-B", 1)],
                                                NYC, payment=PaymentCommand()), "test")
    order = await fulfil_order(order, deliver=True)
    staff = await f.staff_key()
    partner = await f.partner_key("RETURNLY", [web], ["orders:read", "orders:write", "returns:write"])
    stranger = await f.partner_key("OTHER", [other], ["orders:read", "orders:write", "returns:write"])
    return order, staff, partner, stranger


async def _snapshot():
    return (await ReturnAuthorization.all().count(), await Event.filter(aggregate_type="Return").count())


async def test_partner_app_return_from_request_to_refund(server, gql, db):
    order, staff, partner, _ = await _world()
    view = (await gql(ORDER, {"n": order.number}, auth=partner))["order"]
    line_a = next(ln["id"] for ln in view["lines"] if ln["sku"] == "SKU-A")
    req = {"order": view["id"], "lines": [{"orderLineId": line_a, "quantity": 2, "reason": "DAMAGED", "note": "crushed box"}],
           "key": "returnly-77"}
    first = (await gql(REQUEST, req, auth=partner))["requestReturn"]
    rma = first["return"]
    assert (rma["status"], rma["autoApproved"], rma["availableActions"]) == ("APPROVED", True, ["ISSUE_LABEL", "RECEIVE", "CANCEL"])
    # the partner's retry with its idempotency key: the first result, one return
    again = (await gql(REQUEST, req, auth=partner))["requestReturn"]
    assert again == first and await ReturnAuthorization.all().count() == 1

    labelled = (await gql(LABEL, {"id": rma["id"]}, auth=partner))["issueReturnLabel"]["return"]
    [label] = labelled["labels"]
    assert (labelled["status"], label["direction"], label["status"]) == ("LABEL_ISSUED", "RETURN", "LABEL_CREATED")
    async with httpx.AsyncClient(base_url=server) as http:
        for i, status in enumerate((CarrierStatus.PICKED_UP, CarrierStatus.DELIVERED)):
            body = local_carrier(label["carrier"]).webhook_event(
                label["trackingNumber"], status, location="Newark, NJ", occurred_at=datetime.now(UTC) + timedelta(minutes=i),
                event_id=f"ret-{i}")
            resp = await http.post(f"/webhooks/carriers/{label['carrier']}", content=body,
                                   headers=carrier_webhook_headers(label["carrier"], body, timestamp=int(time.time())))
            assert resp.status_code == 200, resp.text
    assert (await ReturnAuthorization.get(number=rma["number"])).status == "RECEIVED"

    [rl] = labelled["lines"]
    refused = (await gql(RECEIVE, {"id": rma["id"], "lines": [{"returnLineId": rl["id"], "quantity": 2}]},
                         auth=partner))["receiveReturn"]
    assert (refused["__typename"], refused["code"]) == ("NotAuthorizedError", "FORBIDDEN")  # the dock is staff's
    got = (await gql(RECEIVE, {"id": rma["id"], "lines": [{"returnLineId": rl["id"], "quantity": 2}]},
                     auth=staff))["receiveReturn"]["return"]
    assert got["lines"][0]["receivedQuantity"] == 2
    on_hand = (await InventoryLevel.get(variant__sku="SKU-A")).on_hand
    inspected = (await gql(INSPECT, {"id": rma["id"], "items": [
        {"returnLineId": rl["id"], "quantity": 1, "condition": "RESELLABLE", "disposition": "RESTOCK"},
        {"returnLineId": rl["id"], "quantity": 1, "condition": "DAMAGED", "disposition": "DISPOSE"},
    ]}, auth=staff))["inspectReturn"]["return"]
    assert inspected["status"] == "INSPECTED"
    assert inspected["lines"][0]["inspections"] == [
        {"quantity": 1, "condition": "RESELLABLE", "disposition": "RESTOCK", "warehouseCode": "EAST"},
        {"quantity": 1, "condition": "DAMAGED", "disposition": "DISPOSE", "warehouseCode": None}]
    assert (await InventoryLevel.get(variant__sku="SKU-A")).on_hand == on_hand + 1
    assert inspected["refundPreview"] == {"merchandise": {"amount": "20.00"}, "total": {"amount": "20.00"}}

    refunded = (await gql(REFUND, {"id": rma["id"]}, auth=partner))["refundReturn"]["return"]
    assert (refunded["status"], refunded["refundAmount"], refunded["lines"][0]["refundedQuantity"]) == (
        "REFUNDED", {"amount": "20.00"}, 2)
    payment = await Payment.get(order_id=order.id)
    assert (payment.status, payment.refunded_amount) == ("PARTIALLY_REFUNDED", Decimal("20.00"))
    timeline = [e["type"] for e in (await gql(ORDER, {"n": order.number}, auth=staff))["order"]["timeline"]]
    returns_part = [t for t in timeline if t.startswith("RETURN_") or t == "PAYMENT_REFUNDED"]
    assert returns_part == ["RETURN_REQUESTED", "RETURN_APPROVED", "RETURN_LABEL_ISSUED", "RETURN_IN_TRANSIT",
                            "RETURN_ARRIVED", "RETURN_RECEIVED", "RETURN_INSPECTED", "PAYMENT_REFUNDED", "RETURN_REFUNDED"]


async def test_refusals_are_typed_and_write_nothing(server, gql, db):
    order, staff, partner, stranger = await _world()
    view = (await gql(ORDER, {"n": order.number}, auth=staff))["order"]
    line_a = next(ln["id"] for ln in view["lines"] if ln["sku"] == "SKU-A")
    before = await _snapshot()
    ask = {"order": view["id"], "lines": [{"orderLineId": line_a, "quantity": 1, "reason": "SIZE_FIT"}]}
    r = (await gql(REQUEST, ask, auth=stranger))["requestReturn"]
    assert (r["__typename"], r["code"]) == ("NotFoundError", "NOT_FOUND")  # another partner's order
    bob = f.customer_token("bob@example.com")
    r = (await gql(REQUEST, ask, auth=bob))["requestReturn"]
    assert (r["__typename"], r["code"]) == ("NotFoundError", "NOT_FOUND")  # someone else's order
    over = {"order": view["id"], "lines": [{"orderLineId": line_a, "quantity": 5, "reason": "SIZE_FIT"}]}
    r = (await gql(REQUEST, over, auth=f.customer_token("ada@example.com")))["requestReturn"]
    assert r["problems"] == [{"code": "RETURN_QUANTITY_EXCEEDED", "field": ["lines", "0", "quantity"]}]
    assert await _snapshot() == before
    # a customer's own request is not auto-approved for SIZE_FIT and cannot be approved by the customer
    mine = (await gql(REQUEST, ask, auth=f.customer_token("ada@example.com")))["requestReturn"]["return"]
    assert mine["status"] == "REQUESTED"
    r = (await gql(APPROVE, {"id": mine["id"]}, auth=f.customer_token("ada@example.com")))["approveReturn"]
    assert (r["__typename"], r["code"]) == ("NotAuthorizedError", "FORBIDDEN")
    r = (await gql(APPROVE, {"id": mine["id"]}, auth=stranger))["approveReturn"]
    assert (r["__typename"], r["code"]) == ("NotFoundError", "NOT_FOUND")
    assert (await ReturnAuthorization.get(number=mine["number"])).status == "REQUESTED"
    # a global id of another type never names a return, even with the same database id
    rma = await ReturnAuthorization.get(number=mine["number"])
    other_type = base64.b64encode(f"Order:{rma.id}".encode()).decode()
    found = await gql("query($id: ID!) { return(id: $id) { number } }", {"id": other_type}, auth=staff)
    assert found["return"] is None
    found = await gql("query($id: ID!) { return(id: $id) { number } }", {"id": mine["id"]}, auth=staff)
    assert found["return"] == {"number": mine["number"]}
    assert (await Order.get(id=order.id)).status == "DELIVERED"
