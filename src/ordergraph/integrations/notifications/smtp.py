"""SmtpNotifier: delivers e-mail to an SMTP server with aiosmtplib.

Settings: ``SMTP_HOST``, ``SMTP_PORT`` (587), ``SMTP_USERNAME`` / ``SMTP_PASSWORD`` (login only
when both are set), ``SMTP_STARTTLS`` (true: require STARTTLS; false: plain), ``SMTP_TLS``
(implicit TLS, port 465), ``SMTP_TIMEOUT_SECONDS``, ``MAIL_FROM``.

Failures map to `NotificationError` codes:

- connection refused or lost, timeouts, any 4xx answer: DELIVERY_UNAVAILABLE (retryable);
- every recipient refused with a 5xx: RECIPIENT_REFUSED;
- the sender or the data refused with a 5xx: MESSAGE_REJECTED;
- authentication refused, STARTTLS required but not offered, any other SMTP protocol failure:
  NOTIFIER_MISCONFIGURED.

When the server accepts some recipients and refuses others, the message was delivered to those
it accepted and `send` returns normally. Idempotency keys already sent by this notifier are
remembered in the process: sending one again returns its Message-ID without a second delivery,
and a send of a key already in flight waits for it. Sends without a key run concurrently.
"""

from __future__ import annotations

import asyncio
from email.utils import parseaddr

import aiosmtplib

from ordergraph.integrations.notifications.base import (
    Email,
    NotificationError,
    NotificationErrorCode,
)
from ordergraph.integrations.notifications.mime import message_id, to_mime

C = NotificationErrorCode


def _error(exc: Exception) -> NotificationError:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        if any(400 <= code < 500 for code in codes):
            return NotificationError(C.DELIVERY_UNAVAILABLE, f"recipients deferred: {exc}")
        return NotificationError(C.RECIPIENT_REFUSED, f"recipients refused: {exc}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return NotificationError(C.NOTIFIER_MISCONFIGURED, f"SMTP login refused: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if 400 <= exc.code < 500:
            return NotificationError(C.DELIVERY_UNAVAILABLE, f"SMTP {exc.code}: {exc.message}")
        if isinstance(exc, aiosmtplib.SMTPSenderRefused | aiosmtplib.SMTPDataError):
            return NotificationError(C.MESSAGE_REJECTED, f"SMTP {exc.code}: {exc.message}")
    if isinstance(exc, OSError | aiosmtplib.SMTPServerDisconnected | TimeoutError):
        return NotificationError(C.DELIVERY_UNAVAILABLE, f"{type(exc).__name__}: {exc}")
    return NotificationError(C.NOTIFIER_MISCONFIGURED, f"{type(exc).__name__}: {exc}")


class SmtpNotifier:
    def __init__(
        self,
        *,
        host: str,
        port: int = 587,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        tls: bool = False,
        timeout: float = 10.0,
        mail_from: str,
    ) -> None:
        self.host, self.port = host, port
        self._username, self._password = username, password
        self.starttls, self.tls, self.timeout = starttls, tls, timeout
        self.mail_from = mail_from
        self._sent: dict[str, str] = {}  # idempotency key → Message-ID
        self._key_locks: dict[str, asyncio.Lock] = {}  # a key in flight: its twin waits

    def __repr__(self) -> str:  # never show the password
        return f"SmtpNotifier(host={self.host!r}, port={self.port!r})"

    async def send(self, message: Email) -> str:
        msg_id = message_id(message, self.mail_from)
        mime = to_mime(message, self.mail_from, msg_id=msg_id)
        key = message.idempotency_key
        if not key:
            await self._deliver(mime, message)
            return msg_id
        async with self._key_locks.setdefault(key, asyncio.Lock()):
            if key not in self._sent:
                await self._deliver(mime, message)
                self._sent[key] = msg_id
            return self._sent[key]

    async def _deliver(self, mime, message: Email) -> None:
        login = bool(self._username and self._password)
        try:
            await aiosmtplib.send(
                mime,
                sender=parseaddr(str(mime["From"]))[1],
                recipients=[parseaddr(a)[1] for a in message.to],
                hostname=self.host,
                port=self.port,
                username=self._username if login else None,
                password=self._password if login else None,
                start_tls=False if self.tls else self.starttls,
                use_tls=self.tls,
                timeout=self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise _error(exc) from exc
