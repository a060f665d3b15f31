"""Customer tokens: JWT (HS256) whose subject is the customer's e-mail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

from ordergraph.auth.viewer import Viewer, ViewerKind
from ordergraph.config import Settings, get_settings


def issue_customer_token(
    email: str, ttl: timedelta = timedelta(days=30), settings: Settings | None = None
) -> str:
    s = settings or get_settings()
    now = datetime.now(UTC)
    claims = {
        "sub": email.lower(),
        "aud": s.jwt_audience,
        "iss": s.jwt_issuer,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, s.jwt_secret, algorithm="HS256")


def viewer_for_token(token: str, settings: Settings | None = None) -> Viewer | None:
    s = settings or get_settings()
    try:
        claims = jwt.decode(
            token,
            s.jwt_secret,
            algorithms=["HS256"],
            audience=s.jwt_audience,
            issuer=s.jwt_issuer,
            options={"require": ["sub", "exp"]},
        )
    except jwt.PyJWTError:
        return None
    email = str(claims["sub"]).lower()
    return Viewer(
        ViewerKind.CUSTOMER, f"customer:{email}", frozenset({"orders:read:own"}), email=email
    )
