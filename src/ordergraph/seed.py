"""Demo data for `ordergraph seed --demo`: a small but realistic shop to explore the graph.

Network: three warehouses (Newark, Reno, Amsterdam) and two channels, the web store (WEB,
nearest warehouse, rejects orders it cannot fill) and a marketplace (MKT, sends its own
prices, takes backorders), with partner `acme-market` entitled to MKT. Catalog: twelve
products, forty variants, stock received through the inventory workflow (some below
their reorder point, some out of stock). Orders: placed through the order workflow, then some
cancelled or put on hold, so the lifecycle has something in most states.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from ordergraph.auth.keys import create_api_key
from ordergraph.auth.tokens import issue_customer_token
from ordergraph.db import transaction
from ordergraph.models import Order, Warehouse
from ordergraph.models.enums import (
    AllocationStrategy,
    CaptureMode,
    CarrierSelection,
    ChannelKind,
    HoldReason,
    Role,
    ServiceLevel,
    StockPolicy,
)
from ordergraph.workflows import inventory, network
from ordergraph.workflows.catalog import VariantSpec, create_product
from ordergraph.workflows.commands import Address, LineCommand, PaymentCommand, PlaceOrderCommand

ACTOR = "system:seed"
DEMO_CUSTOMER = "ada@example.com"
PARTNER_CODE = "acme-market"
GRAPHIQL_URL = "http://localhost:8000/graphql"

EU = ["AT", "BE", "DE", "DK", "ES", "FI", "FR", "IE", "IT", "LU", "NL", "PL", "PT", "SE"]

WAREHOUSES = [
    # code, name, address, lat, lon, priority, ship countries
    ("EWR", "Newark", {"line1": "200 Port St", "city": "Newark", "region": "NJ", "postal_code": "07114", "country": "US"}, 40.6895, -74.1745, 10, ["US", "CA"]),
    ("RNO", "Reno", {"line1": "1500 Lear Blvd", "city": "Reno", "region": "NV", "postal_code": "89502", "country": "US"}, 39.4991, -119.7681, 20, ["US", "CA"]),
    ("AMS", "Amsterdam", {"line1": "Schiphol Boulevard 101", "city": "Schiphol", "region": "NH", "postal_code": "1118 BG", "country": "NL"}, 52.3105, 4.7683, 30, EU),
]


@dataclass
class ProductSpec:
    name: str
    code: str
    description: str
    price: str
    weight_grams: int
    options: list[dict[str, str]]
    # units on hand per warehouse (EWR, RNO, AMS); None: not stocked there
    stock: tuple[int | None, int | None, int | None] = (40, 30, 20)
    overrides: dict[str, tuple[int | None, int | None, int | None]] = field(default_factory=dict)
    returnable: bool = True


def _grid(**axes: list[str]) -> list[dict[str, str]]:
    """Every combination of the option values, in order: _grid(colour=[…], size=[…])."""
    combos: list[dict[str, str]] = [{}]
    for axis, values in axes.items():
        combos = [{**c, axis: v} for c in combos for v in values]
    return combos


CATALOG = [
    ProductSpec("Merino Crew Tee", "TEE", "Lightweight 150 g/m² merino wool tee.", "45.00", 180,
                _grid(colour=["Charcoal", "Navy"], size=["S", "M", "L"]), (60, 45, 30),
                {"TEE-NAVY-S": (6, 0, 4)}),
    ProductSpec("Trail Running Shoe", "SHOE", "Grippy, cushioned trail shoe.", "129.00", 640,
                _grid(colour=["Slate"], size=["40", "41", "42", "43", "44"]), (18, 14, 10),
                {"SHOE-SLATE-44": (0, 0, 0), "SHOE-SLATE-40": (3, 2, 0)}),
    ProductSpec("Packable Rain Jacket", "JKT", "Waterproof 2.5-layer shell that packs into its pocket.", "149.00", 320,
                _grid(colour=["Olive", "Black"], size=["M", "L"]), (20, 16, 12)),
    ProductSpec("Organic Cotton Hoodie", "HOOD", "Brushed-back organic cotton hoodie.", "69.00", 540,
                _grid(colour=["Heather Grey"], size=["S", "M", "L", "XL"]), (30, 24, 15),
                {"HOOD-HEATHERGREY-XL": (5, 0, None)}),
    ProductSpec("Wool Hiking Socks 3-Pack", "SOCK", "Cushioned merino blend socks.", "24.00", 150,
                _grid(size=["M", "L"]), (80, 60, 40), returnable=False),
    ProductSpec("Everyday Backpack 22L", "PACK", "Recycled nylon daypack with laptop sleeve.", "89.00", 850,
                _grid(colour=["Black", "Sand"]), (25, 20, 10)),
    ProductSpec("Insulated Water Bottle 750 ml", "BTL", "Double-wall steel, cold 24 h.", "34.00", 410,
                _grid(colour=["Steel", "Forest", "Coral"]), (50, 40, 25),
                {"BTL-CORAL": (0, 0, 0)}),
    ProductSpec("Stretch Chino", "CHINO", "Slim chino with a little stretch.", "79.00", 520,
                _grid(colour=["Khaki"], waist=["30", "32", "34", "36"]), (22, 18, None),
                {"CHINO-KHAKI-36": (2, 1, None)}),
    ProductSpec("Down Vest", "VEST", "700-fill responsibly sourced down.", "119.00", 300,
                _grid(colour=["Navy"], size=["S", "M", "L"]), (12, 10, 8),
                {"VEST-NAVY-L": (0, 0, 0)}),
    ProductSpec("Leather Belt", "BELT", "Full-grain leather, solid brass buckle.", "49.00", 200,
                _grid(colour=["Brown"], size=["32", "34", "36"]), (15, 12, 6)),
    ProductSpec("Rib Knit Beanie", "BEANIE", "Soft merino rib beanie, one size.", "22.00", 90,
                _grid(colour=["Rust", "Black"]), (40, 30, 20)),
    ProductSpec("Cotton Boxer Briefs 3-Pack", "BRIEF", "Organic cotton jersey.", "32.00", 160,
                _grid(size=["S", "M"]), (45, 35, 20), returnable=False),
]

REORDER_POINT = 8
SAFETY_STOCK = 1


def sku_for(product: ProductSpec, options: dict[str, str]) -> str:
    return "-".join([product.code, *(v.upper().replace(" ", "") for v in options.values())])


def variant_name(product: ProductSpec, options: dict[str, str]) -> str:
    return f"{product.name} — {' / '.join(options.values())}" if options else product.name


# --- customers and their addresses -----------------------------------------------------------

CUSTOMERS = {
    "ada": ("ada@example.com", "Ada Lovelace", "+1 212 555 0147",
            Address(name="Ada Lovelace", line1="350 5th Ave", line2="Apt 21B", city="New York", region="NY", postal_code="10118", country="US", latitude=40.7484, longitude=-73.9857)),
    "grace": ("grace.hopper@example.com", "Grace Hopper", "+1 617 555 0199",
              Address(name="Grace Hopper", line1="77 Massachusetts Ave", city="Cambridge", region="MA", postal_code="02139", country="US", latitude=42.3601, longitude=-71.0942)),
    "alan": ("alan.turing@example.com", "Alan Turing", "+1 415 555 0112",
             Address(name="Alan Turing", line1="1 Market St", city="San Francisco", region="CA", postal_code="94105", country="US", latitude=37.7936, longitude=-122.3958)),
    "katherine": ("katherine.johnson@example.com", "Katherine Johnson", "+1 206 555 0170",
                  Address(name="Katherine Johnson", line1="400 Broad St", city="Seattle", region="WA", postal_code="98109", country="US", latitude=47.6205, longitude=-122.3493)),
    "linus": ("linus@example.com", "Linus Pauling", "+1 416 555 0133",
              Address(name="Linus Pauling", line1="290 Bremner Blvd", city="Toronto", region="ON", postal_code="M5V 3L9", country="CA", latitude=43.6426, longitude=-79.3871)),
    "emmy": ("emmy.noether@example.com", "Emmy Noether", "+49 30 5550 1234",
             Address(name="Emmy Noether", line1="Unter den Linden 6", city="Berlin", postal_code="10117", country="DE", latitude=52.5177, longitude=13.3936)),
    "marie": ("marie.curie@example.com", "Marie Curie", "+33 1 5555 0101",
              Address(name="Marie Curie", line1="11 Rue Pierre et Marie Curie", city="Paris", postal_code="75005", country="FR", latitude=48.8443, longitude=2.3443)),
    "edsger": ("edsger@example.com", "Edsger Dijkstra", "+31 20 555 0188",
               Address(name="Edsger Dijkstra", line1="Science Park 123", city="Amsterdam", postal_code="1098 XG", country="NL", latitude=52.3546, longitude=4.9559)),
}


@dataclass
class DemoOrder:
    channel: str
    customer: str
    lines: list[tuple[str, int]]
    token: str = "tok_approve"
    service_level: ServiceLevel = ServiceLevel.STANDARD
    then: str | None = None  # "cancel", "hold", "ship" (picked, packed, labelled, shipped) or "deliver"
    hold: HoldReason | None = None
    note: str = ""
    discount: str = "0.90"  # marketplace price as a share of list price


def _web(customer: str, *lines: tuple[str, int], **kw) -> DemoOrder:
    return DemoOrder("WEB", customer, list(lines), **kw)


def _mkt(customer: str, *lines: tuple[str, int], **kw) -> DemoOrder:
    return DemoOrder("MKT", customer, list(lines), **kw)


DEMO_ORDERS = [
    # the web store: in-stock orders allocate from the nearest warehouse that can ship them
    _web("ada", ("TEE-CHARCOAL-M", 2), ("SOCK-M", 1), then="deliver"),
    _web("ada", ("JKT-OLIVE-M", 1), service_level=ServiceLevel.EXPRESS, then="ship"),
    _web("ada", ("PACK-BLACK", 1), ("BTL-STEEL", 1)),
    _web("ada", ("HOOD-HEATHERGREY-M", 1), then="cancel", note="Ordered the wrong size"),
    _web("ada", ("BELT-BROWN-34", 1), then="hold", hold=HoldReason.ADDRESS, note="Apartment number to confirm"),
    _web("ada", ("BEANIE-RUST", 2), token="tok_decline"),  # payment declined: PAYMENT hold
    _web("grace", ("SHOE-SLATE-42", 1), ("SOCK-L", 2), then="ship"),
    _web("grace", ("VEST-NAVY-M", 1), service_level=ServiceLevel.NEXT_DAY),
    _web("alan", ("CHINO-KHAKI-32", 2), ("BELT-BROWN-32", 1)),
    _web("alan", ("TEE-NAVY-L", 3)),
    _web("katherine", ("JKT-BLACK-L", 1), ("BEANIE-BLACK", 1)),
    _web("katherine", ("BTL-FOREST", 2), then="hold", hold=HoldReason.FRAUD_REVIEW, note="Billing country differs"),
    _web("linus", ("HOOD-HEATHERGREY-L", 1), ("BRIEF-M", 1)),
    _web("emmy", ("TEE-CHARCOAL-S", 1), ("PACK-SAND", 1)),
    _web("marie", ("JKT-OLIVE-L", 1), ("SOCK-M", 1), service_level=ServiceLevel.EXPRESS),
    _web("edsger", ("SHOE-SLATE-43", 1)),
    _web("edsger", ("BTL-STEEL", 1), then="cancel", note="Found a cheaper one"),
    _web("marie", ("BRIEF-S", 2), token="tok_decline"),
    # the marketplace: its own prices, and it accepts backorders
    _mkt("grace", ("VEST-NAVY-L", 1)),  # out of stock everywhere: backordered
    _mkt("alan", ("SHOE-SLATE-44", 1), ("SOCK-L", 1)),  # partly in stock
    _mkt("katherine", ("BTL-CORAL", 2), ("BTL-STEEL", 1)),
    _mkt("linus", ("TEE-CHARCOAL-L", 2), ("BEANIE-RUST", 1)),
    _mkt("ada", ("PACK-SAND", 1)),
    _mkt("grace", ("CHINO-KHAKI-34", 1), then="cancel", note="Cancelled by the marketplace"),
    _mkt("alan", ("HOOD-HEATHERGREY-S", 1), then="hold", hold=HoldReason.CUSTOMER, note="Customer asked to delay"),
]


@dataclass
class SeedResult:
    warehouses: int = 0
    channels: int = 0
    variants: int = 0
    stocked_levels: int = 0
    orders: dict[str, int] = field(default_factory=dict)  # status -> count
    on_hold: int = 0
    orders_skipped: str = ""
    staff_key: str = ""
    partner_key: str = ""
    customer_token: str = ""


async def existing_warehouses() -> int:
    return await Warehouse.all().count()


async def seed_demo(credentials_file: Path | None = None, *, with_orders: bool = True) -> SeedResult:
    """Load everything in one transaction: the demo data set is loaded whole or not at all."""
    result = SeedResult()
    async with transaction():
        await _seed_network(result)
        await _seed_catalog(result)
        result.staff_key, _ = await create_api_key(Role.STAFF, name="demo staff")
        result.partner_key, _ = await create_api_key(
            Role.PARTNER, partner_code=PARTNER_CODE, name="demo acme-market"
        )
        if with_orders:
            await _seed_orders(result)
    result.customer_token = issue_customer_token(DEMO_CUSTOMER)
    if credentials_file is not None:
        write_credentials(result, credentials_file)
    return result


async def _seed_network(result: SeedResult) -> None:
    for code, name, address, lat, lon, priority, countries in WAREHOUSES:
        await network.create_warehouse(
            network.WarehouseSpec(
                code=code, name=name, address=address, latitude=lat, longitude=lon,
                priority=priority, ship_countries=countries,
            ),
            ACTOR,
        )
    await network.create_channel(
        network.ChannelSpec(
            code="WEB", name="Web store", kind=ChannelKind.WEB, currency="USD",
            allocation_strategy=AllocationStrategy.PROXIMITY, stock_policy=StockPolicy.REJECT,
            capture_mode=CaptureMode.ON_SHIPMENT, warehouse_codes=["EWR", "RNO", "AMS"],
        ),
        ACTOR,
    )
    await network.create_channel(
        network.ChannelSpec(
            code="MKT", name="Acme Marketplace", kind=ChannelKind.MARKETPLACE, currency="USD",
            allocation_strategy=AllocationStrategy.FEWEST_SHIPMENTS, stock_policy=StockPolicy.ACCEPT,
            capture_mode=CaptureMode.ON_CONFIRMATION, sets_prices=True, warehouse_codes=["EWR", "RNO"],
            carrier_selection=CarrierSelection.PREFERRED, preferred_carrier="econopost",
        ),
        ACTOR,
    )
    await network.create_partner(PARTNER_CODE, "Acme Market", ["MKT"], ACTOR)
    result.warehouses, result.channels = len(WAREHOUSES), 2


async def _seed_catalog(result: SeedResult) -> None:
    codes = [code for code, *_ in WAREHOUSES]
    for aisle, spec in enumerate(CATALOG, start=1):
        variants = [
            VariantSpec(
                sku=sku_for(spec, opts), name=variant_name(spec, opts), price=Decimal(spec.price),
                options=opts, weight_grams=spec.weight_grams, returnable=spec.returnable,
            )
            for opts in spec.options
        ]
        await create_product(spec.name, spec.description, True, variants, ACTOR)
        for shelf, variant in enumerate(variants, start=1):
            quantities = spec.overrides.get(variant.sku, spec.stock)
            for code, on_hand in zip(codes, quantities, strict=True):
                if on_hand is None:
                    continue  # not stocked in this warehouse
                if on_hand:
                    await inventory.receive_stock(code, variant.sku, on_hand, "Opening stock", "SEED", ACTOR)
                await inventory.set_stock_policy(code, variant.sku, SAFETY_STOCK, REORDER_POINT, ACTOR,
                                                 bin_location=f"{code[0]}-{aisle:02d}-{shelf:02d}")
                result.stocked_levels += 1
        result.variants += len(variants)


LIST_PRICES = {sku_for(p, o): Decimal(p.price) for p in CATALOG for o in p.options}


def _command(spec: DemoOrder, number: int) -> PlaceOrderCommand:
    email, name, phone, address = CUSTOMERS[spec.customer]
    marketplace = spec.channel == "MKT"
    return PlaceOrderCommand(
        channel_code=spec.channel,
        customer_email=email,
        customer_name=name,
        customer_phone=phone,
        shipping_address=address,
        external_id=f"ACME-{100200 + number}" if marketplace else None,
        service_level=spec.service_level,
        lines=[
            LineCommand(
                sku=sku,
                quantity=qty,
                unit_price=(LIST_PRICES[sku] * Decimal(spec.discount)).quantize(Decimal("0.01")) if marketplace else None,
                external_line_id=f"L{i + 1}" if marketplace else None,
            )
            for i, (sku, qty) in enumerate(spec.lines)
        ],
        payment=PaymentCommand(method="card", token=spec.token),
    )


async def _seed_orders(result: SeedResult) -> None:
    try:
        from ordergraph.workflows.orders import cancel_order, place_hold, place_order  # noqa: PLC0415
    except ImportError as exc:
        result.orders_skipped = f"the order workflow is not available ({exc})"
        return
    for n, spec in enumerate(DEMO_ORDERS, start=1):
        actor = f"partner:{PARTNER_CODE}" if spec.channel == "MKT" else ACTOR
        try:
            order = await place_order(_command(spec, n), actor)
            if spec.then == "cancel":
                order = await cancel_order(order.id, spec.note, actor)
            elif spec.then == "hold":
                order = await place_hold(order.id, spec.hold, spec.note, ACTOR)
            elif spec.then in ("ship", "deliver"):
                order = await fulfil_order(order, deliver=spec.then == "deliver")
        except Exception as exc:
            raise RuntimeError(f"demo order {n} ({spec.channel}, {spec.lines}) failed: {exc}") from exc
        status = str(order.status)
        result.orders[status] = result.orders.get(status, 0) + 1
    result.on_hold = await Order.filter(holds__released_at__isnull=True, holds__id__isnull=False).distinct().count()


async def fulfil_order(order: Order, *, deliver: bool) -> Order:
    """Take an allocated order through the warehouse: pick, pack, label, ship; then the
    carrier's scans up to delivery when `deliver`."""
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    from ordergraph.db import transaction  # noqa: PLC0415
    from ordergraph.models import FulfillmentLine, FulfillmentOrder  # noqa: PLC0415
    from ordergraph.models.enums import TrackingStatus  # noqa: PLC0415
    from ordergraph.workflows import fulfillment, shipping  # noqa: PLC0415

    async with transaction():  # (allocation makes them; harmless when it did)
        await fulfillment.create_fulfillment_orders(await Order.select_for_update().get(id=order.id), ACTOR)
    for fo in await FulfillmentOrder.filter(order_id=order.id).order_by("id"):
        pick_list = await fulfillment.create_batch_pick_list(fo.warehouse_id, "picker:demo", fulfillment_order_ids=[fo.id])
        lines = await FulfillmentLine.filter(fulfillment_order_id=fo.id).order_by("id")
        for fl in lines:
            await fulfillment.confirm_pick(pick_list.id, fl.sku, fl.quantity, "picker:demo")
        grams = 250 * sum(fl.quantity for fl in lines) + 150
        [package] = await fulfillment.pack(fo.id, [fulfillment.PackageSpec(
            grams, Decimal(30), Decimal(25), Decimal(12), [(fl.sku, fl.quantity) for fl in lines])], "packer:demo")
        shipment = await shipping.buy_label(package.id, "packer:demo")
        await shipping.ship(shipment.id, "packer:demo")
        if deliver:
            start = datetime.now(UTC) - timedelta(days=2)
            for i, status in enumerate((TrackingStatus.PICKED_UP, TrackingStatus.IN_TRANSIT,
                                        TrackingStatus.OUT_FOR_DELIVERY, TrackingStatus.DELIVERED)):
                await shipping.record_tracking_event(shipment.tracking_number, status, start + timedelta(hours=10 * i),
                                                     f"carrier:{shipment.carrier}", location="Springfield, IL",
                                                     event_id=f"demo-{shipment.tracking_number}-{i}")
    return await Order.get(id=order.id)


