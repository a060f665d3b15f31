"""The notifier interface: an `Email`, the `Notifier` Protocol and `NotificationError`.

    email = render("ORDER_SHIPPED", context, to="ada@example.com", idempotency_key="fo-17-shipped")
    message_id = await get_notifier().send(email)      # "<…@…>", the Message-ID header

``send`` is idempotent on ``Email.idempotency_key`` within the notifier: the Message-ID is
derived from the key, and sending the same key again returns that id without a second
delivery (the outbox finds the file it wrote; SMTP remembers the keys sent by this process —
a durable guarantee across processes needs the caller to record what was sent).

Failures raise `NotificationError` with a `NotificationErrorCode`; ``retryable`` only for
DELIVERY_UNAVAILABLE (server down, timeout, a 4xx answer, a disk that cannot be written).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable


class NotificationErrorCode(StrEnum):
    INVALID_MESSAGE = "INVALID_MESSAGE"  # no or malformed recipient, a header with a newline
    TEMPLATE_UNKNOWN = "TEMPLATE_UNKNOWN"
    TEMPLATE_CONTEXT_INVALID = "TEMPLATE_CONTEXT_INVALID"  # a required value is missing
    DELIVERY_UNAVAILABLE = "DELIVERY_UNAVAILABLE"  # retryable
    RECIPIENT_REFUSED = "RECIPIENT_REFUSED"  # the server refused every recipient (5xx)
    MESSAGE_REJECTED = "MESSAGE_REJECTED"  # the server refused the sender or the content (5xx)
    NOTIFIER_MISCONFIGURED = "NOTIFIER_MISCONFIGURED"  # bad credentials, no STARTTLS


class NotificationError(Exception):
    def __init__(
        self, code: NotificationErrorCode, message: str, retryable: bool | None = None
    ) -> None:
        self.code = NotificationErrorCode(code)
        self.message = message
        self.retryable = (
            self.code is NotificationErrorCode.DELIVERY_UNAVAILABLE
            if retryable is None
            else retryable
        )
        super().__init__(f"{self.code}: {message}")


@dataclass(frozen=True, slots=True)
class Email:
    """One e-mail: plain text always, HTML optional (then sent as multipart/alternative)."""

    to: tuple[str, ...]
    subject: str
    text: str
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # extra headers, e.g. X-…
    idempotency_key: str | None = None
    mail_from: str | None = None  # None: the notifier's MAIL_FROM

    def __post_init__(self) -> None:
        to = (self.to,) if isinstance(self.to, str) else tuple(self.to)
        object.__setattr__(self, "to", to)
        object.__setattr__(self, "headers", dict(self.headers))

    @classmethod
    def of(cls, to: str | Sequence[str], subject: str, text: str, **kw) -> Email:
        return cls(to=tuple([to] if isinstance(to, str) else to), subject=subject, text=text, **kw)


@runtime_checkable
class Notifier(Protocol):
    async def send(self, message: Email) -> str:
        """Deliver `message`; return its Message-ID. Idempotent on its idempotency key."""
        ...
