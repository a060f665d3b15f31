from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.types import Info

from ordergraph.models import Product, ProductVariant
from ordergraph.schema.common import Money, money
from ordergraph.schema.enums import BackorderPolicy

if TYPE_CHECKING:
    pass


@strawberry.type(name="ProductVariant")
class ProductVariantType(relay.Node):
    id: relay.NodeID[int]
    sku: str
    barcode: str | None
    name: str
    options: JSON
    price: Money
    weight_grams: int
    active: bool
    returnable: bool
    backorder_policy: BackorderPolicy
    product_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, v: ProductVariant) -> ProductVariantType:
        return cls(
            id=v.id,
            sku=v.sku,
            barcode=v.barcode,
            name=v.name,
            options=v.options,
            price=money(v.price, v.currency),
            weight_grams=v.weight_grams,
            active=v.active,
            returnable=v.returnable,
            backorder_policy=v.backorder_policy,
            product_id=v.product_id,
        )

    @strawberry.field
    async def product(self, info: Info) -> Annotated["ProductType", strawberry.lazy("ordergraph.schema.catalog")]:
        return ProductType.from_model(await Product.get(id=self.product_id))

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids, required: bool = False):
        rows = {v.id: v for v in await ProductVariant.filter(id__in=[int(i) for i in node_ids])}
        return [cls.from_model(rows[int(i)]) if int(i) in rows else None for i in node_ids]


@strawberry.type(name="Product")
class ProductType(relay.Node):
    id: relay.NodeID[int]
    name: str
    description: str
    active: bool
    created_at: datetime

    @classmethod
    def from_model(cls, p: Product) -> ProductType:
        return cls(
            id=p.id, name=p.name, description=p.description, active=p.active, created_at=p.created_at
        )

    @strawberry.field
    async def variants(self) -> list[ProductVariantType]:
        rows = await ProductVariant.filter(product_id=self.id).order_by("id")
        return [ProductVariantType.from_model(v) for v in rows]

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids, required: bool = False):
        rows = {p.id: p for p in await Product.filter(id__in=[int(i) for i in node_ids])}
        return [cls.from_model(rows[int(i)]) if int(i) in rows else None for i in node_ids]
