"""API keys: `og_<prefix>_<secret>`, shown once; only a SHA-256 of the whole key is stored.

A key that authenticated is remembered in this process for `VIEWER_TTL_SECONDS` (by the
SHA-256 of the whole key, never the key itself), so most requests need no key lookup. The
price: a key revoked, or a partner deactivated, in the database (`ordergraph api-key revoke`
runs in another process) stops working in a running API process within that TTL, not at
once. `forget_cached_viewers()` makes the change immediate in the current process.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from ordergraph.auth.viewer import ALL_SCOPES, PARTNER_DEFAULT_SCOPES, PARTNER_SCOPES, Viewer, ViewerKind
from ordergraph.models import ApiKey, Partner
from ordergraph.models.enums import Role


class KeyError_(ValueError):
    pass


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(
    role: Role, scopes: list[str] | None = None, partner_code: str | None = None, name: str = ""
) -> tuple[str, ApiKey]:
    scopes = list(scopes or (ALL_SCOPES if role is Role.STAFF else PARTNER_DEFAULT_SCOPES))
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


VIEWER_TTL_SECONDS = 30.0
_MAX_CACHED = 1024
_now = time.monotonic
_viewers: dict[str, tuple[float, Viewer]] = {}  # sha256(key) -> (expires at, viewer)


def forget_cached_viewers() -> None:
    """Drop every remembered key: the next request of each key reads the database again."""
    _viewers.clear()


def _remember(digest: str, viewer: Viewer) -> None:
    now = _now()
    if len(_viewers) >= _MAX_CACHED:
        for k in [k for k, (expires, _) in _viewers.items() if expires <= now]:
            del _viewers[k]
        if len(_viewers) >= _MAX_CACHED:
            _viewers.clear()
    _viewers[digest] = (now + VIEWER_TTL_SECONDS, viewer)


async def viewer_for_key(key: str) -> Viewer | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "og":
        return None
    digest = _hash(key)
    cached = _viewers.get(digest)
    if cached is not None:
        if cached[0] > _now():
            return cached[1]
        del _viewers[digest]
    viewer = await _load_viewer(parts[1], digest)
    if viewer is not None:
        _remember(digest, viewer)
    return viewer


async def _load_viewer(prefix: str, digest: str) -> Viewer | None:
    row = await ApiKey.get_or_none(prefix=prefix, revoked=False).select_related("partner")
    if row is None or not hmac.compare_digest(row.key_hash, digest):
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
