"""`get_notifier(settings)`: SMTP when ``SMTP_HOST`` is set, else the ``.eml`` outbox."""

from __future__ import annotations

from ordergraph.config import Settings, get_settings
from ordergraph.integrations.notifications.base import Notifier
from ordergraph.integrations.notifications.outbox import OutboxNotifier
from ordergraph.integrations.notifications.smtp import SmtpNotifier


def get_notifier(settings: Settings | None = None) -> Notifier:
    settings = settings or get_settings()
    if settings.smtp_host:
        return SmtpNotifier(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            tls=settings.smtp_tls,
            timeout=settings.smtp_timeout_seconds,
            mail_from=settings.mail_from,
        )
    return OutboxNotifier(settings.outbox_dir, settings.mail_from)
