"""The settings fulfillment reads: a channel's carrier rule and a level's bin location."""

from __future__ import annotations

from decimal import Decimal

from ordergraph.integrations.carriers import RateQuote, ServiceLevel as CarrierLevel
from ordergraph.models import InventoryLevel, SalesChannel
from ordergraph.models.enums import CarrierSelection, ServiceLevel
from ordergraph.workflows.shipping import choose_quote
from tests import factories as f

UPDATE = """mutation($code: String!, $input: UpdateSalesChannelInput!) { updateSalesChannel(code: $code, input: $input) {
  __typename ... on SalesChannelPayload { salesChannel { carrierSelection preferredCarrier } }
  ... on InvalidInputError { problems { code field } } } }"""
POLICY = """mutation($input: StockPolicyInput!) { setStockPolicy(input: $input) { __typename
  ... on InvalidInputError { problems { code field } } } }"""


async def test_channel_carrier_rule_is_validated_and_saved(gql, db):
    wh = await f.warehouse("EAST")
    await f.channel("WEB", [wh])
    staff = await f.staff_key()
    r = (await gql(UPDATE, {"code": "WEB", "input": {"carrierSelection": "PREFERRED"}}, auth=staff))["updateSalesChannel"]
    assert r["problems"] == [{"code": "REQUIRED", "field": ["preferredCarrier"]}]
    r = (await gql(UPDATE, {"code": "WEB", "input": {"carrierSelection": "PREFERRED", "preferredCarrier": "pigeon"}},
                   auth=staff))["updateSalesChannel"]
    assert r["problems"] == [{"code": "UNKNOWN_CARRIER", "field": ["preferredCarrier"]}]
    assert (await SalesChannel.get(code="WEB")).carrier_selection is CarrierSelection.CHEAPEST  # nothing changed
    r = (await gql(UPDATE, {"code": "WEB", "input": {"carrierSelection": "PREFERRED", "preferredCarrier": "swiftship"}},
                   auth=staff))["updateSalesChannel"]
    assert r["salesChannel"] == {"carrierSelection": "PREFERRED", "preferredCarrier": "swiftship"}


async def test_bin_location_is_set_with_the_stock_policy(gql, db):
    wh = await f.warehouse("EAST")
    v = await f.variant("SKU-A")
    await f.stock(wh, v, 5)
    staff = await f.staff_key()
    bad = {"warehouse": "EAST", "sku": "SKU-A", "safetyStock": 1, "reorderPoint": 0, "binLocation": "X" * 40}
    r = (await gql(POLICY, {"input": bad}, auth=staff))["setStockPolicy"]
    assert r["problems"] == [{"code": "INVALID_VALUE", "field": ["binLocation"]}]
    assert (await InventoryLevel.get(variant_id=v.id)).bin_location == ""
    ok = {**bad, "binLocation": " A-12-3 "}
    assert (await gql(POLICY, {"input": ok}, auth=staff))["setStockPolicy"]["__typename"] != "InvalidInputError"
    level = await InventoryLevel.get(variant_id=v.id)
    assert (level.bin_location, level.safety_stock) == ("A-12-3", 1)


def _q(carrier: str, level: CarrierLevel, amount: str, days: int) -> RateQuote:
    from datetime import date  # noqa: PLC0415

    return RateQuote(carrier=carrier, service=str(level), service_level=level, amount=Decimal(amount), currency="USD",
                     transit_days=days, estimated_delivery=date(2026, 12, 1))


def test_carrier_rule_cheapest_that_meets_the_service_level_or_the_preferred_carrier():
    quotes = [_q("econopost", CarrierLevel.ECONOMY, "4.00", 6), _q("econopost", CarrierLevel.STANDARD, "6.00", 4),
              _q("swiftship", CarrierLevel.STANDARD, "7.50", 3), _q("swiftship", CarrierLevel.EXPRESS, "15.00", 2),
              _q("swiftship", CarrierLevel.OVERNIGHT, "30.00", 1)]
    cheapest = SalesChannel(carrier_selection=CarrierSelection.CHEAPEST, preferred_carrier=None)
    preferred = SalesChannel(carrier_selection=CarrierSelection.PREFERRED, preferred_carrier="swiftship")
    assert choose_quote(quotes, cheapest, ServiceLevel.STANDARD).amount == Decimal("6.00")  # economy is too slow
    assert choose_quote(quotes, cheapest, ServiceLevel.EXPRESS).amount == Decimal("15.00")
    assert choose_quote(quotes, cheapest, ServiceLevel.NEXT_DAY).amount == Decimal("30.00")
    assert choose_quote(quotes, preferred, ServiceLevel.STANDARD).carrier == "swiftship"
    only_econo = [q for q in quotes if q.carrier == "econopost"]
    assert choose_quote(only_econo, preferred, ServiceLevel.STANDARD).carrier == "econopost"  # falls back
    assert choose_quote(only_econo, cheapest, ServiceLevel.EXPRESS) is None
