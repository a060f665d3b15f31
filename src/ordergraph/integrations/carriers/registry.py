"""Carriers by code, from settings: the built-in local carriers and one optional HTTP carrier.

- ``CARRIERS_ENABLED`` (default ``econopost,swiftship``) lists the local carriers offered; each
  is one `LocalCarrier` per process, so labels bought through one call are seen by the next.
- ``HTTP_CARRIER_BASE_URL`` and ``HTTP_CARRIER_API_KEY`` (with ``HTTP_CARRIER_CODE``, default
  ``restship``, ``HTTP_CARRIER_NAME`` and ``HTTP_CARRIER_TIMEOUT_SECONDS``) add an `HttpCarrier`.

`get_carrier(code)` raises `CarrierError` ``CARRIER_MISCONFIGURED`` for a code that is neither.
`tracking_url(carrier, tracking_number)` is the page customers follow a parcel on.
"""

from __future__ import annotations

import threading

from ordergraph.config import Settings, get_settings
from ordergraph.integrations.carriers.base import Carrier, CarrierError, CarrierErrorCode
from ordergraph.integrations.carriers.http import HttpCarrier
from ordergraph.integrations.carriers.local import LocalCarrier
from ordergraph.integrations.carriers.profiles import PROFILES

LOCAL_CARRIER_CODES = tuple(PROFILES)

_local: dict[str, LocalCarrier] = {}
_lock = threading.Lock()


def local_carrier(code: str) -> LocalCarrier:
    """The process-wide LocalCarrier `code` (whether enabled or not)."""
    if code not in PROFILES:
        raise CarrierError(CarrierErrorCode.CARRIER_MISCONFIGURED, f"no local carrier {code!r}")
    with _lock:
        if code not in _local:
            _local[code] = LocalCarrier(PROFILES[code])
        return _local[code]


def reset_local_carriers() -> None:
    """Forget the process-wide LocalCarriers and their labels (for tests)."""
    with _lock:
        _local.clear()


def _http_carrier(settings: Settings) -> HttpCarrier | None:
    if not settings.http_carrier_base_url:
        return None
    if not settings.http_carrier_api_key:
        raise CarrierError(
            CarrierErrorCode.CARRIER_MISCONFIGURED,
            "HTTP_CARRIER_BASE_URL is set but HTTP_CARRIER_API_KEY is not",
        )
    return HttpCarrier(
        code=settings.http_carrier_code,
        name=settings.http_carrier_name,
        base_url=settings.http_carrier_base_url,
        api_key=settings.http_carrier_api_key,
        timeout=settings.http_carrier_timeout_seconds,
    )


def available_carriers(settings: Settings | None = None) -> list[Carrier]:
    """The carriers offered: the enabled local ones in settings order, then the HTTP one."""
    settings = settings or get_settings()
    unknown = [c for c in settings.carriers_enabled if c not in PROFILES]
    if unknown:
        raise CarrierError(
            CarrierErrorCode.CARRIER_MISCONFIGURED,
            f"CARRIERS_ENABLED names unknown carriers {unknown}; known: {LOCAL_CARRIER_CODES}",
        )
    carriers: list[Carrier] = [local_carrier(code) for code in settings.carriers_enabled]
    http = _http_carrier(settings)
    if http is not None:
        carriers.append(http)
    return carriers


def get_carrier(code: str, settings: Settings | None = None) -> Carrier:
    """The offered carrier `code`; CARRIER_MISCONFIGURED when it is not offered."""
    for carrier in available_carriers(settings):
        if carrier.code == code:
            return carrier
    raise CarrierError(CarrierErrorCode.CARRIER_MISCONFIGURED, f"carrier {code!r} is not offered")


def tracking_url(carrier: str, tracking_number: str, settings: Settings | None = None) -> str:
    """Where a customer follows the parcel: TRACKING_URL_TEMPLATE, else the carrier's page."""
    settings = settings or get_settings()
    template = settings.tracking_url_template
    if template:
        return template.format(carrier=carrier, tracking_number=tracking_number)
    if carrier in PROFILES:
        return PROFILES[carrier].tracking_url.format(tracking_number=tracking_number)
    if settings.http_carrier_base_url and carrier == settings.http_carrier_code:
        return f"{settings.http_carrier_base_url.rstrip('/')}/tracking/{tracking_number}"
    raise CarrierError(CarrierErrorCode.CARRIER_MISCONFIGURED, f"carrier {carrier!r} is unknown")