def credentials_text(result: SeedResult) -> str:
    return "\n".join([
        f"GRAPHIQL_URL={GRAPHIQL_URL}",
        f"STAFF_API_KEY={result.staff_key}",
        f"PARTNER_API_KEY={result.partner_key}",
        f"CUSTOMER_TOKEN={result.customer_token}",
        f"CUSTOMER_EMAIL={DEMO_CUSTOMER}",
        "",
    ])


def write_credentials(result: SeedResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# ordergraph demo credentials (written by `ordergraph seed --demo`)\n")
        fh.write(credentials_text(result))


def format_summary(result: SeedResult, credentials_file: Path | None = None) -> str:
    orders = ", ".join(f"{n} {s}" for s, n in sorted(result.orders.items())) or "none"
    lines = [
        "Demo data loaded:",
        f"  {result.warehouses} warehouses (EWR Newark, RNO Reno, AMS Amsterdam), "
        f"{result.channels} channels (WEB, MKT), partner {PARTNER_CODE}",
        f"  {result.variants} variants in {len(CATALOG)} products, {result.stocked_levels} inventory levels",
        f"  {sum(result.orders.values())} orders: {orders}; {result.on_hold} on hold",
    ]
    if result.orders_skipped:
        lines.append(f"  orders skipped: {result.orders_skipped}")
    lines += [
        "",
        "Credentials (shown once; send as `Authorization: Bearer <value>`):",
        "",
        credentials_text(result).rstrip("\n"),
    ]
    if credentials_file is not None:
        lines += ["", f"Saved to {credentials_file}"]
    return "\n".join(lines)
