"""Notifications queued by shipping and tracking, delivered by `deliver_pending` to a real SMTP
server (aiosmtpd on a free 127.0.0.1 port, in its own thread) or written to the .eml outbox.

The notifier comes from the process settings (`get_notifier()` reads `get_settings()`, which
is cached), so each test sets SMTP_HOST/SMTP_PORT/OUTBOX_DIR in the environment and clears the
cache, and puts both back afterwards. A commit that queues a message also sends it at once in
a background task; `drain()` waits for those tasks so each test knows who sent what.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller

from ordergraph.config import get_settings
from ordergraph.db import transaction
from ordergraph.models import Notification, Shipment
from ordergraph.models.enums import NotificationStatus, TrackingSource, TrackingStatus
from ordergraph.workflows import notifications, shipping
from ordergraph.workflows.notifications import MAX_ATTEMPTS, deliver_pending
from tests.api.test_carrier_webhooks import _carriers, event_body, shipped_world  # noqa: F401 (fixture)
from tests.servers import free_port

MAIL_FROM = "Shop <shop@example.com>"


class Handler:
    """Records every message exactly as received; can stall in DATA."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], email.message.EmailMessage]] = []
        self.stall = 0.0

    async def handle_DATA(self, server, session, envelope):
        if self.stall:
            await asyncio.sleep(self.stall)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted"

    def keys(self) -> list[str]:
        """The Message-IDs received, in order (one per delivery)."""
        return [str(m["Message-ID"]) for _, _, m in self.received]


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for the process settings."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


@contextmanager
def smtp_server(port: int | None = None) -> Iterator[tuple[Handler, int]]:
    handler = Handler()
    port = port or free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def outbox() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="og-outbox-") as d:
        yield d


def smtp_env(port: int, outbox_dir: str):
    return environment(SMTP_HOST="127.0.0.1", SMTP_PORT=str(port), SMTP_STARTTLS="false", SMTP_TLS="false",
                       SMTP_TIMEOUT_SECONDS="5", MAIL_FROM=MAIL_FROM, OUTBOX_DIR=outbox_dir,
                       SMTP_USERNAME=None, SMTP_PASSWORD=None)


async def drain() -> None:
    """Wait for the sends started after commits (notifications._background)."""
    for _ in range(100):
        tasks = [t for t in notifications._background if not t.done()]
        if not tasks:
            return
        await asyncio.gather(*tasks, return_exceptions=True)
    raise AssertionError("background sends did not settle")


async def rows() -> dict[str, tuple]:
    return {n.key: (n.status, n.attempts, n.message_id, n.last_error)
            for n in await Notification.all().order_by("id")}


