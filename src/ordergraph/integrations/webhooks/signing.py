"""Stripe-style webhook signatures: ``Ordergraph-Signature: t=<unix seconds>,v1=<hex>``.

``v1`` is the lowercase hex HMAC-SHA256, keyed with the shared secret (UTF-8), of
``f"{t}.".encode() + body`` — the exact bytes received, never a re-serialised JSON. Binding the
timestamp into the MAC lets the receiver refuse replays of old deliveries.

    header = sign(secret, body, timestamp=int(time.time()))
    t = verify(secret, request.headers.get(SIGNATURE_HEADER), body, now=time.time())

`verify` accepts a header carrying several ``v1=`` values (the sender signs with its old and new
secret while one is rotated) and one secret or a sequence of secrets (the receiver accepts the
old and the new secret while one is rotated): the body is genuine when any pair matches.
Comparisons are constant-time (`hmac.compare_digest`). Unknown schemes (``v0=``, ``v2=``) are
ignored, as Stripe does, so a sender can add a scheme without breaking receivers.

Failures raise `WebhookSignatureError` whose ``code`` is a `WebhookSignatureErrorCode`:

- ``SIGNATURE_MISSING``: no header, or an empty one;
- ``SIGNATURE_MALFORMED``: no ``t=`` integer, no ``v1=`` value, or an element without ``=``;
- ``SIGNATURE_INVALID``: no ``v1`` matches any secret (checked before the timestamp, so a
  forged header never learns whether its timestamp would have passed);
- ``TIMESTAMP_STALE``: the signature matches but ``t`` is more than ``tolerance_seconds``
  before ``now`` or after it (clock skew the other way is bounded the same).

Which secret belongs to which carrier is configuration: ``Settings.carrier_webhook_secrets``
(see `ordergraph.config`). Replay protection beyond the tolerance window (remembering event ids)
is the receiving endpoint's job.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from enum import StrEnum

SIGNATURE_HEADER = "Ordergraph-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


class WebhookSignatureErrorCode(StrEnum):
    SIGNATURE_MISSING = "SIGNATURE_MISSING"
    SIGNATURE_MALFORMED = "SIGNATURE_MALFORMED"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    TIMESTAMP_STALE = "TIMESTAMP_STALE"


class WebhookSignatureError(Exception):
    """A webhook body whose signature header does not prove it came from the secret's holder."""

    def __init__(self, code: WebhookSignatureErrorCode, message: str | None = None) -> None:
        self.code = WebhookSignatureErrorCode(code)
        self.message = message or self.code.value
        super().__init__(f"{self.code}: {self.message}")


def _mac(secret: str, body: bytes, timestamp: int) -> str:
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"body must be bytes, not {type(body).__name__}")
    payload = f"{timestamp}.".encode() + bytes(body)
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Ordergraph-Signature`` header value for `body` sent at `timestamp` (unix seconds)."""
    if not secret:
        raise ValueError("a webhook secret must not be empty")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError("timestamp must be an int of unix seconds")
    return f"t={timestamp},{SCHEME}={_mac(secret, body, timestamp)}"


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for element in header.split(","):
        key, sep, value = element.strip().partition("=")
        if not sep:
            raise WebhookSignatureError(
                WebhookSignatureErrorCode.SIGNATURE_MALFORMED, f"element {element!r} has no '='"
            )
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise WebhookSignatureError(
                    WebhookSignatureErrorCode.SIGNATURE_MALFORMED,
                    "t must appear once, as unix seconds",
                )
            timestamp = int(value)
        elif key == SCHEME and value:
            signatures.append(value)
    if timestamp is None:
        raise WebhookSignatureError(WebhookSignatureErrorCode.SIGNATURE_MALFORMED, "no t=")
    if not signatures:
        raise WebhookSignatureError(WebhookSignatureErrorCode.SIGNATURE_MALFORMED, "no v1=")
    return timestamp, signatures


def verify(
    secret: str | Sequence[str],
    header: str | None,
    body: bytes,
    *,
    now: float,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Check `header` against `body`; return its timestamp or raise `WebhookSignatureError`.

    `secret` is one secret or several (rotation). `now` is the receiver's clock in unix
    seconds (pass ``time.time()``); it is a parameter so tests and replays are deterministic.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    secrets = [s for s in secrets if s]
    if not secrets:
        raise ValueError("at least one non-empty webhook secret is needed")
    if header is None or not header.strip():
        raise WebhookSignatureError(WebhookSignatureErrorCode.SIGNATURE_MISSING)
    timestamp, signatures = _parse(header)
    expected = [_mac(s, body, timestamp) for s in secrets]
    matched = False
    for candidate in signatures:
        for mac in expected:
            # compare_digest on str needs ASCII; a non-ASCII candidate simply never matches
            if candidate.isascii() and hmac.compare_digest(candidate.lower(), mac):
                matched = True
    if not matched:
        raise WebhookSignatureError(
            WebhookSignatureErrorCode.SIGNATURE_INVALID, "no v1 signature matches"
        )
    if abs(now - timestamp) > tolerance_seconds:
        raise WebhookSignatureError(
            WebhookSignatureErrorCode.TIMESTAMP_STALE,
            f"timestamp {timestamp} is more than {tolerance_seconds}s from now ({int(now)})",
        )
    return timestamp
