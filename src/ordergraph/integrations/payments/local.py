"""LocalGateway: a built-in payment gateway that behaves like a real one, state in memory.

It is the embedded default and the gateway tests run against. It keeps authorizations (amount,
captured, refunded, status, expiry) per process and honours idempotency keys: the same key for
the same operation and the same parameters returns the first result and never captures or
refunds twice; the same key with different parameters raises `IdempotencyConflict`. A result is
remembered whether approved or declined; a raised `GatewayUnavailable` is not, so a retry runs.

Card tokens:

- ``tok_approve``, or any token starting ``tok_visa`` / ``tok_mastercard``: approved, the
  authorization expires after `authorization_ttl` (7 days by default).
- ``tok_decline``: declined, ``card_declined``.
- ``tok_insufficient_funds``: declined, ``insufficient_funds``.
- ``tok_transient``: the FIRST authorize attempt for an idempotency key raises
  `GatewayUnavailable`; a retry with the same key is approved.
- ``tok_expiring``: approved, but the authorization expires at once (``expires_at`` = now), so a
  later capture or void fails with ``authorization_expired``.
- ``tok_gateway_down``: every authorize raises `GatewayUnavailable`.
- any other token: declined, ``invalid_token``.

Rules: capture may be partial and repeated up to the authorized amount (beyond:
``amount_exceeds_authorization``), not after expiry (``authorization_expired``) nor after a void
(``authorization_voided``). Void releases an uncaptured, unexpired authorization (after a
capture: ``authorization_captured``). Refund may be partial and repeated up to the captured
amount (beyond: ``amount_exceeds_captured``). An amount that is not a positive finite Decimal
is refused with ``invalid_amount``; an unknown reference with ``authorization_not_found``.
References look like ``auth_<hex>``, ``cap_<hex>`` and ``ref_<hex>``; a void's reference is the
authorization's.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import TypeVar

from ordergraph.integrations.payments import base as b

APPROVE_PREFIXES = ("tok_visa", "tok_mastercard")
DECLINE_TOKENS = {
    "tok_decline": (b.CARD_DECLINED, "The card was declined."),
    "tok_insufficient_funds": (b.INSUFFICIENT_FUNDS, "The card has insufficient funds."),
}

AUTHORIZED, CAPTURED, VOIDED, EXPIRED = "authorized", "captured", "voided", "expired"

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class AuthorizationState:
    """A snapshot of one authorization held by a LocalGateway."""

    reference: str
    amount: Decimal
    currency: str
    captured: Decimal
    refunded: Decimal
    status: str  # authorized | captured | voided | expired (uncaptured, past expiry)
    expires_at: datetime


def _new_ref(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _valid_amount(amount: Decimal) -> bool:
    if not isinstance(amount, Decimal):
        raise TypeError(f"amount must be a Decimal, not {type(amount).__name__}")
    return amount.is_finite() and amount > 0


def _failed(code: str, message: str) -> b.GatewayResult:
    return b.GatewayResult(success=False, reference=None, error_code=code, message=message)


def _ok(reference: str, message: str) -> b.GatewayResult:
    return b.GatewayResult(success=True, reference=reference, error_code=None, message=message)


class LocalGateway:
    """In-memory gateway implementing `PaymentGateway`; see the module docstring for tokens."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        authorization_ttl: timedelta = timedelta(days=7),
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._ttl = authorization_ttl
        self._auths: dict[str, AuthorizationState] = {}
        self._replies: dict[tuple[str, str], tuple[Hashable, object]] = {}
        self._transient_failed: set[str] = set()
        self._lock = threading.Lock()

    def authorization(self, reference: str) -> AuthorizationState | None:
        """The current state of an authorization, or None if the reference is unknown."""
        with self._lock:
            auth = self._auths.get(reference)
            return None if auth is None else self._view(auth)

    @property
    def authorizations(self) -> Mapping[str, AuthorizationState]:
        """A read-only snapshot of every authorization by reference, oldest first."""
        with self._lock:
            return MappingProxyType({ref: self._view(a) for ref, a in self._auths.items()})

    # -- PaymentGateway ------------------------------------------------------------------------

    async def authorize(
        self, amount: Decimal, currency: str, token: str, idempotency_key: str
    ) -> b.AuthorizationResult:
        params = (amount, currency, token)
        run = lambda: self._authorize(amount, currency, token, idempotency_key)  # noqa: E731
        return self._once("authorize", idempotency_key, params, run)

    async def capture(
        self, authorization_ref: str, amount: Decimal, idempotency_key: str
    ) -> b.GatewayResult:
        params = (authorization_ref, amount)
        return self._once("capture", idempotency_key, params, lambda: self._capture(*params))

    async def void(self, authorization_ref: str, idempotency_key: str) -> b.GatewayResult:
        run = lambda: self._void(authorization_ref)  # noqa: E731
        return self._once("void", idempotency_key, authorization_ref, run)

    async def refund(
        self, authorization_ref: str, amount: Decimal, idempotency_key: str
    ) -> b.GatewayResult:
        params = (authorization_ref, amount)
        return self._once("refund", idempotency_key, params, lambda: self._refund(*params))

    # -- internals -----------------------------------------------------------------------------

    def _once(self, operation: str, key: str, params: Hashable, run: Callable[[], R]) -> R:
        """Run `run` once per (operation, key); replay its result; refuse changed parameters."""
        with self._lock:
            stored = self._replies.get((operation, key))
            if stored is not None:
                if stored[0] != params:
                    raise b.IdempotencyConflict(
                        f"idempotency key {key!r} was already used for a different {operation}"
                    )
                return stored[1]  # type: ignore[return-value]
            result = run()  # GatewayUnavailable propagates and is not remembered
            self._replies[(operation, key)] = (params, result)
            return result

    def _expired(self, auth: AuthorizationState) -> bool:
        return self._clock() >= auth.expires_at

    def _view(self, auth: AuthorizationState) -> AuthorizationState:
        expired = auth.status == AUTHORIZED and self._expired(auth)
        return replace(auth, status=EXPIRED) if expired else auth

    def _authorize(
        self, amount: Decimal, currency: str, token: str, key: str
    ) -> b.AuthorizationResult:
        def declined(code: str, message: str) -> b.AuthorizationResult:
            return b.AuthorizationResult(False, None, amount, None, code, message)

        if not _valid_amount(amount):
            return declined(b.INVALID_AMOUNT, "The amount must be a positive number.")
        if token == "tok_gateway_down":
            raise b.GatewayUnavailable("payment gateway is down")
        if token == "tok_transient" and key not in self._transient_failed:
            self._transient_failed.add(key)
            raise b.GatewayUnavailable("payment gateway timed out; retry with the same key")
        if token in DECLINE_TOKENS:
            return declined(*DECLINE_TOKENS[token])
        now = self._clock()
        if token == "tok_expiring":
            expires_at = now
        elif token in ("tok_approve", "tok_transient") or token.startswith(APPROVE_PREFIXES):
            expires_at = now + self._ttl
        else:
            return declined(b.INVALID_TOKEN, "The card token is not recognised.")
        auth = AuthorizationState(
            reference=_new_ref("auth"),
            amount=amount,
            currency=currency.upper(),
            captured=Decimal(0),
            refunded=Decimal(0),
            status=AUTHORIZED,
            expires_at=expires_at,
        )
        self._auths[auth.reference] = auth
        return b.AuthorizationResult(True, auth.reference, amount, expires_at, None, "Approved.")

    def _live(self, reference: str) -> AuthorizationState | b.GatewayResult:
        """The authorization, or the failure for an unknown or voided one."""
        auth = self._auths.get(reference)
        if auth is None:
            return _failed(b.AUTHORIZATION_NOT_FOUND, f"No authorization {reference!r}.")
        if auth.status == VOIDED:
            return _failed(b.AUTHORIZATION_VOIDED, "The authorization was voided.")
        return auth

    def _capture(self, reference: str, amount: Decimal) -> b.GatewayResult:
        if not _valid_amount(amount):
            return _failed(b.INVALID_AMOUNT, "The amount must be a positive number.")
        auth = self._live(reference)
        if isinstance(auth, b.GatewayResult):
            return auth
        if self._expired(auth):
            return _failed(b.AUTHORIZATION_EXPIRED, "The authorization has expired.")
        if auth.captured + amount > auth.amount:
            left = auth.amount - auth.captured
            message = f"Only {left} of the authorization is left to capture."
            return _failed(b.AMOUNT_EXCEEDS_AUTHORIZATION, message)
        self._auths[reference] = replace(auth, captured=auth.captured + amount, status=CAPTURED)
        return _ok(_new_ref("cap"), f"Captured {amount}.")

    def _void(self, reference: str) -> b.GatewayResult:
        auth = self._live(reference)
        if isinstance(auth, b.GatewayResult):
            return auth
        if auth.status == CAPTURED:
            return _failed(b.AUTHORIZATION_CAPTURED, "A captured authorization cannot be voided.")
        if self._expired(auth):
            return _failed(b.AUTHORIZATION_EXPIRED, "The authorization has expired.")
        self._auths[reference] = replace(auth, status=VOIDED)
        return _ok(reference, "Voided.")

    def _refund(self, reference: str, amount: Decimal) -> b.GatewayResult:
        if not _valid_amount(amount):
            return _failed(b.INVALID_AMOUNT, "The amount must be a positive number.")
        auth = self._live(reference)
        if isinstance(auth, b.GatewayResult):
            return auth
        if auth.refunded + amount > auth.captured:
            left = auth.captured - auth.refunded
            message = f"Only {left} of the capture is left to refund."
            return _failed(b.AMOUNT_EXCEEDS_CAPTURED, message)
        self._auths[reference] = replace(auth, refunded=auth.refunded + amount)
        return _ok(_new_ref("ref"), f"Refunded {amount}.")
