"""Tracking numbers with check digits, per carrier scheme.

- ``econopost`` uses the UPU S10 format: two letters (service indicator), an eight-digit
  serial, a mod-11 check digit, and the ISO-2 country of the posting office, e.g.
  ``CP123456785GB``. Check digit: weights 8 6 4 2 3 5 9 7 over the serial; ``11 - sum % 11``,
  where 10 becomes 0 and 11 becomes 5.
- ``swiftship`` uses ``SW`` followed by eleven digits and a Luhn (mod-10) check digit, e.g.
  ``SW123456789015`` (check digit computed by python-stdnum).
- any other carrier code (an HTTP carrier): no scheme is known, so a non-empty string of
  letters and digits is accepted.

`validate_tracking_number(carrier, number)` tells whether a number is well formed for the
carrier; a local carrier refuses a malformed number with UNKNOWN_TRACKING_NUMBER.
"""

from __future__ import annotations

import re

from stdnum import luhn

S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
_S10 = re.compile(r"^[A-Z]{2}(\d{8})(\d)[A-Z]{2}$")
_SWIFT = re.compile(r"^SW(\d{12})$")
_ANY = re.compile(r"^[A-Z0-9]{1,40}$")


def s10_check_digit(serial: str) -> int:
    """The UPU S10 check digit of an eight-digit serial number."""
    if len(serial) != 8 or not serial.isdigit():
        raise ValueError("an S10 serial is eight digits")
    remainder = sum(int(d) * w for d, w in zip(serial, S10_WEIGHTS, strict=True)) % 11
    check = 11 - remainder
    return {10: 0, 11: 5}.get(check, check)


def s10_number(service_indicator: str, serial: int, country: str) -> str:
    """An S10 number from its parts, e.g. ``s10_number("CP", 12345678, "GB")``."""
    digits = f"{serial:08d}"
    return f"{service_indicator}{digits}{s10_check_digit(digits)}{country}"


def swiftship_number(serial: int) -> str:
    """A swiftship number for an eleven-digit serial, Luhn check digit appended."""
    digits = f"{serial:011d}"
    if len(digits) != 11:
        raise ValueError("a swiftship serial has at most eleven digits")
    return f"SW{digits}{luhn.calc_check_digit(digits)}"


def validate_tracking_number(carrier: str, number: str) -> bool:
    """Whether `number` is a well-formed tracking number of `carrier` (check digit included)."""
    if not isinstance(number, str):
        return False
    if carrier == "econopost":
        match = _S10.match(number)
        return bool(match) and s10_check_digit(match.group(1)) == int(match.group(2))
    if carrier == "swiftship":
        match = _SWIFT.match(number)
        return bool(match) and luhn.is_valid(match.group(1))
    return bool(_ANY.match(number))
