"""SMTP over real TLS on 127.0.0.1: STARTTLS and implicit TLS against aiosmtpd.

The server's self-signed certificate is made for each test run by the `openssl` command (the project
does not depend on `cryptography`). The client always verifies it; it trusts it only through
`[email] ca_file`.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from monitor.alerts import AlertSender, compile_rules
from monitor.config import Config, ConfigError, load_config
from monitor.mail import DeliveryError, SmtpMailer, new_message
from storage import open_db
from tests.test_alerts_fixtures import FakeTagger, SmtpSink, add_article, make_config

READER = "reader@example.org"
OPENSSL = "/usr/bin/openssl" if Path("/usr/bin/openssl").is_file() else shutil.which("openssl")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding c.pem (self-signed for localhost and 127.0.0.1, valid one day) and its key k.pem."""
    if OPENSSL is None:
        pytest.skip("the openssl command is absent: it makes the test certificate (no `cryptography` dependency)")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem", "-out", "c.pem",
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        cwd=folder, check=True, capture_output=True, timeout=60,
    )
    return folder


class TlsSink(SmtpSink):
    """The SMTP sink serving TLS: implicit TLS, or STARTTLS required before MAIL.

    For each accepted message it notes the TLS version of the connection (None if plain)
    and whether that came from a STARTTLS upgrade.
    """

    def __init__(self, certificate: Path, *, implicit: bool) -> None:
        super().__init__()
        self.implicit = implicit
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certificate / "c.pem", certificate / "k.pem")
        self.tls: list[tuple[str | None, bool]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        ssl_object = server.transport.get_extra_info("ssl_object")
        # aiosmtpd sets session.ssl only when STARTTLS upgraded the connection.
        self.tls.append((ssl_object.version() if ssl_object else None, session.ssl is not None))
        return await super().handle_DATA(server, session, envelope)

    def start(self) -> TlsSink:
        if self.implicit:
            self.controller = Controller(self, hostname="127.0.0.1", port=self.port, ssl_context=self.context)
        else:
            self.controller = Controller(self, hostname="127.0.0.1", port=self.port, tls_context=self.context,
                                         require_starttls=True)
        self.controller.start()
        return self


@pytest.fixture
def starttls_sink(certificate: Path):
    sink = TlsSink(certificate, implicit=False).start()
    yield sink
    sink.stop()


@pytest.fixture
def implicit_tls_sink(certificate: Path):
    sink = TlsSink(certificate, implicit=True).start()
    yield sink
    sink.stop()


def tls_config(tmp_path: Path, certificate: Path, sink: TlsSink, *, trust: bool) -> Config:
    """A config read as from config.toml in `tmp_path`; with `trust`, `ca_file` names a copy of the certificate."""
    email_: dict[str, Any] = {"host": "127.0.0.1", "port": sink.port, "security": "tls" if sink.implicit else
                              "starttls", "sender": "alerts@example.org", "timeout": 5, "outbox": "outbox"}
    if trust:
        shutil.copy(certificate / "c.pem", tmp_path / "smtp-ca.pem")
        email_["ca_file"] = "smtp-ca.pem"  # relative: resolved against the config file's folder
    return make_config(tmp_path, alerts=[{"name": "watch", "to": READER, "query": "visa"}], email_=email_)


def sender_for(config: Config) -> AlertSender:
    sender = AlertSender(config, compile_rules(config, FakeTagger()))
    sender.register()
    return sender


def ledger_counts(config: Config) -> tuple[int, int]:
    db = open_db(config.db_path)
    try:
        return tuple(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                     for table in ("alerts_sent", "alert_deliveries"))
    finally:
        db.close()


# ---------------------------------------------------------------- delivery over TLS


def test_starttls_delivery_is_encrypted_and_verified(tmp_path, certificate, starttls_sink):
    config = tls_config(tmp_path, certificate, starttls_sink, trust=True)
    assert config.email.ca_file == tmp_path / "smtp-ca.pem"
    sender = sender_for(config)
    add_article(config, "New visa rules", "visa text")
    report = sender.deliver()
    assert report.errors == [] and len(report.sent) == 1
    (message,) = starttls_sink.wait_for(1)
    assert message["Subject"] == "[policy-monitor] watch: New visa rules"
    ((version, upgraded),) = starttls_sink.tls
    assert upgraded and version in ("TLSv1.2", "TLSv1.3")
    assert ledger_counts(config) == (1, 1)


def test_a_server_requiring_starttls_refuses_plain_smtp(tmp_path, certificate, starttls_sink):
    # Shows the STARTTLS test above could fail: this server accepts nothing unencrypted.
    config = tls_config(tmp_path, certificate, starttls_sink, trust=True)
    config.email.security = "none"
    mailer = SmtpMailer(config.email)
    with pytest.raises(DeliveryError, match="530"):
        mailer.send(new_message("alerts@example.org", READER, "s", "p", "<p>h</p>"), READER)
    assert starttls_sink.received == []


def test_implicit_tls_delivery_is_verified(tmp_path, certificate, implicit_tls_sink):
    config = tls_config(tmp_path, certificate, implicit_tls_sink, trust=True)
    assert config.email.port == implicit_tls_sink.port
    mailer = SmtpMailer(config.email)
    try:
        for subject in ("first", "second"):  # the second goes over the same connection
            mailer.send(new_message("alerts@example.org", READER, subject, "p", "<p>h</p>"), READER)
    finally:
        mailer.close()
    assert [m["Subject"] for m in implicit_tls_sink.wait_for(2)] == ["first", "second"]
    assert [version in ("TLSv1.2", "TLSv1.3") for version, _ in implicit_tls_sink.tls] == [True, True]
    assert [upgraded for _, upgraded in implicit_tls_sink.tls] == [False, False]


# ---------------------------------------------------------------- an untrusted certificate


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "tls"])
def test_self_signed_certificate_without_ca_file_is_refused(tmp_path, certificate, implicit):
    sink = TlsSink(certificate, implicit=implicit).start()
    try:
        config = tls_config(tmp_path, certificate, sink, trust=False)
        assert config.email.ca_file is None
        sender = sender_for(config)
        add_article(config, "New visa rules", "visa text")

        with pytest.raises(DeliveryError) as failure:
            SmtpMailer(config.email).send(new_message("alerts@example.org", READER, "s", "p", "<p>h</p>"), READER)
        text = str(failure.value)
        assert f"127.0.0.1:{sink.port}: TLS certificate not trusted: self-signed certificate" in text
        assert "[email] ca_file" in text and "\n" not in text
        assert not failure.value.recipient_refused and failure.value.server_down

        report = sender.deliver()
        assert report.sent == [] and len(report.pending) == 1
        (error,) = report.errors
        assert "TLS certificate not trusted" in error
        assert sink.received == []
        assert ledger_counts(config) == (0, 0)
        assert not config.email.outbox.exists()  # never a Maildir fallback

        # Still pending: once the CA is trusted, the same alert goes out, once.
        shutil.copy(certificate / "c.pem", tmp_path / "smtp-ca.pem")
        config.email.ca_file = tmp_path / "smtp-ca.pem"
        assert len(sender.deliver().sent) == 1
        assert sender.deliver().sent == []
        assert [m["Subject"] for m in sink.wait_for(1)] == ["[policy-monitor] watch: New visa rules"]
        assert ledger_counts(config) == (1, 1)
    finally:
        sink.stop()