def text_of(msg: email.message.EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


async def _queue(keys: list[str], recipient: str = "grace@example.com") -> None:
    """Messages the way the workflows queue them: in a transaction, sent after its commit."""
    async with transaction():
        for k in keys:
            await notifications.queue(k, "OUT_FOR_DELIVERY", recipient, {
                "order_number": "SO-TEST-1", "customer_name": "Grace", "carrier": "econopost",
                "tracking_number": "CP123456785GB", "tracking_url": "https://track.example/CP123456785GB",
                "eta": None, "items": [], "key": k,
            })


async def _track(s: Shipment, status: TrackingStatus, when, event_id: str) -> None:
    """A scan the carrier reports (its webhook body, parsed as the endpoint parses it)."""
    from ordergraph.integrations.carriers.registry import get_carrier  # noqa: PLC0415

    updates = get_carrier(s.carrier).parse_webhook(event_body(s, status, when, event_id=event_id))
    await shipping.record_tracking(s.carrier, updates, TrackingSource.WEBHOOK, f"carrier:{s.carrier}")


# --- shipping and tracking to a real SMTP server ------------------------------------------------


async def test_shipping_and_tracking_messages_reach_the_smtp_server(db, outbox):
    with smtp_server() as (handler, port), smtp_env(port, outbox):
        w = await shipped_world("ada@example.com")
        await drain()
        # one step at a time: overlapping sends are test_a_run_that_starts_while_another_is_sending...
        await _track(w.econopost, TrackingStatus.OUT_FOR_DELIVERY, w.t0, "ofd-1")
        await drain()
        await _track(w.econopost, TrackingStatus.DELIVERED, w.t0 + timedelta(seconds=1), "dlv-1")
        await drain()
        assert await deliver_pending() == 0  # all sent at once after their commits
    e, s, number = w.econopost, w.swiftship, w.order.number
    state = await rows()
    expected = {
        f"ORDER_SHIPPED:{e.id}": ("ORDER_SHIPPED", e, f"Your order {number} has shipped"),
        f"ORDER_SHIPPED:{s.id}": ("ORDER_SHIPPED", s, f"Your order {number} has shipped"),
        f"OUT_FOR_DELIVERY:{e.id}": ("OUT_FOR_DELIVERY", e, f"Your order {number} is out for delivery"),
        f"DELIVERED:{e.id}": ("DELIVERED", e, f"Your order {number} was delivered"),
    }
    assert set(state) == set(expected)
    assert {k: v[:2] for k, v in state.items()} == {k: (NotificationStatus.SENT, 1) for k in expected}
    assert len(handler.received) == len(expected)
    by_id = {str(m["Message-ID"]): (sender, rcpts, m) for sender, rcpts, m in handler.received}
    for key, (template, shipment, subject) in expected.items():
        status, attempts, message_id, last_error = state[key]
        sender, rcpts, msg = by_id[message_id]
        assert (sender, rcpts) == ("shop@example.com", ["ada@example.com"])
        assert (msg["Subject"], msg["To"], msg["From"]) == (subject, "ada@example.com", MAIL_FROM)
        assert (msg["X-Ordergraph-Template"], msg["X-Ordergraph-Order"]) == (template, number)
        text = text_of(msg)
        assert shipment.tracking_number in text and shipment.carrier in text.lower()
        eta = shipment.estimated_delivery  # the label's estimate, written out for people
        assert eta is not None and f"{eta:%A} {eta.day} {eta:%B %Y}" in text
        assert shipment.tracking_number in msg.get_body(preferencelist=("html",)).get_content()
        assert last_error == ""
    assert os.listdir(outbox) == []  # SMTP configured: nothing in the outbox


async def test_the_items_in_a_message_carry_their_names(db, outbox):
    with smtp_server() as (handler, port), smtp_env(port, outbox):
        w = await shipped_world("ada@example.com", eta=False)
        await drain()
    [msg] = [m for _, _, m in handler.received if w.econopost.tracking_number in text_of(m)]
    assert "2 x Variant SKU-A (SKU-A)" in text_of(msg) and "None" not in text_of(msg)


# --- deliver_pending: once, retries, limits -----------------------------------------------------


async def test_concurrent_runs_send_each_message_once(db, outbox):
    with smtp_server() as (handler, port), smtp_env(port, outbox):
        handler.stall = 0.3  # the server takes its time to accept each message
        keys = ["K0", "K1", "K2"]
        await _queue(keys)  # the commit starts a run in the background
        await asyncio.sleep(0.1)  # ... which has claimed K0 and waits for the server

        async def later(delay: float) -> int:
            await asyncio.sleep(delay)
            return await deliver_pending()  # the periodic job, or another process

        await asyncio.gather(later(0), later(0.1))
        await drain()
        assert await deliver_pending() == 0
    state = await rows()
    assert {k: v[0] for k, v in state.items()} == {k: NotificationStatus.SENT for k in keys}
    assert sorted(handler.keys()) == sorted(v[2] for v in state.values()), \
        f"{len(handler.received)} deliveries of {len(keys)} messages"


async def test_a_server_that_is_down_leaves_messages_pending_until_it_is_back(db, outbox):
    port = free_port()  # nothing listens there yet
    with smtp_env(port, outbox):
        await _queue(["A", "B"])
        await drain()  # the send after commit failed
        state = await rows()
        assert {k: v[:3] for k, v in state.items()} == {k: (NotificationStatus.PENDING, 1, None) for k in "AB"}
        assert all(v[3].startswith("DELIVERY_UNAVAILABLE") for v in state.values()), state
        assert await deliver_pending() == 0
        assert {k: v[:2] for k, v in (await rows()).items()} == {k: (NotificationStatus.PENDING, 2) for k in "AB"}
        with smtp_server(port) as (handler, _):
            assert await deliver_pending() == 2
            assert await deliver_pending() == 0
        state = await rows()
    assert {k: (v[0], v[1], v[3]) for k, v in state.items()} == {k: (NotificationStatus.SENT, 3, "") for k in "AB"}
    assert sorted(handler.keys()) == sorted(v[2] for v in state.values())
    assert os.listdir(outbox) == []


async def test_a_message_is_given_up_after_the_last_attempt(db, outbox):
    port = free_port()
    with smtp_env(port, outbox):
        await _queue(["GIVE-UP"])
        await drain()
        for _ in range(MAX_ATTEMPTS - 1):
            await deliver_pending()
        n = await Notification.get(key="GIVE-UP")
        assert (n.status, n.attempts) == (NotificationStatus.FAILED, MAX_ATTEMPTS)
        assert n.last_error.startswith("DELIVERY_UNAVAILABLE")
        with smtp_server(port) as (handler, _):
            assert await deliver_pending() == 0  # a FAILED message is not tried again
        assert handler.received == []
    assert (await Notification.get(key="GIVE-UP")).attempts == MAX_ATTEMPTS


# --- the outbox (no SMTP_HOST) ------------------------------------------------------------------


async def test_the_outbox_default_writes_parseable_eml_files(db, outbox):
    with environment(SMTP_HOST=None, OUTBOX_DIR=outbox, MAIL_FROM=MAIL_FROM):
        w = await shipped_world("ada@example.com", eta=False)
        await drain()
        assert await deliver_pending() == 0
        await deliver_pending()  # nothing pending: no second file
    state = await rows()
    keys = {f"ORDER_SHIPPED:{w.econopost.id}", f"ORDER_SHIPPED:{w.swiftship.id}"}
    assert {k: v[:2] for k, v in state.items()} == {k: (NotificationStatus.SENT, 1) for k in keys}
    files = sorted(os.listdir(outbox))
    assert len(files) == 2 and all(name.endswith(".eml") for name in files)
    messages = {}
    for name in files:
        with open(os.path.join(outbox, name), "rb") as fh:
            msg = email.message_from_binary_file(fh, policy=email.policy.default)
        messages[str(msg["Message-ID"])] = msg
    assert set(messages) == {v[2] for v in state.values()}
    numbers = set()
    for msg in messages.values():
        assert (msg["To"], msg["From"]) == ("ada@example.com", MAIL_FROM)
        assert msg["Subject"] == f"Your order {w.order.number} has shipped"
        assert msg["X-Ordergraph-Template"] == "ORDER_SHIPPED"
        numbers |= {s.tracking_number for s in (w.econopost, w.swiftship) if s.tracking_number in text_of(msg)}
        assert msg.get_body(preferencelist=("html",)) is not None
    assert numbers == {w.econopost.tracking_number, w.swiftship.tracking_number}


async def test_the_outbox_sends_each_message_once_across_concurrent_runs(db, outbox):
    with environment(SMTP_HOST=None, OUTBOX_DIR=outbox, MAIL_FROM=MAIL_FROM):
        await _queue([f"O{i}" for i in range(5)])
        await asyncio.gather(deliver_pending(), deliver_pending(), deliver_pending())
        await drain()
    # (attempts are not asserted: the claim race above can take a row twice; the outbox is
    # idempotent on the Message-ID, so it still writes one file per message)
    assert {v[0] for v in (await rows()).values()} == {NotificationStatus.SENT}
    assert len([n for n in os.listdir(outbox) if n.endswith(".eml")]) == 5


class Refusing(Handler):
    def __init__(self, reply: str) -> None:
        super().__init__()
        self.reply = reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return self.reply


@pytest.mark.parametrize(("reply", "status", "code"), [
    ("550 5.1.1 no such user", NotificationStatus.FAILED, "RECIPIENT_REFUSED"),  # final
    ("451 4.3.0 try again later", NotificationStatus.PENDING, "DELIVERY_UNAVAILABLE"),  # retried
])
async def test_a_refused_recipient_fails_for_good_and_a_deferral_is_retried(db, outbox, reply, status, code):
    handler = Refusing(reply)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with smtp_env(port, outbox):
            await _queue(["R"])
            await drain()
            assert await deliver_pending() == 0
    finally:
        controller.stop()
    n = await Notification.get(key="R")
    assert (n.status, n.attempts, n.message_id) == (status, 1 if status is NotificationStatus.FAILED else 2, None)
    assert n.last_error.startswith(code), n.last_error
    assert handler.received == []
