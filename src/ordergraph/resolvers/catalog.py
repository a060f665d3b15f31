"""Catalog queries and mutations (staff with catalog:write change it; any viewer reads)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.types import Info

from ordergraph.models import Product, ProductVariant
from ordergraph.resolvers.mutation import run_mutation
from ordergraph.schema.catalog import ProductType, ProductVariantType
from ordergraph.schema.common import Connection, paginate
from ordergraph.schema.enums import BackorderPolicy
from ordergraph.schema.errors import (
    IdempotencyKeyReusedError,
    InvalidInputError,
    NotAuthorizedError,
    NotFoundError,
    OperationError,
)
from ordergraph.workflows import catalog as wf


@strawberry.input
class VariantInput:
    sku: str
    name: str
    price: Decimal
    currency: str = "USD"
    barcode: str | None = None
    options: JSON | None = None
    weight_grams: int = 0
    active: bool = True
    returnable: bool = True
    backorder_policy: BackorderPolicy = BackorderPolicy.DENY


@strawberry.input
class CreateProductInput:
    name: str
    description: str = ""
    active: bool = True
    variants: list[VariantInput] = strawberry.field(default_factory=list)


@strawberry.input
class UpdateVariantInput:
    name: str | None = None
    barcode: str | None = None
    options: JSON | None = None
    price: Decimal | None = None
    weight_grams: int | None = None
    active: bool | None = None
    returnable: bool | None = None
    backorder_policy: BackorderPolicy | None = None


@strawberry.type
class ProductPayload:
    product: ProductType


@strawberry.type
class VariantPayload:
    variant: ProductVariantType


ProductResult = Annotated[
    ProductPayload | InvalidInputError | NotAuthorizedError | IdempotencyKeyReusedError | OperationError,
    strawberry.union("ProductResult"),
]
VariantResult = Annotated[
    VariantPayload
    | InvalidInputError
    | NotFoundError
    | NotAuthorizedError
    | IdempotencyKeyReusedError
    | OperationError,
    strawberry.union("VariantResult"),
]


def _variant_spec(v) -> wf.VariantSpec:
    return wf.VariantSpec(
        sku=v.sku,
        name=v.name,
        price=v.price,
        currency=v.currency,
        barcode=v.barcode,
        options=v.options or {},
        weight_grams=v.weight_grams,
        active=v.active,
        returnable=v.returnable,
        backorder_policy=v.backorder_policy,
    )


@strawberry.type
class CatalogQuery:
    @strawberry.field
    async def products(
        self, info: Info, first: int | None = None, after: str | None = None, active: bool | None = None
    ) -> Connection[ProductType]:
        qs = Product.all().order_by("id")
        if active is not None:
            qs = qs.filter(active=active)

        async def nodes(rows):
            return [ProductType.from_model(p) for p in rows]

        return await paginate(info, qs, first, after, nodes)

    @strawberry.field
    async def product_variant(self, sku: str) -> ProductVariantType | None:
        v = await ProductVariant.get_or_none(sku=sku)
        return ProductVariantType.from_model(v) if v else None


@strawberry.type
class CatalogMutation:
    @strawberry.mutation
    async def create_product(
        self, info: Info, input: CreateProductInput, idempotency_key: str | None = None
    ) -> ProductResult:
        actor = info.context.viewer.actor
        return await run_mutation(
            info,
            "createProduct",
            idempotency_key,
            {"input": input},
            lambda: wf.create_product(
                input.name, input.description, input.active, [_variant_spec(v) for v in input.variants], actor
            ),
            lambda p: ProductPayload(product=ProductType.from_model(p)),
            scope="catalog:write",
        )

    @strawberry.mutation
    async def add_variant(
        self,
        info: Info,
        product_id: relay.GlobalID,
        input: VariantInput,
        idempotency_key: str | None = None,
    ) -> VariantResult:
        actor = info.context.viewer.actor
        return await run_mutation(
            info,
            "addVariant",
            idempotency_key,
            {"productId": str(product_id), "input": input},
            lambda: wf.add_variant(wf.decode_id(product_id, "Product"), _variant_spec(input), actor),
            lambda v: VariantPayload(variant=ProductVariantType.from_model(v)),
            scope="catalog:write",
        )

    @strawberry.mutation
    async def update_variant(
        self, info: Info, sku: str, input: UpdateVariantInput, idempotency_key: str | None = None
    ) -> VariantResult:
        actor = info.context.viewer.actor
        changes = {k: v for k, v in vars(input).items() if v is not None}
        return await run_mutation(
            info,
            "updateVariant",
            idempotency_key,
            {"sku": sku, "input": input},
            lambda: wf.update_variant(sku, changes, actor),
            lambda v: VariantPayload(variant=ProductVariantType.from_model(v)),
            scope="catalog:write",
        )
