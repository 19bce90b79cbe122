"""Sending mail: SMTP (STARTTLS, implicit TLS or plain) or, when `[email] host` is empty, a Maildir.

TLS always verifies the server's certificate and host name, against
`[email] ca_file` when set, else the system's CAs.
The Maildir is chosen by configuration only, never as a fallback: a failing
SMTP server raises `DeliveryError` and the caller keeps the alert pending.
Header values built from untrusted text go through `clean_header`, so
nothing in an article's title can add or change a header; both mailers refuse
a message whose headers still hold a control character (`check_headers`).
"""

from __future__ import annotations

import mailbox
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol

from monitor.config import ConfigError, EmailConfig

# Line breaks of every kind (CR, LF, VT, FF, NEL, U+2028/9) and other controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s{2,}")
# The start of an RFC 2047 encoded word: the email library decodes those when a
# header is assigned, so `=?utf-8?q?=0D=0ABcc...?=` would turn into a line break.
_ENCODED_WORD = re.compile(r"=\?")


class DeliveryError(Exception):
    """A message was not accepted; nothing may be recorded as sent. The message is one line.

    `server_down`: the server could not be reached, or failed before taking any
    message (connection, TLS, login, a 4xx greeting): every message would fail
    alike, so the rest of a batch waits for the next try. Otherwise only this
    message failed and the others may go on: `recipient_refused` when the
    server refused the recipient, and `permanent` for a 5xx answer to RCPT or
    DATA (retrying the same message is unlikely to help).
    """

    def __init__(self, message: str, *, recipient_refused: bool = False, permanent: bool = False,
                 server_down: bool | None = None) -> None:
        super().__init__(message)
        self.recipient_refused = recipient_refused
        self.permanent = permanent
        self.server_down = not (recipient_refused or permanent) if server_down is None else server_down


def clean_header(value: str, limit: int | None = None) -> str:
    """`value` fit for a header: control characters and line breaks become spaces; shortened with '…'.

    `=?` gets a zero-width space between its two characters, so that no part of
    `value` is read as an RFC 2047 encoded word (which could decode to a line break).
    """
    value = _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()
    value = _ENCODED_WORD.sub("=\u200b?", value)
    if limit is not None and len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    return value


def new_message(sender: str, recipient: str, subject: str, plain: str, html: str) -> EmailMessage:
    """A multipart/alternative message (plain text, then HTML) with clean headers."""
    message = EmailMessage()
    message["From"] = clean_header(sender)
    message["To"] = clean_header(recipient)
    message["Subject"] = clean_header(subject)
    message["Date"] = formatdate(usegmt=True)
    domain = sender.rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=clean_header(domain).replace(" ", "") or "localhost")
    # RFC 3834: tells auto-responders not to answer.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(plain)
    message.add_alternative(html, subtype="html")
    return message


def check_headers(message: EmailMessage) -> None:
    """Raise DeliveryError (permanent) if a header value of `message` holds a control character or line break.

    The last gate before sending: whatever slipped past `clean_header` cannot add a header.
    """
    for part in message.walk():
        for name, value in part.items():
            if _CONTROL.search(str(value)):
                raise DeliveryError(f"refused to send: the {name} header holds a control character",
                                    permanent=True)


def check_email_config(email: EmailConfig) -> None:
    """Raise ConfigError (one line) if `[email]` cannot log in to its SMTP server as configured.

    Checks what can be known before connecting: a `username` whose `password_env`
    variable is not set (or empty), and a `username` without `password_env`.
    Nothing to check when `host` is empty (the Maildir is used), nor without a
    `username`: no login happens then, so the password is never read.
    """
    if not email.host or not email.username:
        return
    if email.password_env and not email.password():
        raise ConfigError(f"[email] password_env: the environment variable {email.password_env} is not set"
                          " (it holds the SMTP password)")
    if email.username and not email.password_env:
        raise ConfigError(f"[email] username {email.username!r} is set but password_env is not: set it to the"
                          " name of the environment variable holding the SMTP password")