# ---------------------------------------------------------------- [email] ca_file in config.toml


def test_missing_ca_file_is_a_one_line_config_error(write_config, tmp_path):
    path = write_config('[email]\nhost = "smtp.example.org"\nca_file = "certs/missing.pem"\n')
    with pytest.raises(ConfigError) as failure:
        load_config(path)
    text = str(failure.value)
    assert "[email] ca_file" in text and str(tmp_path / "certs" / "missing.pem") in text
    assert "\n" not in text


def test_ca_file_without_certificates_is_a_one_line_config_error(write_config, tmp_path):
    (tmp_path / "notes.pem").write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(ConfigError) as failure:
        load_config(write_config('[email]\nhost = "smtp.example.org"\nca_file = "notes.pem"\n'))
    assert "[email] ca_file" in str(failure.value) and "\n" not in str(failure.value)


def test_ca_file_resolves_against_the_config_folder(write_config, tmp_path, certificate, monkeypatch):
    shutil.copy(certificate / "c.pem", tmp_path / "ca.pem")
    path = write_config('[email]\nhost = "smtp.example.org"\nca_file = "ca.pem"\n')
    monkeypatch.chdir("/")
    assert load_config(path).email.ca_file == tmp_path / "ca.pem"
    assert load_config(write_config('[email]\nhost = "smtp.example.org"\n')).email.ca_file is None
