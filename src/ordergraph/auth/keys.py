"""API keys: `og_<prefix>_<secret>`, shown once; only a SHA-256 of the whole key is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ordergraph.auth.viewer import ALL_SCOPES, PARTNER_SCOPES, Viewer, ViewerKind
from ordergraph.models import ApiKey, Partner
from ordergraph.models.enums import Role


class KeyError_(ValueError):
    pass


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(
    role: Role, scopes: list[str] | None = None, partner_code: str | None = None, name: str = ""
) -> tuple[str, ApiKey]:
    scopes = list(scopes or (ALL_SCOPES if role is Role.STAFF else PARTNER_SCOPES))
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise KeyError_(f"unknown scopes: {', '.join(unknown)}; known: {', '.join(ALL_SCOPES)}")
    partner = None
    if role is Role.PARTNER:
        if not partner_code:
            raise KeyError_("a partner key needs --partner CODE")
        partner = await Partner.get_or_none(code=partner_code)
        if partner is None:
            raise KeyError_(f"no partner with code {partner_code}")
    prefix = secrets.token_hex(4)
    key = f"og_{prefix}_{secrets.token_urlsafe(24)}"
    row = await ApiKey.create(
        prefix=prefix, key_hash=_hash(key), name=name, role=role, scopes=scopes, partner=partner
    )
    return key, row


async def viewer_for_key(key: str) -> Viewer | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "og":
        return None
    row = await ApiKey.get_or_none(prefix=parts[1], revoked=False).prefetch_related("partner")
    if row is None or not hmac.compare_digest(row.key_hash, _hash(key)):
        return None
    if row.role is Role.STAFF:
        return Viewer(ViewerKind.STAFF, f"staff:{row.prefix}", frozenset(row.scopes))
    partner = row.partner
    if partner is None or not partner.active:
        return None
    return Viewer(
        ViewerKind.PARTNER,
        f"partner:{partner.code}",
        frozenset(s for s in row.scopes if s in PARTNER_SCOPES),
        partner_id=partner.id,
        channel_ids=frozenset(partner.channel_ids),
    )
