"""Notification templates (Jinja2): `render(template, context) -> Email`.

Each template is three files in ``templates/``: ``<name>.subject.txt``, ``<name>.txt`` and
``<name>.html``. HTML is autoescaped, text is not; an undefined variable is an error, never an
empty string. The subject is collapsed to one line.

Customer templates — ORDER_SHIPPED, OUT_FOR_DELIVERY, DELIVERED, DELAYED — need
``order_number``, ``carrier`` (its display name), ``tracking_number`` and ``tracking_url``, and
take ``customer_name``, ``eta`` (a `date`; for DELAYED the new estimate), ``items`` (a list of
``(sku, name, quantity)`` tuples or of mappings with those keys), ``location`` (OUT_FOR_DELIVERY,
DELIVERED), ``delivered_at`` (DELIVERED, a `datetime`) and ``reason`` (DELAYED).

The team alert EXCEPTION_ESCALATED needs ``order_number``, ``exception_code``, ``severity`` and
``summary``, and takes ``carrier``, ``tracking_number``, ``raised_at``, ``details`` and ``link``;
its recipients default to ``OPS_ALERT_TO`` (comma-separated).

Recipients: the ``to`` argument, else ``context["to"]``. Every e-mail carries the headers
``X-Ordergraph-Template``, ``X-Ordergraph-Order`` and ``Auto-Submitted: auto-generated``
(RFC 3834, so auto-responders stay quiet). Refusals: TEMPLATE_UNKNOWN, TEMPLATE_CONTEXT_INVALID
(a required value missing or empty, or an undefined variable), INVALID_MESSAGE (no recipient).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, UndefinedError, select_autoescape

from ordergraph.config import get_settings
from ordergraph.integrations.notifications.base import (
    Email,
    NotificationError,
    NotificationErrorCode,
)


class Template(StrEnum):
    ORDER_SHIPPED = "ORDER_SHIPPED"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    DELAYED = "DELAYED"
    EXCEPTION_ESCALATED = "EXCEPTION_ESCALATED"


_SHIPMENT = ("order_number", "carrier", "tracking_number", "tracking_url")
REQUIRED = MappingProxyType(
    {
        Template.ORDER_SHIPPED: _SHIPMENT,
        Template.OUT_FOR_DELIVERY: _SHIPMENT,
        Template.DELIVERED: _SHIPMENT,
        Template.DELAYED: _SHIPMENT,
        Template.EXCEPTION_ESCALATED: ("order_number", "exception_code", "severity", "summary"),
    }
)
_OPTIONAL = (
    "customer_name",
    "eta",
    "items",
    "location",
    "delivered_at",
    "reason",
    "carrier",
    "tracking_number",
    "raised_at",
    "details",
    "link",
)


def _longdate(value: date | None) -> str:
    return "" if value is None else f"{value:%A} {value.day} {value:%B %Y}"


def _datetime(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        raise ValueError("datetimes in notifications must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


_env = Environment(
    loader=PackageLoader("ordergraph.integrations.notifications", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_env.filters["longdate"] = _longdate
_env.filters["datetime"] = _datetime


def _context_error(message: str) -> NotificationError:
    return NotificationError(NotificationErrorCode.TEMPLATE_CONTEXT_INVALID, message)


def _items(value: Any) -> list[dict[str, Any]]:
    items = []
    for item in value or ():
        if isinstance(item, Mapping):
            sku, name, quantity = item.get("sku"), item.get("name"), item.get("quantity")
        elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 3:
            sku, name, quantity = item
        else:
            raise _context_error(f"an item is (sku, name, quantity), not {item!r}")
        items.append({"sku": sku, "name": name, "quantity": quantity})
    return items


def render(
    template: str,
    context: Mapping[str, Any],
    *,
    to: str | Sequence[str] | None = None,
    idempotency_key: str | None = None,
) -> Email:
    """The e-mail of `template` for `context` (see the module docstring)."""
    try:
        name = Template(template)
    except ValueError:
        raise NotificationError(
            NotificationErrorCode.TEMPLATE_UNKNOWN,
            f"no template {template!r}; known: {', '.join(Template)}",
        ) from None
    missing = [k for k in REQUIRED[name] if context.get(k) in (None, "")]
    if missing:
        raise _context_error(f"{name} needs {', '.join(missing)}")
    values = {k: None for k in _OPTIONAL} | dict(context)
    values["items"] = _items(values.get("items"))
    recipients = to if to is not None else context.get("to")
    if recipients is None and name is Template.EXCEPTION_ESCALATED:
        recipients = [a.strip() for a in get_settings().ops_alert_to.split(",") if a.strip()]
    if not recipients:
        raise NotificationError(NotificationErrorCode.INVALID_MESSAGE, "no recipient")
    base = name.value.lower()
    try:
        subject = _env.get_template(f"{base}.subject.txt").render(values)
        text = _env.get_template(f"{base}.txt").render(values)
        html = _env.get_template(f"{base}.html").render(values)
    except UndefinedError as exc:
        raise _context_error(f"{name}: {exc.message}") from exc
    except ValueError as exc:
        raise _context_error(f"{name}: {exc}") from exc
    return Email(
        to=(recipients,) if isinstance(recipients, str) else tuple(recipients),
        subject=" ".join(subject.split()),
        text=text,
        html=html,
        headers={
            "X-Ordergraph-Template": name.value,
            "X-Ordergraph-Order": str(context["order_number"]),
            "Auto-Submitted": "auto-generated",
        },
        idempotency_key=idempotency_key,
    )
