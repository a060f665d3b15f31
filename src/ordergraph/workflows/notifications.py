"""Customer and team notifications through their own outbox.

`queue` writes one row per fact (its key) in the caller's transaction, so a message exists
exactly when its cause committed and retries never duplicate it. After the commit the row is
sent at once; `deliver_pending` (a periodic job, safe in several processes) sends whatever a
crash or a mail-server outage left behind, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tortoise.expressions import Q

from ordergraph.db import after_commit, execute, placeholders
from ordergraph.models import Notification
from ordergraph.models.enums import NotificationStatus
from ordergraph.observability import log

MAX_ATTEMPTS = 5
LEASE = timedelta(seconds=60)  # longer than any one SMTP conversation (its timeout is shorter)
_background: set[asyncio.Task] = set()


async def queue(key: str, template: str, recipient: str, context: dict[str, Any], *, order_id: int | None = None) -> None:
    """One message per `key`, whatever the retries: a second call with the key does nothing."""
    p = placeholders(5)
    await execute(
        "INSERT INTO notifications (key, template, recipient, order_id, context, status, attempts, last_error, created_at) "
        f"VALUES ({p[0]}, {p[1]}, {p[2]}, {p[3]}, {p[4]}, 'PENDING', 0, '', CURRENT_TIMESTAMP) "
        "ON CONFLICT (key) DO NOTHING",
        [key, template, recipient, order_id, json.dumps(context, default=str)],
    )
    after_commit(_send_soon)


def _send_soon() -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(deliver_pending())
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _claim(n: Notification, now: datetime) -> bool:
    """Take the row for one attempt: SENDING until the lease ends. Another process that read
    the same row loses (its UPDATE matches nothing); a claim whose process died is taken over
    once its lease has passed."""
    p = placeholders(4)
    changed = await execute(
        f"UPDATE notifications SET status = 'SENDING', attempts = attempts + 1, locked_until = {p[0]} "
        f"WHERE id = {p[1]} AND attempts = {p[2]} AND (status = 'PENDING' OR (status = 'SENDING' AND locked_until < {p[3]}))",
        [now + LEASE, n.id, n.attempts, now],
    )
    return changed == 1


def _context(stored: dict[str, Any]) -> dict[str, Any]:
    """The template's context as it was queued (dates come back from JSON as ISO strings)."""
    ctx = dict(stored)
    if isinstance(ctx.get("eta"), str):
        ctx["eta"] = date.fromisoformat(ctx["eta"])
    return ctx


async def deliver_pending(limit: int = 50) -> int:
    """Send the pending messages; returns how many were sent."""
    from ordergraph.integrations.notifications import NotificationError, get_notifier, render  # noqa: PLC0415

    sent = 0
    now = datetime.now(UTC)
    rows = await Notification.filter(
        Q(status=NotificationStatus.PENDING) | Q(status=NotificationStatus.SENDING, locked_until__lt=now),
        attempts__lt=MAX_ATTEMPTS,
    ).order_by("id").limit(limit)
    if not rows:
        return 0
    notifier = get_notifier()
    for n in rows:
        if not await _claim(n, now):
            continue
        attempts = n.attempts + 1
        try:
            message = render(n.template, _context(n.context), to=[n.recipient], idempotency_key=n.key)
            message_id = await notifier.send(message)
        except NotificationError as exc:
            final = not exc.retryable or attempts >= MAX_ATTEMPTS
            await Notification.filter(id=n.id).update(
                last_error=f"{exc.code}: {exc}"[:500],
                status=NotificationStatus.FAILED if final else NotificationStatus.PENDING, locked_until=None,
            )
            log.warning("notification_failed", key=n.key, code=str(exc.code), error=exc.message, final=final)
            continue
        except Exception as exc:  # noqa: BLE001 - an unexpected failure is retried like an outage
            await Notification.filter(id=n.id).update(
                last_error=repr(exc)[:500],
                status=NotificationStatus.FAILED if attempts >= MAX_ATTEMPTS else NotificationStatus.PENDING,
                locked_until=None,
            )
            log.exception("notification_error", key=n.key)
            continue
        await Notification.filter(id=n.id).update(status=NotificationStatus.SENT, sent_at=datetime.now(UTC),
                                                  message_id=message_id, last_error="", locked_until=None)
        sent += 1
    return sent
