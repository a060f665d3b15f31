from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# Scopes a staff key may hold. Partner keys act only on their channels' orders.
ALL_SCOPES = (
    "orders:read",
    "orders:write",
    "inventory:read",
    "inventory:write",
    "catalog:write",
    "payments:write",
    "fulfillment:write",
    "returns:write",
    "admin",
)
# A 3PL partner with fulfillment:write records tracking scans for its channels' shipments.
# A returns service with returns:write approves, declines and refunds its channels' returns.
PARTNER_SCOPES = ("orders:read", "orders:write", "inventory:read", "fulfillment:write", "returns:write")
PARTNER_DEFAULT_SCOPES = ("orders:read", "orders:write", "inventory:read")


class ViewerKind(StrEnum):
    STAFF = "STAFF"
    PARTNER = "PARTNER"
    CUSTOMER = "CUSTOMER"
    GUEST = "GUEST"
    ANONYMOUS = "ANONYMOUS"


@dataclass(frozen=True)
class Viewer:
    kind: ViewerKind
    principal: str  # stable id for audit and idempotency: "staff:<prefix>", "partner:<code>", …
    scopes: frozenset[str] = field(default_factory=frozenset)
    partner_id: int | None = None
    channel_ids: frozenset[int] = field(default_factory=frozenset)
    email: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.kind is ViewerKind.STAFF

    @property
    def is_partner(self) -> bool:
        return self.kind is ViewerKind.PARTNER

    @property
    def is_customer(self) -> bool:
        return self.kind is ViewerKind.CUSTOMER

    @property
    def authenticated(self) -> bool:
        return self.kind is not ViewerKind.ANONYMOUS

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or (self.is_staff and "admin" in self.scopes)

    @property
    def actor(self) -> str:
        return self.principal


ANONYMOUS = Viewer(ViewerKind.ANONYMOUS, "anonymous")
SYSTEM_ACTOR = "system"


def guest_viewer(email: str) -> Viewer:
    return Viewer(ViewerKind.GUEST, f"guest:{email.lower()}", email=email.lower())
