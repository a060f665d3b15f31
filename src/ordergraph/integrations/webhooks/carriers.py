"""Carrier webhooks end to end (without the HTTP endpoint or the database): check the
signature with the carrier's secrets from settings, then parse the body in its format.

    updates = verify_carrier_webhook("swiftship", request.headers.get(SIGNATURE_HEADER),
                                     await request.body(), now=time.time())

raises `WebhookSignatureError` (SIGNATURE_MISSING, SIGNATURE_MALFORMED, SIGNATURE_INVALID,
TIMESTAMP_STALE) before reading the body, then `CarrierError`: CARRIER_MISCONFIGURED for a
carrier that is not offered or has no secret, INVALID_WEBHOOK_PAYLOAD for a body it cannot read.
Deduplicating by ``TrackingUpdate.carrier_event_id`` is the caller's job.

`carrier_webhook_headers` is the sending side, for the local simulator, tests and the demo:
the headers a carrier would send with `body`, signed with the carrier's first secret.
"""

from __future__ import annotations

from ordergraph.config import Settings, get_settings
from ordergraph.integrations.carriers.base import CarrierError, CarrierErrorCode, TrackingUpdate
from ordergraph.integrations.carriers.registry import get_carrier
from ordergraph.integrations.webhooks.signing import SIGNATURE_HEADER, sign, verify


def _secrets(carrier_code: str, settings: Settings) -> list[str]:
    secrets = [s for s in settings.webhook_secrets(carrier_code) if s]
    if not secrets:
        raise CarrierError(
            CarrierErrorCode.CARRIER_MISCONFIGURED,
            f"no webhook secret for {carrier_code!r} in CARRIER_WEBHOOK_SECRETS",
        )
    return secrets


def verify_carrier_webhook(
    carrier_code: str,
    header: str | None,
    body: bytes,
    *,
    now: float,
    settings: Settings | None = None,
) -> list[TrackingUpdate]:
    """The tracking updates of a signed webhook delivery (see the module docstring)."""
    settings = settings or get_settings()
    carrier = get_carrier(carrier_code, settings)
    verify(
        _secrets(carrier_code, settings),
        header,
        body,
        now=now,
        tolerance_seconds=settings.carrier_webhook_tolerance_seconds,
    )
    return carrier.parse_webhook(body)


def carrier_webhook_headers(
    carrier_code: str, body: bytes, *, timestamp: int, settings: Settings | None = None
) -> dict[str, str]:
    """The headers of a webhook POST from `carrier_code` carrying `body`, sent at `timestamp`."""
    secret = _secrets(carrier_code, settings or get_settings())[0]
    return {SIGNATURE_HEADER: sign(secret, body, timestamp), "Content-Type": "application/json"}
