"""OutboxNotifier: "sends" e-mail by writing RFC 5322 ``.eml`` files into a directory.

The embedded default (no SMTP server configured): every message lands in ``OUTBOX_DIR``
(default ``var/outbox``) as ``<sha256 of its Message-ID, 32 hex>.eml``, readable by any mail
client and by `email.message_from_bytes`. A file is written to a temporary name and renamed,
so a reader never sees half a message. Sending an idempotency key again finds the file and
returns the same Message-ID without writing. An unwritable directory raises
DELIVERY_UNAVAILABLE (retryable).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path

from ordergraph.integrations.notifications.base import (
    Email,
    NotificationError,
    NotificationErrorCode,
)
from ordergraph.integrations.notifications.mime import message_id, to_mime


class OutboxNotifier:
    def __init__(self, directory: str | os.PathLike[str], mail_from: str) -> None:
        self.directory = Path(directory)
        self.mail_from = mail_from

    def __repr__(self) -> str:
        return f"OutboxNotifier({str(self.directory)!r})"

    def path_for(self, msg_id: str) -> Path:
        """The file a message with this Message-ID is written to."""
        return self.directory / f"{hashlib.sha256(msg_id.encode()).hexdigest()[:32]}.eml"

    async def send(self, message: Email) -> str:
        msg_id = message_id(message, self.mail_from)
        mime = to_mime(message, self.mail_from, msg_id=msg_id)  # INVALID_MESSAGE before any I/O
        path = self.path_for(msg_id)
        if message.idempotency_key and path.exists():
            return msg_id
        data = mime.as_bytes()
        try:
            await asyncio.to_thread(self._write, path, data)
        except OSError as exc:
            raise NotificationError(
                NotificationErrorCode.DELIVERY_UNAVAILABLE, f"cannot write {path}: {exc}"
            ) from exc
        return msg_id

    def _write(self, path: Path, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".eml")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
