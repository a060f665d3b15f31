"""returnUpdates and exceptionUpdates over graphql-transport-ws: each viewer gets only what it may
read, live and replayed from a cursor."""

from __future__ import annotations

from decimal import Decimal

from ordergraph.db import transaction
from ordergraph.models import OrderLine, SalesChannel
from ordergraph.models.enums import CaptureMode, ExceptionKind, ReturnReason
from ordergraph.seed import fulfil_order
from ordergraph.workflows import exceptions, returns
from ordergraph.workflows.commands import Address, LineCommand, PaymentCommand, PlaceOrderCommand
from ordergraph.workflows.orders import place_order
from tests import factories as f
from tests.ws import WSClient

NYC = Address(name="Ada", line1="1 Main St", city="New York", postal_code="10001", country="US")
RETURNS = "subscription($after: String) { returnUpdates(after: $after) { cursor aggregateType type data } }"
EXCEPTIONS = ("subscription($kind: [ExceptionKind!]) { exceptionUpdates(kind: $kind) { aggregateType type "
              "data } }")


async def _delivered(email: str):
    order = await place_order(PlaceOrderCommand("WEB", email, [LineCommand("SKU-A", 1)], NYC, payment=PaymentCommand()),
                              "test")
    order = await fulfil_order(order, deliver=True)
    return order, await OrderLine.get(order_id=order.id)


async def test_return_updates_reach_only_their_customer_and_replay_from_a_cursor(server, db):
    east = await f.warehouse("EAST")
    web = await f.channel("WEB", [east], capture=CaptureMode.ON_SHIPMENT)
    await SalesChannel.filter(id=web.id).update(auto_approve_reasons=["DAMAGED"], auto_approve_max_value=Decimal("50"))
    await f.stock(east, await f.variant("SKU-A", price="10.00"), 10)
    ada_order, ada_line = await _delivered("ada@example.com")
    bob_order, bob_line = await _delivered("bob@example.com")
    ada = await WSClient.connect(server, f.customer_token("ada@example.com"))
    staff = await WSClient.connect(server, await f.staff_key())
    await ada.subscribe(RETURNS, {"after": None})
    await staff.subscribe(RETURNS, {"after": None})
    import asyncio  # noqa: PLC0415

    await asyncio.sleep(0.3)
    await returns.request_return(bob_order.id, [returns.ReturnLineRequest(bob_line.id, 1, ReturnReason.SIZE_FIT)], "b", "CUSTOMER")
    mine = await returns.request_return(ada_order.id, [returns.ReturnLineRequest(ada_line.id, 1, ReturnReason.DAMAGED)],
                                        "a", "CUSTOMER")
    got = [m["returnUpdates"] for m in await ada.take(2)]
    assert [(e["type"], e["data"]["return"]) for e in got] == [("RETURN_REQUESTED", mine.number), ("RETURN_APPROVED", mine.number)]
    await ada.expect_silence(0.3)  # bob's return never reaches ada
    assert [m["returnUpdates"]["type"] for m in await staff.take(3)] == ["RETURN_REQUESTED", "RETURN_REQUESTED", "RETURN_APPROVED"]
    # resume: from the first event's cursor, the rest is replayed
    again = await WSClient.connect(server, f.customer_token("ada@example.com"))
    await again.subscribe(RETURNS, {"after": got[0]["cursor"]})
    assert [m["returnUpdates"]["type"] for m in await again.take(1)] == ["RETURN_APPROVED"]
    for ws in (ada, staff, again):
        await ws.close()


async def test_exception_updates_filter_by_kind_and_refuse_non_staff(server, db):
    staff_key = await f.staff_key()
    ws = await WSClient.connect(server, staff_key)
    await ws.subscribe(EXCEPTIONS, {"kind": ["CARRIER_DELAY"]})
    import asyncio  # noqa: PLC0415

    await asyncio.sleep(0.3)
    async with transaction():
        await exceptions.raise_exception(ExceptionKind.SHORT_PICK, "x1", "short", "t")
        exc = await exceptions.raise_exception(ExceptionKind.CARRIER_DELAY, "x2", "late", "t")
    await exceptions.acknowledge(exc.id, "ops")
    got = [m["exceptionUpdates"] for m in await ws.take(2)]
    assert [(e["type"], e["data"]["kind"]) for e in got] == [("EXCEPTION_RAISED", "CARRIER_DELAY"),
                                                            ("EXCEPTION_ACKNOWLEDGED", "CARRIER_DELAY")]
    await ws.expect_silence(0.3)
    await ws.close()
    customer = await WSClient.connect(server, f.customer_token("ada@example.com"))
    sub = await customer.subscribe(EXCEPTIONS, {"kind": None})
    msg = await customer.recv()
    # refused when subscribing, as the other subscriptions refuse (a `next` carrying the error)
    assert (msg["id"], msg["type"], msg["payload"]["errors"][0]["extensions"]) == (sub, "next", {"code": "FORBIDDEN"})
    await customer.close()
