"""Build outgoing messages. Every header value passes through `safe_header`, so a CR/LF from
a variable, a subject or an argument can never start a header of its own (RFC 5322 2.2)."""

from __future__ import annotations

import base64
import mimetypes
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from email.utils import format_datetime, formataddr, getaddresses
from pathlib import Path

from mailtix.config.model import Account, Config
from mailtix.errors import UsageError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def safe_header(value: str) -> str:
    return _CONTROL.sub(" ", value).strip()


def message_id(account: Account) -> str:
    domain = account.email.rsplit("@", 1)[-1] or "mailtix.invalid"
    return f"<{int(time.time())}.{uuid.uuid4().hex}@{domain}>"


def addresses(values: list[str]) -> list[str]:
    """Validate and normalise addresses given on the command line or in a manifest."""
    out = []
    for name, addr in getaddresses([safe_header(v) for v in values if v.strip()]):
        if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", addr):
            raise UsageError(f"not an e-mail address: {addr or name!r}")
        out.append(formataddr((name, addr)) if name else addr)
    return out


def bare(address: str) -> str:
    return getaddresses([address])[0][1].lower()


@dataclass
class Draft:
    account: Account
    to: list[str]
    subject: str
    text: str
    html: str | None = None
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    attachments: list[Path] = field(default_factory=list)
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    signature: tuple[str, str] = ("", "")


def signature(config: Config, account: Account, project: str = "") -> tuple[str, str]:
    """Account, then project, then [general]: text and HTML, each from the first that has it."""
    proj = config.projects.get(project or account.tickets.project)
    text = account.signature or (proj.signature if proj else "") or config.general.signature
    html = (account.signature_html or (proj.signature_html if proj else "")
            or config.general.signature_html)
    return text, html


@dataclass
class Composed:
    raw: bytes  # CRLF line ends, as SMTP and IMAP APPEND expect
    message_id: str
    rcpts: list[str]  # envelope: To, Cc, Bcc, archive BCC
    subject: str
    text: str


def compose(d: Draft) -> Composed:
    head = EmailMessage()
    acct = d.account
    head["From"] = formataddr((safe_header(acct.display_name), acct.email))
    if acct.reply_to:
        head["Reply-To"] = acct.reply_to
    head["To"] = ", ".join(addresses(d.to))
    if d.cc:
        head["Cc"] = ", ".join(addresses(d.cc))
    head["Subject"] = safe_header(d.subject)
    head["Date"] = format_datetime(_now())
    mid = message_id(acct)
    head["Message-ID"] = mid
    if d.in_reply_to:
        head["In-Reply-To"] = safe_header(d.in_reply_to)
    refs = [safe_header(r) for r in d.references if r]
    if d.in_reply_to and d.in_reply_to not in refs:
        refs.append(safe_header(d.in_reply_to))
    if refs:
        head["References"] = " ".join(refs[-20:])
    for name, value in d.headers.items():
        head[safe_header(name)] = safe_header(value)
    sig_text, sig_html = d.signature
    text = d.text.rstrip("\n") + "\n"
    if sig_text:
        text += f"\n-- \n{sig_text.rstrip()}\n"
    body = head if not d.attachments else MIMEPart()
    body.set_content(text)
    if d.html is not None:
        html = d.html + (f"\n<div class=\"signature\">{sig_html}</div>" if sig_html else "")
        body.add_alternative(html, subtype="html")
    raw = head.as_bytes(policy=SMTP) if body is head else _mixed(head, body, d.attachments)
    rcpts = [bare(a) for a in (*addresses(d.to), *addresses(d.cc), *addresses(d.bcc))]
    if acct.archive_bcc:
        rcpts.append(acct.archive_bcc.lower())
    return Composed(raw, mid, list(dict.fromkeys(rcpts)), str(head["Subject"]), text)


def _base64_lines(data: bytes) -> bytes:
    """Base64 in 76-character CRLF lines (RFC 2045 6.8) from one C-level encode."""
    encoded = base64.b64encode(data)
    lines = [encoded[i:i + 76] for i in range(0, len(encoded), 76)]
    return b"\r\n".join(lines) + b"\r\n" if lines else b""


def _mixed(head: EmailMessage, body: MIMEPart, attachments: list[Path]) -> bytes:
    """multipart/mixed written by hand around the body: the email generator writes a base64
    attachment one 76-byte line at a time, which was most of a document batch's own time."""
    boundary = f"=_mailtix_{uuid.uuid4().hex}"
    head["MIME-Version"] = "1.0"
    head["Content-Type"] = f'multipart/mixed; boundary="{boundary}"'
    sep = b"--" + boundary.encode() + b"\r\n"
    out = [b"".join(SMTP.fold_binary(k, v) for k, v in head.items()), b"\r\n", sep,
           body.as_bytes(policy=SMTP), b"\r\n"]
    for path in attachments:
        ctype, encoding = mimetypes.guess_type(path.name)
        if ctype is None or encoding is not None:
            ctype = "application/octet-stream"
        part = MIMEPart()
        part["Content-Type"] = ctype
        part.add_header("Content-Disposition", "attachment", filename=path.name)
        part["Content-Transfer-Encoding"] = "base64"
        out += [sep, b"".join(SMTP.fold_binary(k, v) for k, v in part.items()), b"\r\n",
                _base64_lines(path.read_bytes())]
    out.append(b"--" + boundary.encode() + b"--\r\n")
    return b"".join(out)


def _now():
    from datetime import datetime

    return datetime.now(UTC)


def sender_for(config: Config, from_: str | None) -> Account:
    """The account to send as: named, or whose address it is, else the default sender."""
    if from_:
        if from_ in config.accounts:
            return _with_smtp(config.accounts[from_])
        wanted = bare(from_)
        for acct in config.accounts.values():
            if acct.email.lower() == wanted and acct.smtp is not None and acct.active:
                return acct
        raise UsageError(f"no active account with SMTP sends as {from_!r}")
    acct = config.default_sender()
    if acct is None:
        raise UsageError("no account can send: give one an [accounts.NAME.smtp] table")
    return _with_smtp(acct)


def _with_smtp(acct: Account) -> Account:
    if acct.smtp is None:
        raise UsageError(f"account {acct.name!r} has no SMTP settings")
    if not acct.active:
        raise UsageError(f"account {acct.name!r} is disabled")
    return acct
