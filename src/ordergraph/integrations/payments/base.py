"""The payment gateway interface: results, error codes, exceptions and a retry helper.

Expected business outcomes (a declined card, an amount above what is left) are *results*.
Infrastructure failures (timeouts, 5xx, connection errors) raise `GatewayUnavailable`, which is
transient: the caller may retry with the same idempotency key. A gateway that is wrongly
configured (bad API key, wrong base URL) raises `GatewayConfigurationError`, which retrying
does not fix. Reusing an idempotency key for a different request raises `IdempotencyConflict`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TypeVar, runtime_checkable

# Business declines and refusals: the exact codes results carry.
CARD_DECLINED = "card_declined"
INSUFFICIENT_FUNDS = "insufficient_funds"
INVALID_TOKEN = "invalid_token"
AUTHORIZATION_EXPIRED = "authorization_expired"
AMOUNT_EXCEEDS_AUTHORIZATION = "amount_exceeds_authorization"
AMOUNT_EXCEEDS_CAPTURED = "amount_exceeds_captured"
# Refusals of a request that does not fit the authorization's state.
AUTHORIZATION_NOT_FOUND = "authorization_not_found"
AUTHORIZATION_VOIDED = "authorization_voided"
AUTHORIZATION_CAPTURED = "authorization_captured"
INVALID_AMOUNT = "invalid_amount"
# Carried by IdempotencyConflict (and by the HTTP API's error body for it).
IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"

DECLINE_CODES = frozenset(
    {
        CARD_DECLINED,
        INSUFFICIENT_FUNDS,
        AUTHORIZATION_EXPIRED,
        AMOUNT_EXCEEDS_AUTHORIZATION,
        AMOUNT_EXCEEDS_CAPTURED,
        INVALID_TOKEN,
    }
)


class GatewayUnavailable(Exception):
    """Transient infrastructure failure (timeout, 5xx, connection error): safe to retry."""


class GatewayConfigurationError(Exception):
    """The gateway is misconfigured (rejected credentials, unknown endpoint): do not retry."""


class IdempotencyConflict(Exception):
    """An idempotency key was reused for a request with different parameters."""


@dataclass(frozen=True, slots=True)
class AuthorizationResult:
    approved: bool
    reference: str | None
    amount: Decimal
    expires_at: datetime | None  # timezone-aware UTC
    decline_code: str | None
    message: str


@dataclass(frozen=True, slots=True)
class GatewayResult:
    success: bool
    reference: str | None
    error_code: str | None
    message: str


@runtime_checkable
class PaymentGateway(Protocol):
    async def authorize(
        self, amount: Decimal, currency: str, token: str, idempotency_key: str
    ) -> AuthorizationResult: ...

    async def capture(
        self, authorization_ref: str, amount: Decimal, idempotency_key: str
    ) -> GatewayResult: ...

    async def void(self, authorization_ref: str, idempotency_key: str) -> GatewayResult: ...

    async def refund(
        self, authorization_ref: str, amount: Decimal, idempotency_key: str
    ) -> GatewayResult: ...


T = TypeVar("T")


async def with_retries(
    call: Callable[[], Awaitable[T]], attempts: int = 3, base_delay: float = 0.05
) -> T:
    """Await `call()` up to `attempts` times, retrying only on GatewayUnavailable.

    The delay doubles after each failure (base_delay, 2×base_delay, …). After the last attempt
    the last GatewayUnavailable is re-raised; any other exception propagates at once. `call`
    must reuse the same idempotency key on every attempt so a retry never repeats a charge.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(attempts):
        try:
            return await call()
        except GatewayUnavailable:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(base_delay * 2**attempt)
    raise AssertionError("unreachable")
