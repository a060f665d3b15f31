"""Order capture validation: every problem with a placeOrder input, reported at once."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

from ordergraph.db import Params, fetch
from ordergraph.models import Order, ProductVariant, SalesChannel
from ordergraph.workflows.commands import Address, PlaceOrderCommand
from ordergraph.workflows.errors import DomainError, ErrorCode, Problems
from ordergraph.workflows.validation import ADDRESS_REQUIRED, COUNTRIES, valid_email

MAX_QUANTITY = 10_000
MAX_LINES = 200
CENT = Decimal("0.01")


@dataclass
class ValidOrder:
    channel: SalesChannel
    variants: dict[str, ProductVariant]
    prices: list[Decimal]
    currency: str
    subtotal: Decimal


def _check_address(address: Address | None, problems: Problems, name: str, required: bool) -> None:
    if address is None:
        if required:
            problems.add(ErrorCode.INCOMPLETE_ADDRESS, f"{name} is required", name)
        return
    data = asdict(address)
    for key in ADDRESS_REQUIRED:
        if not str(data.get(key) or "").strip():
            problems.add(ErrorCode.INCOMPLETE_ADDRESS, f"{name}.{key} is required", name, _camel(key))
    country = (address.country or "").strip().upper()
    if country and country not in COUNTRIES:
        problems.add(ErrorCode.UNKNOWN_COUNTRY, f"unknown country {address.country!r}", name, "country")
    if address.latitude is not None and not -90 <= address.latitude <= 90:
        problems.add(ErrorCode.INVALID_VALUE, "latitude must be between -90 and 90", name, "latitude")
    if address.longitude is not None and not -180 <= address.longitude <= 180:
        problems.add(ErrorCode.INVALID_VALUE, "longitude must be between -180 and 180", name, "longitude")


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p.title() for p in rest)


async def validate_order(cmd: PlaceOrderCommand, allowed_channel_ids: frozenset[int] | None = None) -> ValidOrder:
    """`allowed_channel_ids`: when given, any other channel answers exactly like an unknown one."""
    problems = Problems()
    channel = await _one(SalesChannel, "code", cmd.channel_code)
    if channel is not None and allowed_channel_ids is not None and channel.id not in allowed_channel_ids:
        channel = None
    if channel is None:
        problems.add(ErrorCode.UNKNOWN_CHANNEL, f"unknown sales channel {cmd.channel_code!r}", "channel")
    elif not channel.active:
        problems.add(ErrorCode.CHANNEL_INACTIVE, f"sales channel {cmd.channel_code} is inactive", "channel")
    if not valid_email(cmd.customer_email or ""):
        problems.add(ErrorCode.INVALID_EMAIL, f"malformed e-mail {cmd.customer_email!r}", "customer", "email")
    _check_address(cmd.shipping_address, problems, "shippingAddress", True)
    _check_address(cmd.billing_address, problems, "billingAddress", False)
    if channel and cmd.currency and cmd.currency != channel.currency:
        problems.add(
            ErrorCode.CURRENCY_MISMATCH, f"channel {channel.code} sells in {channel.currency}, not {cmd.currency}", "currency"
        )
    if not cmd.lines:
        problems.add(ErrorCode.REQUIRED, "an order needs at least one line", "lines")
    if len(cmd.lines) > MAX_LINES:
        problems.add(ErrorCode.INVALID_VALUE, f"at most {MAX_LINES} lines", "lines")
    variants = {v.sku: v for v in await _by_skus([ln.sku for ln in cmd.lines])}
    seen: dict[tuple, int] = {}
    prices: list[Decimal] = []
    for i, ln in enumerate(cmd.lines):
        v = variants.get(ln.sku)
        if v is None:
            problems.add(ErrorCode.UNKNOWN_SKU, f"unknown SKU {ln.sku!r}", "lines", i, "sku")
        elif not v.active:
            problems.add(ErrorCode.INACTIVE_SKU, f"SKU {ln.sku} is not for sale", "lines", i, "sku")
        if not 1 <= ln.quantity <= MAX_QUANTITY:
            problems.add(ErrorCode.QUANTITY_OUT_OF_RANGE, f"quantity must be 1 to {MAX_QUANTITY}", "lines", i, "quantity")
        price = _line_price(ln, v, channel, problems, i)
        prices.append(price)
        # The same line twice: same external line id, or (without ids) same SKU at the same price.
        key = ("ext", ln.external_line_id) if ln.external_line_id else ("sku", ln.sku, price)
        if key in seen:
            problems.add(ErrorCode.DUPLICATE_LINE, f"line {i} repeats line {seen[key]}; merge the quantities", "lines", i)
        else:
            seen[key] = i
    if channel and cmd.external_id:
        existing = await Order.get_or_none(channel_id=channel.id, external_id=cmd.external_id)
        if existing:
            problems.add(
                ErrorCode.DUPLICATE_EXTERNAL_ID,
                f"external id {cmd.external_id} was already captured as {existing.number}",
                "externalId",
                existing_order_number=existing.number,
            )
    problems.raise_if_any()
    subtotal = sum((p * ln.quantity for p, ln in zip(prices, cmd.lines, strict=True)), Decimal("0"))
    return ValidOrder(channel, variants, prices, channel.currency, subtotal.quantize(CENT))


async def _one(model, column: str, value) -> object | None:
    p = Params()
    rows = await fetch(f"SELECT * FROM {model._meta.db_table} WHERE {column} = {p(value)} LIMIT 1", p.values)
    return model._init_from_db(**rows[0]) if rows else None


async def _by_skus(skus: list[str]) -> list[ProductVariant]:
    skus = list(dict.fromkeys(skus))
    if not skus:
        return []
    p = Params()
    rows = await fetch(f"SELECT * FROM product_variants WHERE sku IN ({', '.join(p(s) for s in skus)})", p.values)
    return [ProductVariant._init_from_db(**r) for r in rows]


def _line_price(ln, variant, channel, problems: Problems, i: int) -> Decimal:
    if channel is None:
        return Decimal("0")
    if channel.sets_prices:
        if ln.unit_price is None:
            problems.add(ErrorCode.PRICE_REQUIRED, f"channel {channel.code} sends its unit prices", "lines", i, "unitPrice")
            return Decimal("0")
        if ln.unit_price < 0 or ln.unit_price.as_tuple().exponent < -2:
            problems.add(ErrorCode.INVALID_VALUE, "unit price must be ≥ 0 with at most 2 decimals", "lines", i, "unitPrice")
        return ln.unit_price
    if ln.unit_price is not None:
        problems.add(ErrorCode.PRICE_NOT_ALLOWED, f"channel {channel.code} prices from the catalog", "lines", i, "unitPrice")
    if variant is None:
        return Decimal("0")
    if variant.currency != channel.currency:
        problems.add(
            ErrorCode.CURRENCY_MISMATCH,
            f"SKU {variant.sku} is priced in {variant.currency}, channel sells in {channel.currency}",
            "lines", i, "sku",
        )
    return variant.price


def duplicate_external_id(cmd: PlaceOrderCommand, number: str) -> DomainError:
    return DomainError(
        ErrorCode.DUPLICATE_EXTERNAL_ID,
        f"external id {cmd.external_id} was already captured as {number}",
        ["externalId"],
        {"existing_order_number": number},
    )
