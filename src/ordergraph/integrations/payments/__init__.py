"""Payments behind the `PaymentGateway` Protocol: LocalGateway (built in) and HttpGateway."""

from ordergraph.integrations.payments.base import (
    AMOUNT_EXCEEDS_AUTHORIZATION,
    AMOUNT_EXCEEDS_CAPTURED,
    AUTHORIZATION_CAPTURED,
    AUTHORIZATION_EXPIRED,
    AUTHORIZATION_NOT_FOUND,
    AUTHORIZATION_VOIDED,
    CARD_DECLINED,
    DECLINE_CODES,
    IDEMPOTENCY_KEY_REUSED,
    INSUFFICIENT_FUNDS,
    INVALID_AMOUNT,
    INVALID_TOKEN,
    AuthorizationResult,
    GatewayConfigurationError,
    GatewayResult,
    GatewayUnavailable,
    IdempotencyConflict,
    PaymentGateway,
    with_retries,
)
from ordergraph.integrations.payments.http import HttpGateway
from ordergraph.integrations.payments.local import AuthorizationState, LocalGateway
from ordergraph.integrations.payments.registry import (
    GATEWAY_NAMES,
    get_gateway,
    reset_local_gateway,
)

__all__ = [
    "AMOUNT_EXCEEDS_AUTHORIZATION",
    "AMOUNT_EXCEEDS_CAPTURED",
    "AUTHORIZATION_CAPTURED",
    "AUTHORIZATION_EXPIRED",
    "AUTHORIZATION_NOT_FOUND",
    "AUTHORIZATION_VOIDED",
    "CARD_DECLINED",
    "DECLINE_CODES",
    "GATEWAY_NAMES",
    "IDEMPOTENCY_KEY_REUSED",
    "INSUFFICIENT_FUNDS",
    "INVALID_AMOUNT",
    "INVALID_TOKEN",
    "AuthorizationResult",
    "AuthorizationState",
    "GatewayConfigurationError",
    "GatewayResult",
    "GatewayUnavailable",
    "HttpGateway",
    "IdempotencyConflict",
    "LocalGateway",
    "PaymentGateway",
    "get_gateway",
    "reset_local_gateway",
    "with_retries",
]
