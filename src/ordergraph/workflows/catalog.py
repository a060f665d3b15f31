"""Catalog use cases: products and variants."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ordergraph.db import transaction
from ordergraph.models import Product, ProductVariant
from ordergraph.models.enums import BackorderPolicy
from ordergraph.workflows.errors import DomainError, ErrorCode, Problems
from ordergraph.workflows.events import record_event
from ordergraph.workflows.validation import CURRENCIES

MAX_PRICE = Decimal("9999999999.99")


@dataclass
class VariantSpec:
    sku: str
    name: str
    price: Decimal
    currency: str = "USD"
    barcode: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    weight_grams: int = 0
    active: bool = True
    returnable: bool = True
    backorder_policy: BackorderPolicy = BackorderPolicy.DENY


def decode_id(global_id, expected_type: str) -> int:
    """A Relay global id of the expected type, as a database id."""
    if getattr(global_id, "type_name", expected_type) != expected_type:
        raise DomainError(ErrorCode.NOT_FOUND, f"no {expected_type} with id {global_id}", ["id"])
    try:
        return int(global_id.node_id)
    except (TypeError, ValueError):
        raise DomainError(ErrorCode.NOT_FOUND, f"no {expected_type} with id {global_id}", ["id"]) from None


def _check_variant(spec: VariantSpec, problems: Problems, *path: str | int) -> None:
    if not spec.sku.strip() or len(spec.sku) > 64:
        problems.add(ErrorCode.INVALID_VALUE, "SKU must be 1 to 64 characters", *path, "sku")
    if not spec.name.strip():
        problems.add(ErrorCode.REQUIRED, "name is required", *path, "name")
    if spec.price < 0 or spec.price > MAX_PRICE or spec.price.as_tuple().exponent < -2:
        problems.add(ErrorCode.INVALID_VALUE, "price must be ≥ 0 with at most 2 decimals", *path, "price")
    if spec.currency not in CURRENCIES:
        problems.add(ErrorCode.INVALID_VALUE, f"unknown currency {spec.currency}", *path, "currency")
    if spec.weight_grams < 0:
        problems.add(ErrorCode.INVALID_VALUE, "weight must be ≥ 0", *path, "weightGrams")


async def _check_unique(specs: list[VariantSpec], problems: Problems, *base: str) -> None:
    skus = [s.sku for s in specs]
    barcodes = [s.barcode for s in specs if s.barcode]
    taken_skus = set(await ProductVariant.filter(sku__in=skus).values_list("sku", flat=True))
    taken_codes = set(
        await ProductVariant.filter(barcode__in=barcodes).values_list("barcode", flat=True)
    )
    seen: set[str] = set()
    for i, s in enumerate(specs):
        path = (*base, i) if base else ()
        if s.sku in taken_skus or s.sku in seen:
            problems.add(ErrorCode.ALREADY_EXISTS, f"SKU {s.sku} already exists", *path, "sku")
        seen.add(s.sku)
        if s.barcode and s.barcode in taken_codes:
            problems.add(ErrorCode.ALREADY_EXISTS, f"barcode {s.barcode} already exists", *path, "barcode")


async def create_product(
    name: str, description: str, active: bool, variants: list[VariantSpec], actor: str
) -> Product:
    problems = Problems()
    if not name.strip():
        problems.add(ErrorCode.REQUIRED, "name is required", "name")
    for i, spec in enumerate(variants):
        _check_variant(spec, problems, "variants", i)
    await _check_unique(variants, problems, "variants")
    problems.raise_if_any()
    async with transaction():
        product = await Product.create(name=name.strip(), description=description, active=active)
        for spec in variants:
            await _create_variant(product, spec)
        await record_event(
            "Product", product.id, "PRODUCT_CREATED", actor, {"name": product.name, "skus": [v.sku for v in variants]}
        )
    return product


async def _create_variant(product: Product, spec: VariantSpec) -> ProductVariant:
    return await ProductVariant.create(
        product=product,
        sku=spec.sku.strip(),
        barcode=spec.barcode,
        name=spec.name.strip(),
        options=spec.options,
        price=spec.price,
        currency=spec.currency,
        weight_grams=spec.weight_grams,
        active=spec.active,
        returnable=spec.returnable,
        backorder_policy=spec.backorder_policy,
    )


async def add_variant(product_id: int, spec: VariantSpec, actor: str) -> ProductVariant:
    product = await Product.get_or_none(id=product_id)
    if product is None:
        raise DomainError(ErrorCode.NOT_FOUND, "no such product", ["productId"])
    problems = Problems()
    _check_variant(spec, problems)
    await _check_unique([spec], problems)
    problems.raise_if_any()
    async with transaction():
        variant = await _create_variant(product, spec)
        await record_event("Product", product.id, "VARIANT_ADDED", actor, {"sku": variant.sku})
    return variant


UPDATABLE = {"name", "barcode", "options", "price", "weight_grams", "active", "returnable", "backorder_policy"}


async def update_variant(sku: str, changes: dict[str, Any], actor: str) -> ProductVariant:
    variant = await ProductVariant.get_or_none(sku=sku)
    if variant is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no variant with SKU {sku}", ["sku"])
    changes = {k: v for k, v in changes.items() if k in UPDATABLE}
    merged = VariantSpec(
        sku=sku,
        name=changes.get("name", variant.name),
        price=changes.get("price", variant.price),
        currency=variant.currency,
        weight_grams=changes.get("weight_grams", variant.weight_grams),
    )
    problems = Problems()
    _check_variant(merged, problems)
    if changes.get("barcode") and await ProductVariant.filter(barcode=changes["barcode"]).exclude(id=variant.id).exists():
        problems.add(ErrorCode.ALREADY_EXISTS, f"barcode {changes['barcode']} already exists", "barcode")
    problems.raise_if_any()
    async with transaction():
        for k, v in changes.items():
            setattr(variant, k, v)
        await variant.save()
        await record_event("Product", variant.product_id, "VARIANT_UPDATED", actor, {"sku": sku, **changes})
    return variant
