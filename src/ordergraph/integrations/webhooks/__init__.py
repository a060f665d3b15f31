"""Webhooks: the HMAC signature scheme that webhook bodies carry, and carrier webhooks checked
and parsed end to end."""

from ordergraph.integrations.webhooks.carriers import (
    carrier_webhook_headers,
    verify_carrier_webhook,
)
from ordergraph.integrations.webhooks.signing import (
    SIGNATURE_HEADER,
    WebhookSignatureError,
    WebhookSignatureErrorCode,
    sign,
    verify,
)

__all__ = [
    "SIGNATURE_HEADER",
    "WebhookSignatureError",
    "WebhookSignatureErrorCode",
    "carrier_webhook_headers",
    "sign",
    "verify",
    "verify_carrier_webhook",
]
