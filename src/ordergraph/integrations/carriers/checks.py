"""Request checks and calendar rules shared by the local carriers.

- `check_address`: ADDRESS_INVALID for an empty name, line1, city or postal code, or a country
  that is not two upper-case letters (ISO 3166-1 alpha-2).
- `billable_grams`: PARCEL_INVALID for a weight that is not a positive int of grams or a
  negative dimension (0 means unknown), PARCEL_TOO_HEAVY above the profile's limit per parcel;
  otherwise the billable weight, the larger of the actual and the volumetric weight when the
  profile bills volume and all three dimensions are known.
- `add_business_days`: transit times count Monday to Friday only.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from ordergraph.integrations.carriers.base import Address, CarrierError, Parcel
from ordergraph.integrations.carriers.base import CarrierErrorCode as E
from ordergraph.integrations.carriers.profiles import CarrierProfile

_COUNTRY = re.compile(r"^[A-Z]{2}$")


def check_address(role: str, address: Address) -> None:
    empty = [
        name
        for name in ("name", "line1", "city", "postal_code")
        if not str(getattr(address, name) or "").strip()
    ]
    if empty:
        raise CarrierError(E.ADDRESS_INVALID, f"{role} address lacks {', '.join(empty)}")
    if not _COUNTRY.match(address.country or ""):
        raise CarrierError(E.ADDRESS_INVALID, f"{role} country {address.country!r} is not ISO-2")


def billable_grams(profile: CarrierProfile, parcel: Parcel) -> int:
    weight = parcel.weight_grams
    if isinstance(weight, bool) or not isinstance(weight, int) or weight <= 0:
        raise CarrierError(E.PARCEL_INVALID, f"a parcel weight must be positive grams: {weight!r}")
    dims = [Decimal(d) for d in (parcel.length_cm, parcel.width_cm, parcel.height_cm)]
    if any(d < 0 for d in dims):
        raise CarrierError(E.PARCEL_INVALID, f"a parcel dimension is negative: {dims}")
    if weight > profile.max_parcel_grams:
        raise CarrierError(
            E.PARCEL_TOO_HEAVY,
            f"{profile.name} takes at most {profile.max_parcel_grams} g per parcel",
        )
    divisor = profile.volumetric_divisor
    if divisor and all(d > 0 for d in dims):
        volumetric = (dims[0] * dims[1] * dims[2] * 1000 / divisor).to_integral_value(ROUND_HALF_UP)
        return max(weight, int(volumetric))
    return weight


def add_business_days(start: date, days: int) -> date:
    """The date `days` business days (Monday–Friday) after `start`."""
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current
