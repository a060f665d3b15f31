"""Webhooks: the HMAC signature scheme that incoming (and outgoing) webhook bodies carry."""

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
    "sign",
    "verify",
]