class Mailer(Protocol):
    """Somewhere messages go; `send` returns only once the message was accepted."""

    def send(self, message: EmailMessage, recipient: str) -> None: ...

    def close(self) -> None: ...


class MaildirMailer:
    """Writes each message into the Maildir at `path` (created if needed)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._box: mailbox.Maildir | None = None

    def send(self, message: EmailMessage, recipient: str) -> None:
        check_headers(message)
        try:
            if self._box is None:
                self._box = mailbox.Maildir(self.path, create=True)
            self._box.add(message)
        except OSError as exc:
            raise DeliveryError(f"cannot write to the Maildir {self.path}: {exc}") from None

    def close(self) -> None:
        self._box = None

    def __str__(self) -> str:
        return f"Maildir {self.path}"


class SmtpMailer:
    """Sends through one SMTP connection, opened on first use and reopened after a failure."""

    def __init__(self, config: EmailConfig) -> None:
        self.config = config
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        context = tls_context(config)
        if config.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout,
                                                  context=context)
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        try:
            smtp.ehlo()
            if config.security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if config.username:
                smtp.login(config.username, config.password() or "")
        except BaseException:
            _quietly_close(smtp)
            raise
        return smtp

    def send(self, message: EmailMessage, recipient: str) -> None:
        """Hand `message` to the server for `recipient`; raise DeliveryError unless it was accepted."""
        check_headers(message)
        where = f"SMTP server {self.config.host}:{self.config.port}"
        try:
            if self._smtp is None:
                self._smtp = self._connect()
        except ssl.SSLCertVerificationError as exc:
            hint = "" if self.config.ca_file else "; set [email] ca_file if the server uses a private CA"
            raise DeliveryError(f"{where}: TLS certificate not trusted: {exc.verify_message}{hint}") from None
        except smtplib.SMTPResponseException as exc:  # the greeting, EHLO, STARTTLS or login
            raise DeliveryError(f"{where} answered {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except (smtplib.SMTPException, OSError) as exc:  # OSError covers timeouts and TLS errors
            raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}".rstrip(": ")) from None
        try:
            refused = self._smtp.send_message(message, from_addr=self.config.sender, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            self.close()
            code, reason = next(iter(exc.recipients.values()), (0, b""))
            raise DeliveryError(f"{where} refused {recipient}: {code} {_text(reason)}",
                                recipient_refused=True, permanent=code >= 500, server_down=code == 421) from None
        except smtplib.SMTPDataError as exc:
            self.close()
            # 421 closes the session: the server is going away, not judging this message.
            raise DeliveryError(f"{where} answered {exc.smtp_code} {_text(exc.smtp_error)}",
                                permanent=exc.smtp_code >= 500, server_down=exc.smtp_code == 421) from None
        except smtplib.SMTPResponseException as exc:  # MAIL FROM refused: every message would be
            self.close()
            raise DeliveryError(f"{where} answered {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}".rstrip(": ")) from None
        if refused:
            raise DeliveryError(f"{where} refused {recipient}: {refused}", recipient_refused=True)

    def close(self) -> None:
        if self._smtp is not None:
            _quietly_close(self._smtp)
            self._smtp = None

    def __str__(self) -> str:
        return f"SMTP {self.config.host}:{self.config.port} ({self.config.security})"


def tls_context(config: EmailConfig) -> ssl.SSLContext:
    """A verifying TLS context: the server's certificate must chain to `ca_file`, else to the system's CAs."""
    return ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)


def mailer_for(config: EmailConfig) -> Mailer:
    """The SMTP mailer when `[email] host` is set, else the Maildir at `outbox`."""
    if not config.host:
        return MaildirMailer(config.outbox)
    check_email_config(config)
    return SmtpMailer(config)


def _quietly_close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        try:
            smtp.close()
        except OSError:
            pass


def _text(reason: bytes | str) -> str:
    text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    return clean_header(text)
