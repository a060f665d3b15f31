"""Gateways by name: "local" (the process-wide LocalGateway) and "http" (from the environment)."""

from __future__ import annotations

import os
import threading

from ordergraph.integrations.payments.base import GatewayConfigurationError, PaymentGateway
from ordergraph.integrations.payments.http import HttpGateway
from ordergraph.integrations.payments.local import LocalGateway

GATEWAY_NAMES = ("local", "http")

_local: LocalGateway | None = None
_local_lock = threading.Lock()


def _local_gateway() -> LocalGateway:
    global _local
    with _local_lock:
        if _local is None:
            _local = LocalGateway()
        return _local


def reset_local_gateway() -> None:
    """Forget the process-wide LocalGateway and all its state (for tests)."""
    global _local
    with _local_lock:
        _local = None


def _http_gateway() -> HttpGateway:
    base_url = os.environ.get("PAYMENT_HTTP_BASE_URL", "").strip()
    api_key = os.environ.get("PAYMENT_HTTP_API_KEY", "").strip()
    missing = [
        name
        for name, value in (("PAYMENT_HTTP_BASE_URL", base_url), ("PAYMENT_HTTP_API_KEY", api_key))
        if not value
    ]
    if missing:
        raise GatewayConfigurationError(f"the http payment gateway needs {', '.join(missing)}")
    return HttpGateway(base_url, api_key)


def get_gateway(name: str) -> PaymentGateway:
    """The gateway called `name`; GatewayConfigurationError for an unknown or unconfigured one."""
    if name == "local":
        return _local_gateway()
    if name == "http":
        return _http_gateway()
    raise GatewayConfigurationError(
        f"unknown payment gateway {name!r}; known: {', '.join(GATEWAY_NAMES)}"
    )
