"""Turning an `Email` into an RFC 5322 message (`email.message.EmailMessage`)."""

from __future__ import annotations

import hashlib
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from ordergraph.integrations.notifications.base import (
    Email,
    NotificationError,
    NotificationErrorCode,
)

_RESERVED = {"from", "to", "subject", "date", "message-id", "content-type", "mime-version"}


def _invalid(message: str) -> NotificationError:
    return NotificationError(NotificationErrorCode.INVALID_MESSAGE, message)


def _domain(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "ordergraph.local"


def message_id(email: Email, mail_from: str) -> str:
    """The Message-ID: derived from the idempotency key when there is one, else random."""
    domain = _domain(email.mail_from or mail_from)
    if email.idempotency_key:
        digest = hashlib.sha256(email.idempotency_key.encode()).hexdigest()[:32]
        return f"<{digest}@{domain}>"
    return make_msgid(domain=domain)


def check_address(value: str) -> str:
    name, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in address):
        raise _invalid(f"not an e-mail address: {value!r}")
    try:
        str(Address(display_name=name, addr_spec=address))
    except (ValueError, IndexError) as exc:
        raise _invalid(f"not an e-mail address: {value!r} ({exc})") from exc
    return value


def to_mime(email: Email, mail_from: str, *, msg_id: str | None = None) -> EmailMessage:
    """The message as it is sent or written: text, or multipart/alternative text + HTML."""
    if not email.to:
        raise _invalid("an e-mail needs at least one recipient")
    sender = check_address(email.mail_from or mail_from)
    recipients = [check_address(a) for a in email.to]
    msg = EmailMessage()
    try:
        msg["From"] = sender
        msg["To"] = ", ".join(recipients)
        msg["Subject"] = email.subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = msg_id or message_id(email, mail_from)
        for name, value in email.headers.items():
            if name.lower() in _RESERVED:
                raise _invalid(f"header {name!r} is set by the notifier")
            msg[name] = value
    except ValueError as exc:  # a CR or LF in a header value: header injection
        raise _invalid(f"a header is malformed: {exc}") from exc
    msg.set_content(email.text)
    if email.html is not None:
        msg.add_alternative(email.html, subtype="html")
    return msg
