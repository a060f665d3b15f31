"""SmtpNotifier against a real SMTP server (aiosmtpd) listening on a free 127.0.0.1 port.

The server runs in aiosmtpd's own thread and event loop. Its handler records every envelope
exactly as received and can be told to refuse recipients or data with a given reply, or to
stall, to drive the notifier's failure mapping.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from ordergraph.integrations import notifications as n
from ordergraph.integrations.notifications import NotificationErrorCode as C
from tests.servers import free_port

USER, PASSWORD = "mailer", "s3cret"


class Handler:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_reply: str | None = None
        self.stall = 0.0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.stall:
            await asyncio.sleep(self.stall)
        if self.data_reply:
            return self.data_reply
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # not handled: the server answers 535


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[Handler, int]]:
    handler = Handler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def server(smtp_server) -> Handler:
    handler, _ = smtp_server
    handler.received.clear()
    handler.rcpt_replies.clear()
    handler.data_reply, handler.stall = None, 0.0
    return handler


@pytest.fixture
def notifier(smtp_server, server) -> n.SmtpNotifier:
    return n.SmtpNotifier(
        host="127.0.0.1",
        port=smtp_server[1],
        starttls=False,
        timeout=5,
        mail_from="Shop <shop@example.com>",
    )


MAIL = n.render(
    "ORDER_SHIPPED",
    {
        "order_number": "SO-1",
        "carrier": "Econopost",
        "tracking_number": "CP123456785US",
        "tracking_url": "https://track.econopost.example/items/CP123456785US",
        "items": [("MUG", "Mug", 1)],
    },
    to=["Ada <ada@example.com>", "bob@example.com"],
    idempotency_key="fo-1-shipped",
)


async def refused(code: C, call) -> n.NotificationError:
    with pytest.raises(n.NotificationError) as info:
        await call
    assert (info.value.code, info.value.retryable) == (code, code == C.DELIVERY_UNAVAILABLE)
    return info.value


async def test_delivery_envelope_and_content(notifier, server):
    msg_id = await notifier.send(MAIL)
    [(sender, rcpts, content)] = server.received
    assert (sender, rcpts) == ("shop@example.com", ["ada@example.com", "bob@example.com"])
    assert b"\r\n" in content  # what crossed the wire; the parser wants plain newlines
    msg = email.message_from_bytes(content.replace(b"\r\n", b"\n"), policy=email.policy.default)
    assert (msg["Message-ID"], msg["Subject"], msg["To"]) == (
        msg_id,
        "Your order SO-1 has shipped",
        "Ada <ada@example.com>, bob@example.com",
    )
    assert msg.get_body(("plain",)).get_content() == MAIL.text
    assert msg.get_body(("html",)).get_content() == MAIL.html
    assert msg_id == n.message_id(MAIL, "shop@example.com")


async def test_the_same_key_is_delivered_once(notifier, server):
    first = await notifier.send(MAIL)
    assert await notifier.send(MAIL) == first
    other = await notifier.send(n.Email.of("ada@example.com", "Hi", "Hello"))
    assert other != first and len(server.received) == 2


async def test_concurrent_sends_of_one_key_deliver_once(notifier, server):
    server.stall = 0.2
    ids = await asyncio.gather(*(notifier.send(MAIL) for _ in range(3)))
    assert len(set(ids)) == 1 and len(server.received) == 1


async def test_login(smtp_server, server):
    ok = n.SmtpNotifier(
        host="127.0.0.1",
        port=smtp_server[1],
        username=USER,
        password=PASSWORD,
        starttls=False,
        mail_from="shop@example.com",
    )
    await ok.send(n.Email.of("ada@example.com", "Hi", "Hello"))
    bad = n.SmtpNotifier(
        host="127.0.0.1",
        port=smtp_server[1],
        username=USER,
        password="nope",
        starttls=False,
        mail_from="shop@example.com",
    )
    err = await refused(
        C.NOTIFIER_MISCONFIGURED, bad.send(n.Email.of("ada@example.com", "Hi", "Hello"))
    )
    assert "535" in err.message
    assert len(server.received) == 1


async def test_starttls_required_but_not_offered(smtp_server, server):
    tls = n.SmtpNotifier(
        host="127.0.0.1", port=smtp_server[1], starttls=True, mail_from="shop@example.com"
    )
    err = await refused(C.NOTIFIER_MISCONFIGURED, tls.send(n.Email.of("a@example.com", "s", "t")))
    assert "STARTTLS" in err.message.upper() and server.received == []


async def test_recipient_refusals(notifier, server):
    server.rcpt_replies = {"ada@example.com": "550 No such user", "bob@example.com": "550 Nope"}
    await refused(C.RECIPIENT_REFUSED, notifier.send(MAIL))
    server.rcpt_replies = {"ada@example.com": "450 Mailbox busy", "bob@example.com": "550 Nope"}
    await refused(C.DELIVERY_UNAVAILABLE, notifier.send(MAIL))
    assert server.received == []
    server.rcpt_replies = {"bob@example.com": "550 Nope"}  # one of two: delivered to the other
    await notifier.send(MAIL)
    assert [r[1] for r in server.received] == [["ada@example.com"]]


async def test_data_refusals_and_a_retry_after_a_temporary_one(notifier, server):
    server.data_reply = "554 Spam detected"
    await refused(C.MESSAGE_REJECTED, notifier.send(MAIL))
    server.data_reply = "451 Try again later"
    await refused(C.DELIVERY_UNAVAILABLE, notifier.send(MAIL))
    server.data_reply = None
    msg_id = await notifier.send(MAIL)  # the key was not remembered for the failures
    assert len(server.received) == 1 and msg_id == n.message_id(MAIL, "shop@example.com")


async def test_a_stalled_server_times_out(smtp_server, server):
    server.stall = 1.5
    slow = n.SmtpNotifier(
        host="127.0.0.1",
        port=smtp_server[1],
        starttls=False,
        timeout=0.3,
        mail_from="shop@example.com",
    )
    started = time.monotonic()
    await refused(C.DELIVERY_UNAVAILABLE, slow.send(n.Email.of("a@example.com", "s", "t")))
    assert time.monotonic() - started < 1.4


async def test_nobody_listening():
    down = n.SmtpNotifier(
        host="127.0.0.1", port=free_port(), starttls=False, timeout=2, mail_from="shop@example.com"
    )
    await refused(C.DELIVERY_UNAVAILABLE, down.send(n.Email.of("a@example.com", "s", "t")))


async def test_an_invalid_message_never_reaches_the_server(notifier, server):
    await refused(C.INVALID_MESSAGE, notifier.send(n.Email.of("nobody", "s", "t")))
    assert server.received == []
