"""Notification templates, the .eml outbox read back with the email package, and get_notifier."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from ordergraph.config import Settings
from ordergraph.integrations import notifications as n
from ordergraph.integrations.notifications import NotificationErrorCode as C

SHIPMENT = {
    "order_number": "SO-1001",
    "customer_name": "Ada <Lovelace>",
    "carrier": "SwiftShip",
    "tracking_number": "SW123456789015",
    "tracking_url": "https://swiftship.example/track?number=SW123456789015&lang=en",
    "eta": date(2026, 11, 20),
    "items": [
        ("MUG-RED", "Red mug & <saucer>", 2),
        {"sku": "KETTLE", "name": "Kettle", "quantity": 1},
    ],
}
ALERT = {
    "order_number": "SO-1001",
    "exception_code": "CARRIER_EXCEPTION",
    "severity": "high",
    "summary": "Parcel damaged in transit",
}


def refused(code: C, call, *args, **kw) -> n.NotificationError:
    with pytest.raises(n.NotificationError) as info:
        call(*args, **kw)
    assert (info.value.code, info.value.retryable) == (code, code == C.DELIVERY_UNAVAILABLE)
    return info.value


@pytest.mark.parametrize(
    ("template", "extra", "subject", "phrase"),
    [
        (
            "ORDER_SHIPPED",
            {},
            "Your order SO-1001 has shipped",
            "Good news: your order SO-1001 is on its way with SwiftShip.",
        ),
        (
            "OUT_FOR_DELIVERY",
            {"location": "Austin, TX"},
            "Your order SO-1001 is out for delivery",
            "Your order SO-1001 is out for delivery from Austin, TX and should arrive today.",
        ),
        (
            "DELIVERED",
            {"delivered_at": datetime(2026, 11, 20, 9, 5, tzinfo=timezone(timedelta(hours=-6)))},
            "Your order SO-1001 was delivered",
            "Your order SO-1001 was delivered on 2026-11-20 15:05 UTC.",
        ),
        (
            "DELAYED",
            {"reason": "a storm in Memphis", "eta": date(2026, 11, 24)},
            "Your order SO-1001 is delayed",
            "Your order SO-1001 is running late: a storm in Memphis.\n"
            "SwiftShip now expects to deliver it on Tuesday 24 November 2026.",
        ),
    ],
)
def test_customer_templates(template, extra, subject, phrase):
    mail = n.render(template, SHIPMENT | extra, to="ada@example.com", idempotency_key="k1")
    assert (mail.to, mail.subject, mail.idempotency_key) == (("ada@example.com",), subject, "k1")
    assert mail.headers == {
        "X-Ordergraph-Template": template,
        "X-Ordergraph-Order": "SO-1001",
        "Auto-Submitted": "auto-generated",
    }
    assert mail.text.startswith("Hello Ada <Lovelace>,\n\n")  # text is not escaped
    assert phrase in mail.text
    for line in [
        "Order:           SO-1001",
        "Carrier:         SwiftShip",
        "Tracking number: SW123456789015",
        f"Track your package: {SHIPMENT['tracking_url']}",
        "  2 x Red mug & <saucer> (MUG-RED)",
        "  1 x Kettle (KETTLE)",
    ]:
        assert line + "\n" in mail.text, line
    eta = extra.get("eta", SHIPMENT["eta"])
    assert f"{eta:%A} {eta.day} {eta:%B %Y}" in mail.text
    # HTML is escaped, the link's & included
    assert "Hello Ada &lt;Lovelace&gt;," in mail.html and "<Lovelace>" not in mail.html
    assert "Red mug &amp; &lt;saucer&gt;" in mail.html
    assert 'href="https://swiftship.example/track?number=SW123456789015&amp;lang=en"' in mail.html
    assert f"<title>{subject}</title>" in mail.html


def test_delay_without_reason_or_date_and_no_items():
    ctx = {k: SHIPMENT[k] for k in ("order_number", "carrier", "tracking_number", "tracking_url")}
    mail = n.render("DELAYED", ctx | {"to": ["a@example.com", "b@example.com"]})
    assert mail.to == ("a@example.com", "b@example.com")
    assert mail.text.startswith(
        "Hello there,\n\nYour order SO-1001 is running late.\n"
        "SwiftShip has not given a new delivery date yet."
    )
    assert "estimated delivery" not in mail.text.lower() and "In this package" not in mail.text
    assert "In this package" not in mail.html


def test_team_alert_defaults_to_the_ops_recipients(monkeypatch):
    mail = n.render(
        "EXCEPTION_ESCALATED",
        ALERT
        | {
            "details": "Photo <attached>",
            "link": "https://ops.example/exceptions/7",
            "raised_at": datetime(2026, 11, 20, 10, tzinfo=UTC),
            "tracking_number": "SW1",
        },
    )
    assert mail.subject == "[HIGH] CARRIER_EXCEPTION on SO-1001: Parcel damaged in transit"
    assert mail.to == ("ops@ordergraph.local",)
    assert "Raised:    2026-11-20 10:00 UTC\n" in mail.text and "Photo <attached>" in mail.text
    assert "Tracking:  SW1\n" in mail.text and "Carrier" not in mail.text
    assert "Photo &lt;attached&gt;" in mail.html
    assert n.render("EXCEPTION_ESCALATED", ALERT, to="x@example.com").to == ("x@example.com",)


def test_template_refusals():
    refused(C.TEMPLATE_UNKNOWN, n.render, "ORDER_LOST", SHIPMENT, to="a@example.com")
    err = refused(
        C.TEMPLATE_CONTEXT_INVALID,
        n.render,
        "ORDER_SHIPPED",
        SHIPMENT | {"tracking_url": "", "carrier": None},
        to="a@example.com",
    )
    assert "carrier, tracking_url" in err.message
    refused(
        C.TEMPLATE_CONTEXT_INVALID,
        n.render,
        "ORDER_SHIPPED",
        SHIPMENT | {"items": ["MUG"]},
        to="a@example.com",
    )
    refused(
        C.TEMPLATE_CONTEXT_INVALID,
        n.render,
        "DELIVERED",
        SHIPMENT | {"delivered_at": datetime(2026, 1, 1)},
        to="a@example.com",
    )
    refused(C.INVALID_MESSAGE, n.render, "ORDER_SHIPPED", SHIPMENT)
    assert set(n.Template) == set(n.REQUIRED)


def read(path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


async def test_outbox_writes_a_real_multipart_eml(tmp_path):
    outbox = n.OutboxNotifier(tmp_path / "outbox", "Shop <shop@example.com>")
    assert isinstance(outbox, n.Notifier)
    mail = n.render("ORDER_SHIPPED", SHIPMENT, to="Ada <ada@example.com>", idempotency_key="fo-1")
    msg_id = await outbox.send(mail)
    [path] = list((tmp_path / "outbox").iterdir())
    assert path == outbox.path_for(msg_id) and path.suffix == ".eml"
    msg = read(path)
    assert msg["Message-ID"] == msg_id and msg_id.endswith("@example.com>")
    assert (msg["From"], msg["To"], msg["Subject"]) == (
        "Shop <shop@example.com>",
        "Ada <ada@example.com>",
        "Your order SO-1001 has shipped",
    )
    assert (
        msg["X-Ordergraph-Template"] == "ORDER_SHIPPED"
        and msg["Auto-Submitted"] == "auto-generated"
    )
    assert abs(msg["Date"].datetime - datetime.now(UTC)) < timedelta(minutes=1)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg.get_body(("plain",)).get_content() == mail.text
    assert msg.get_body(("html",)).get_content() == mail.html


async def test_outbox_is_idempotent_on_the_key_and_distinct_without(tmp_path):
    outbox = n.OutboxNotifier(tmp_path, "shop@example.com")
    mail = n.Email.of("ada@example.com", "Hi", "Hello", idempotency_key="same")
    first = await outbox.send(mail)
    mtime = outbox.path_for(first).stat().st_mtime_ns
    assert (
        await outbox.send(n.Email.of("ada@example.com", "Changed", "x", idempotency_key="same"))
        == first
    )
    assert outbox.path_for(first).stat().st_mtime_ns == mtime
    assert read(outbox.path_for(first))["Subject"] == "Hi"
    plain = n.Email.of("ada@example.com", "Hi", "Hello")
    a, b = await outbox.send(plain), await outbox.send(plain)
    assert a != b and len(list(tmp_path.iterdir())) == 3
    msg = read(outbox.path_for(a))
    assert msg.get_content_type() == "text/plain" and msg.get_content() == "Hello\n"


@pytest.mark.parametrize(
    "mail",
    [
        n.Email.of([], "s", "t"),
        n.Email.of("not-an-address", "s", "t"),
        n.Email.of("ada@localhost", "s", "t"),
        n.Email.of("ada@example.com", "s\r\nBcc: victim@example.com", "t"),
        n.Email.of("ada@example.com", "s", "t", headers={"X-Note": "a\nBcc: victim@example.com"}),
        n.Email.of("ada@example.com", "s", "t", headers={"From": "boss@example.com"}),
        n.Email.of("ada@example.com", "s", "t", mail_from="nobody"),
    ],
)
async def test_invalid_messages_are_refused_before_any_write(tmp_path, mail):
    outbox = n.OutboxNotifier(tmp_path / "o", "shop@example.com")
    with pytest.raises(n.NotificationError) as info:
        await outbox.send(mail)
    assert (info.value.code, info.value.retryable) == (C.INVALID_MESSAGE, False)
    assert not (tmp_path / "o").exists()


async def test_an_outbox_path_that_is_a_file_is_retryable(tmp_path):
    (tmp_path / "o").write_text("in the way")
    outbox = n.OutboxNotifier(tmp_path / "o", "shop@example.com")
    with pytest.raises(n.NotificationError) as info:
        await outbox.send(n.Email.of("ada@example.com", "s", "t"))
    assert (info.value.code, info.value.retryable) == (C.DELIVERY_UNAVAILABLE, True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_get_notifier_picks_smtp_only_when_a_host_is_set(tmp_path):
    outbox = n.get_notifier(Settings(_env_file=None, outbox_dir=str(tmp_path)))
    assert isinstance(outbox, n.OutboxNotifier) and outbox.directory == tmp_path
    default = n.get_notifier(Settings(_env_file=None))
    assert str(default.directory) == "var/outbox"
    smtp = n.get_notifier(
        Settings(
            _env_file=None,
            smtp_host="mail.example.com",
            smtp_port=2525,
            smtp_username="u",
            smtp_password="secret-pw",
            smtp_starttls=False,
            mail_from="shop@example.com",
        )
    )
    assert isinstance(smtp, n.SmtpNotifier) and isinstance(smtp, n.Notifier)
    assert (smtp.host, smtp.port, smtp.starttls, smtp.tls, smtp.mail_from) == (
        "mail.example.com",
        2525,
        False,
        False,
        "shop@example.com",
    )
    assert "secret-pw" not in repr(smtp)
