"""monitor.mail: real SMTP on 127.0.0.1 (aiosmtpd), the Maildir, and header sanitising."""

from __future__ import annotations

import mailbox
from email.message import EmailMessage

import pytest

from monitor.config import ConfigError, EmailConfig
from monitor.mail import (
    DeliveryError,
    MaildirMailer,
    SmtpMailer,
    check_email_config,
    check_headers,
    clean_header,
    mailer_for,
    new_message,
)
from tests.test_alerts_fixtures import SmtpSink, free_port, smtp_sink  # noqa: F401 (fixture)


def test_clean_header_removes_every_kind_of_line_break():
    for breaker in ("\r\n", "\n", "\r", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\x00"):
        cleaned = clean_header(f"Visa news{breaker}Bcc: x@example.org")
        assert cleaned == "Visa news Bcc: x@example.org"


def test_clean_header_shortens_with_ellipsis():
    assert clean_header("a" * 50, 10) == "a" * 9 + "…"
    assert clean_header("short", 10) == "short"


def test_injected_bcc_in_subject_adds_no_header(smtp_sink):  # noqa: F811
    config = EmailConfig(host="127.0.0.1", port=smtp_sink.port, security="none", sender="alerts@example.org")
    message = new_message("alerts@example.org", "reader@example.org",
                          "[policy-monitor] r: New rule\r\nBcc: x@example.org\r\nX-Evil: 1", "plain", "<p>html</p>")
    mailer = SmtpMailer(config)
    mailer.send(message, "reader@example.org")
    mailer.close()
    (received,) = smtp_sink.wait_for(1)
    rcpts, raw = smtp_sink.received[0]
    assert rcpts == ["reader@example.org"]
    assert received["Bcc"] is None and received["X-Evil"] is None
    assert b"\nBcc:" not in raw and b"\nX-Evil:" not in raw
    assert "Bcc: x@example.org" in received["Subject"]  # kept as harmless text on the one Subject line


ENCODED_BCC = "=?utf-8?q?x=0D=0ABcc=3A_evil@example.org?= visa"


def test_encoded_word_in_subject_adds_no_header(smtp_sink):  # noqa: F811
    # The email library decodes RFC 2047 encoded words when a header is assigned:
    # this one decodes to CR LF "Bcc: evil@example.org".
    message = new_message("alerts@example.org", "reader@example.org", f"[policy-monitor] r: {ENCODED_BCC}",
                          "plain", "<p>html</p>")
    assert message["Bcc"] is None
    mailer = SmtpMailer(EmailConfig(host="127.0.0.1", port=smtp_sink.port, security="none",
                                    sender="alerts@example.org"))
    mailer.send(message, "reader@example.org")
    mailer.close()
    (received,) = smtp_sink.wait_for(1)
    rcpts, raw = smtp_sink.received[0]
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert rcpts == ["reader@example.org"]
    assert received["Bcc"] is None and b"\nBcc:" not in headers
    assert "evil@example.org" in received["Subject"] and "\n" not in received["Subject"]


def test_a_header_with_a_control_character_is_refused(tmp_path, smtp_sink):  # noqa: F811
    # Built without clean_header: the mailers are the last gate.
    message = EmailMessage()
    message["From"] = "alerts@example.org"
    message["To"] = "reader@example.org"
    message["Subject"] = ENCODED_BCC
    message.set_content("plain")
    with pytest.raises(DeliveryError, match="Subject header holds a control character") as failure:
        check_headers(message)
    assert failure.value.permanent and not failure.value.server_down
    for mailer in (SmtpMailer(EmailConfig(host="127.0.0.1", port=smtp_sink.port, security="none")),
                   MaildirMailer(tmp_path / "outbox")):
        with pytest.raises(DeliveryError):
            mailer.send(message, "reader@example.org")
        mailer.close()
    assert smtp_sink.received == [] and not (tmp_path / "outbox").exists()


def test_date_header_names_its_zone():
    # "-0000" would mean "zone unknown" (RFC 5322): parsed, it is a naive datetime.
    message = new_message("a@example.org", "b@example.org", "s", "p", "<p>h</p>")
    assert not message["Date"].endswith("-0000") and message["Date"].datetime.tzinfo is not None


def test_message_is_multipart_plain_and_html():
    message = new_message("alerts@example.org", "reader@example.org", "Subject", "plain text", "<p>html</p>")
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_body(("plain",)).get_content().strip() == "plain text"
    assert message.get_body(("html",)).get_content().strip() == "<p>html</p>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@example.org>")


def test_smtp_down_raises_delivery_error_and_writes_no_maildir(tmp_path):
    config = EmailConfig(host="127.0.0.1", port=free_port(), security="none", outbox=tmp_path / "outbox",
                         timeout=2)
    mailer = mailer_for(config)
    assert isinstance(mailer, SmtpMailer)
    message = new_message("a@example.org", "b@example.org", "s", "p", "<p>h</p>")
    with pytest.raises(DeliveryError) as failure:
        mailer.send(message, "b@example.org")
    assert f"127.0.0.1:{config.port}" in str(failure.value)
    assert not failure.value.recipient_refused and failure.value.server_down
    assert not (tmp_path / "outbox").exists()  # never a silent fallback


