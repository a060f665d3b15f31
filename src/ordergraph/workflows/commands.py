"""Plain inputs of the order workflows (no GraphQL here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from ordergraph.models.enums import ServiceLevel


@dataclass
class Address:
    name: str = ""
    line1: str = ""
    line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""
    phone: str = ""
    company: str = ""
    latitude: float | None = None
    longitude: float | None = None

    @classmethod
    def from_stored(cls, data: dict) -> Address:
        """An address as an order stores it (missing keys empty), e.g. to ship to it again."""
        return cls(**{k: data.get(k, "") for k in ("name", "line1", "line2", "city", "region", "postal_code",
                                                    "country", "phone", "company")})


@dataclass
class LineCommand:
    sku: str
    quantity: int
    unit_price: Decimal | None = None  # only when the channel sets prices
    external_line_id: str | None = None


@dataclass
class PaymentCommand:
    method: str = "card"
    token: str = "tok_approve"
    gateway: str = "local"


@dataclass
class PlaceOrderCommand:
    channel_code: str
    customer_email: str
    lines: list[LineCommand]
    shipping_address: Address
    billing_address: Address | None = None
    customer_name: str = ""
    customer_phone: str = ""
    external_id: str | None = None
    currency: str | None = None
    service_level: ServiceLevel = ServiceLevel.STANDARD
    notes: str = ""
    payment: PaymentCommand | None = field(default_factory=PaymentCommand)
    reservation_token: str | None = None
