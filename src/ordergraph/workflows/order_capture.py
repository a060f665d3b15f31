"""Order capture validation: every problem with a placeOrder input, reported at once."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

from ordergraph.db import Params, dialect, fetch
from ordergraph.models import InventoryLevel, Order, ProductVariant, SalesChannel, Warehouse
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
    # PostgreSQL reads these with the channel and variants (see `_catalog`): the channel's active
    # warehouses (by priority, before any country filter) and their levels of the variants, read
    # without locks; None elsewhere (allocation reads them itself).
    warehouses: list[Warehouse] | None = None
    levels: dict[tuple[int, int], InventoryLevel] | None = None


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
    cat = await _catalog(cmd)
    channel = cat.channel
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
    variants = {v.sku: v for v in cat.variants}
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
        existing = cat.existing_number if cat.read_all else await _existing_number(channel.id, cmd.external_id)
        if existing:
            problems.add(
                ErrorCode.DUPLICATE_EXTERNAL_ID,
                f"external id {cmd.external_id} was already captured as {existing}",
                "externalId",
                existing_order_number=existing,
            )
    problems.raise_if_any()
    subtotal = sum((p * ln.quantity for p, ln in zip(prices, cmd.lines, strict=True)), Decimal("0"))
    return ValidOrder(channel, variants, prices, channel.currency, subtotal.quantize(CENT), cat.warehouses, cat.levels)


@dataclass
class _Catalog:
    channel: SalesChannel | None
    variants: list[ProductVariant]
    warehouses: list[Warehouse] | None = None
    levels: dict[tuple[int, int], InventoryLevel] | None = None
    existing_number: str | None = None  # the order already captured with the command's external id
    read_all: bool = False  # warehouses, levels and existing_number were read too


# PostgreSQL: everything placing an order reads before its transaction, in one statement. Each
# row comes back as a record of its table's type, so the models are built from the same values
# a plain SELECT gives. The text is the same for every order (arrays as parameters): asyncpg
# prepares it once per connection.
_CATALOG_SQL = """
WITH ch AS (SELECT c.id FROM sales_channels c WHERE c.code = $1),
wh AS (SELECT w.id FROM warehouses w JOIN channel_warehouses l ON l.warehouse_id = w.id
       WHERE l.channel_id = (SELECT id FROM ch) AND w.active)
SELECT
  (SELECT c FROM sales_channels c WHERE c.code = $1) AS channel,
  ARRAY(SELECT v FROM product_variants v WHERE v.sku = ANY($2::text[])) AS variants,
  ARRAY(SELECT w FROM warehouses w WHERE w.id IN (SELECT id FROM wh) ORDER BY w.priority, w.code) AS warehouses,
  ARRAY(SELECT il FROM inventory_levels il WHERE il.warehouse_id IN (SELECT id FROM wh)
        AND il.variant_id IN (SELECT v.id FROM product_variants v WHERE v.sku = ANY($2::text[]))
        ORDER BY il.id) AS levels,
  (SELECT o.number FROM orders o WHERE o.channel_id = (SELECT id FROM ch) AND o.external_id = $3) AS existing
"""


async def _catalog(cmd: PlaceOrderCommand) -> _Catalog:
    skus = list(dict.fromkeys(ln.sku for ln in cmd.lines))
    if dialect() != "postgres":
        return _Catalog(await _one(SalesChannel, "code", cmd.channel_code), await _by_skus(skus))
    [row] = await fetch(_CATALOG_SQL, [cmd.channel_code, skus, cmd.external_id])
    levels = [InventoryLevel._init_from_db(**dict(r)) for r in row["levels"]]
    return _Catalog(
        channel=SalesChannel._init_from_db(**dict(row["channel"])) if row["channel"] is not None else None,
        variants=[ProductVariant._init_from_db(**dict(r)) for r in row["variants"]],
        warehouses=[Warehouse._init_from_db(**dict(r)) for r in row["warehouses"]],
        levels={(lvl.warehouse_id, lvl.variant_id): lvl for lvl in levels},
        existing_number=row["existing"],
        read_all=True,
    )


async def _existing_number(channel_id: int, external_id: str) -> str | None:
    existing = await Order.get_or_none(channel_id=channel_id, external_id=external_id)
    return existing.number if existing else None


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