def test_empty_host_means_maildir(tmp_path):
    mailer = mailer_for(EmailConfig(host="", outbox=tmp_path / "outbox"))
    assert isinstance(mailer, MaildirMailer)
    mailer.send(new_message("a@example.org", "b@example.org", "Hello", "p", "<p>h</p>"), "b@example.org")
    box = mailbox.Maildir(tmp_path / "outbox", create=False)
    assert [m["Subject"] for m in box] == ["Hello"]


def test_missing_password_variable_is_a_config_error(monkeypatch):
    monkeypatch.delenv("PM_TEST_SMTP_PASSWORD", raising=False)
    config = EmailConfig(host="smtp.example.org", username="me", password_env="PM_TEST_SMTP_PASSWORD")
    with pytest.raises(ConfigError, match="PM_TEST_SMTP_PASSWORD"):
        mailer_for(config)


def test_check_email_config(monkeypatch):
    monkeypatch.delenv("PM_TEST_SMTP_PASSWORD", raising=False)
    missing = EmailConfig(host="smtp.example.org", username="me", password_env="PM_TEST_SMTP_PASSWORD")
    with pytest.raises(ConfigError) as failure:
        check_email_config(missing)
    assert "PM_TEST_SMTP_PASSWORD" in str(failure.value) and "\n" not in str(failure.value)
    with pytest.raises(ConfigError, match="username 'me' is set but password_env is not"):
        check_email_config(EmailConfig(host="smtp.example.org", username="me"))
    monkeypatch.setenv("PM_TEST_SMTP_PASSWORD", "")
    with pytest.raises(ConfigError, match="PM_TEST_SMTP_PASSWORD"):
        check_email_config(missing)
    monkeypatch.setenv("PM_TEST_SMTP_PASSWORD", "secret")
    check_email_config(missing)
    check_email_config(EmailConfig(host="smtp.example.org"))  # no login at all
    check_email_config(EmailConfig(host="", username="me"))  # the Maildir: nothing to log in to


class Answering(SmtpSink):
    """Answers RCPT and DATA with the codes set on it (a content filter, a gone mailbox, a busy one)."""

    rcpt_answer: str | None = None
    data_answer: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        if self.rcpt_answer:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        return self.data_answer or await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize(("rcpt", "data", "permanent", "refused"), [
    (None, "554 5.7.1 Message rejected as spam", True, False),
    (None, "451 4.3.0 try again later", False, False),
    ("550 5.1.1 no such user", None, True, True),
    ("450 4.2.1 mailbox busy", None, False, True),
])
def test_an_answer_about_one_message_is_not_server_down(rcpt, data, permanent, refused):
    sink = Answering()
    sink.rcpt_answer, sink.data_answer = rcpt, data
    sink.start()
    try:
        mailer = SmtpMailer(EmailConfig(host="127.0.0.1", port=sink.port, security="none", sender="a@example.org"))
        with pytest.raises(DeliveryError) as failure:
            mailer.send(new_message("a@example.org", "b@example.org", "s", "p", "<p>h</p>"), "b@example.org")
        mailer.close()
        error = failure.value
        assert not error.server_down
        assert (error.permanent, error.recipient_refused) == (permanent, refused)
        assert (rcpt or data)[:3] in str(error)
    finally:
        sink.stop()


def test_refused_recipient_is_flagged(smtp_sink):  # noqa: F811
    class Refusing(SmtpSink):
        async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
            if address.startswith("nobody@"):
                return "550 no such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    sink = Refusing().start()
    try:
        mailer = SmtpMailer(EmailConfig(host="127.0.0.1", port=sink.port, security="none", sender="a@example.org"))
        message = new_message("a@example.org", "nobody@example.org", "s", "p", "<p>h</p>")
        with pytest.raises(DeliveryError) as failure:
            mailer.send(message, "nobody@example.org")
        assert failure.value.recipient_refused and "550" in str(failure.value)
        mailer.send(new_message("a@example.org", "ok@example.org", "s", "p", "<p>h</p>"), "ok@example.org")
        assert len(sink.wait_for(1)) == 1
        mailer.close()
    finally:
        sink.stop()


def test_an_unset_password_variable_is_no_error_without_a_username(monkeypatch):
    """No username, no login: the variable named by password_env is never read, so it may be unset."""
    monkeypatch.delenv("MONITOR_SMTP_PASSWORD", raising=False)
    check_email_config(EmailConfig(host="smtp.example.org", password_env="MONITOR_SMTP_PASSWORD"))
    with pytest.raises(ConfigError, match="MONITOR_SMTP_PASSWORD"):
        check_email_config(EmailConfig(host="smtp.example.org", username="me", password_env="MONITOR_SMTP_PASSWORD"))
