"""Shared GraphQL documents and setup for the order tests."""

from __future__ import annotations

from tests import factories as f

ORDER_FIELDS = """
  id number status externalId channelCode onHold availableActions
  customer { email name }
  total { amount currency }
  lines { sku quantity allocatedQuantity backorderedQuantity cancelledQuantity
          allocations { warehouseCode quantity status } }
  holds { reason active }
  payments { status authorized { amount } captured { amount } refunded { amount } }
  firstPaymentActions: payments { availableActions }
  timeline { sequence type actor data }
"""

RESULT = """
  __typename
  ... on OrderPayload { order { %s } }
  ... on Error { code message field }
  ... on InvalidInputError { problems { __typename code field message ... on DuplicateExternalIdProblem { existingOrderNumber } } }
  ... on InsufficientStockError { shortages { sku requested available } }
  ... on InvalidTransitionError { currentState allowedActions }
  ... on PaymentError { declineCode }
""" % ORDER_FIELDS

PLACE = "mutation Place($input: PlaceOrderInput!, $key: String) { placeOrder(input: $input, idempotencyKey: $key) { %s } }" % RESULT
CANCEL = "mutation Cancel($id: ID!, $reason: String!) { cancelOrder(id: $id, reason: $reason) { %s } }" % RESULT
HOLD = "mutation Hold($id: ID!, $reason: HoldReason!) { placeHold(id: $id, reason: $reason, note: \"check\") { %s } }" % RESULT
RELEASE = "mutation Release($id: ID!, $reason: HoldReason!) { releaseHold(id: $id, reason: $reason) { %s } }" % RESULT
ALLOCATE = "mutation Allocate($id: ID!) { allocateOrder(id: $id) { %s } }" % RESULT
RETRY = "mutation Retry($id: ID!, $token: String!) { retryPayment(id: $id, payment: {token: $token}) { %s } }" % RESULT
CAPTURE = "mutation Capture($id: ID!, $amount: Decimal) { capturePayment(id: $id, amount: $amount) { %s } }" % RESULT
REFUND = "mutation Refund($id: ID!, $amount: Decimal) { refundPayment(id: $id, amount: $amount) { %s } }" % RESULT
ORDER_BY_NUMBER = "query One($n: String!) { order(number: $n) { %s } }" % ORDER_FIELDS

SHIP_TO = {"name": "Ada Lovelace", "line1": "1 Main St", "city": "Springfield", "postalCode": "62701", "country": "US"}


def order_input(lines, *, channel="WEB", email="ada@example.com", token="tok_approve", **extra) -> dict:
    body = {
        "channel": channel,
        "customer": {"email": email, "name": "Ada"},
        "shippingAddress": SHIP_TO,
        "lines": [{"sku": s, "quantity": q} for s, q in lines] if lines and isinstance(lines[0], tuple) else lines,
        "payment": {"token": token} if token else None,
    }
    body.update(extra)
    return body


async def world(*, stock_policy=None, capture=None, strategy=None):
    """Two warehouses (EAST priority 1, WEST priority 2), channel WEB, three SKUs."""
    from ordergraph.models.enums import AllocationStrategy, CaptureMode, StockPolicy

    east = await f.warehouse("EAST", priority=1, lat=40.7, lon=-74.0)
    west = await f.warehouse("WEST", priority=2, lat=37.8, lon=-122.4)
    ch = await f.channel(
        "WEB", [east, west],
        stock_policy=stock_policy or StockPolicy.REJECT,
        capture=capture or CaptureMode.ON_SHIPMENT,
        strategy=strategy or AllocationStrategy.PRIORITY,
    )
    a = await f.variant("SKU-A", price="10.00")
    b = await f.variant("SKU-B", price="25.50")
    c = await f.variant("SKU-C", price="5.00")
    await f.stock(east, a, 3)
    await f.stock(west, a, 10)
    await f.stock(east, b, 5)
    await f.stock(west, c, 2)
    return {"east": east, "west": west, "channel": ch, "a": a, "b": b, "c": c}


async def settle_outbox() -> None:
    """Wait until the running app's outbox has published and marked every event so far: it
    marks them in the background a moment later, and a test that counts statements counts
    only its own."""
    from ordergraph.subscriptions import runtime  # noqa: PLC0415

    await runtime.current().publisher.flush()
