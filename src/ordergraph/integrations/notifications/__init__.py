"""Notifications behind the `Notifier` Protocol: SmtpNotifier, OutboxNotifier (.eml files, the
embedded default), `get_notifier(settings)`, and Jinja2 templates rendered by `render`."""

from ordergraph.integrations.notifications.base import (
    Email,
    NotificationError,
    NotificationErrorCode,
    Notifier,
)
from ordergraph.integrations.notifications.mime import message_id, to_mime
from ordergraph.integrations.notifications.outbox import OutboxNotifier
from ordergraph.integrations.notifications.registry import get_notifier
from ordergraph.integrations.notifications.smtp import SmtpNotifier
from ordergraph.integrations.notifications.templates import REQUIRED, Template, render

__all__ = [
    "REQUIRED",
    "Email",
    "NotificationError",
    "NotificationErrorCode",
    "Notifier",
    "OutboxNotifier",
    "SmtpNotifier",
    "Template",
    "get_notifier",
    "message_id",
    "render",
    "to_mime",
]
