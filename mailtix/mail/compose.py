"""Build outgoing messages. Every header value passes through `safe_header`, so a CR/LF from
a variable, a subject or an argument can never start a header of its own (RFC 5322 2.2)."""

from __future__ import annotations

import base64
import mimetypes
import quopri
import re
import time
import uuid
from dataclasses import dataclass, field
from email.message import MIMEPart
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime, formataddr
from pathlib import Path

from mailtix.config.model import Account, Config
from mailtix.errors import UsageError
from mailtix.mail.addresses import envelope, parse_address_list

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")  # RFC 5322 2.2: printable, no colon
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._+-]+(?: [A-Za-z0-9._+-]+)*")


def safe_header(value: str) -> str:
    return _CONTROL.sub(" ", value).strip()


def message_id(account: Account) -> str:
    domain = account.email.rsplit("@", 1)[-1] or "mailtix.invalid"
    return f"<{int(time.time())}.{uuid.uuid4().hex}@{domain}>"


def addresses(values: list[str]) -> list[str]:
    """Validate and normalise addresses given on the command line or in a manifest. A
    non-ASCII domain is written in IDNA when the local part is ASCII, so the mail stays 7-bit;
    a non-ASCII local part stays UTF-8 (RFC 6532: only SMTPUTF8 can deliver it)."""
    out = []
    for value in values:
        for name, addr in parse_address_list(safe_header(value)):
            if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", addr):
                raise UsageError(f"not an e-mail address: {addr or name!r}")
            addr = envelope(addr)
            if not name:
                out.append(addr)
            elif addr.isascii():
                out.append(formataddr((name, addr)))
            else:  # formataddr and headerregistry refuse a UTF-8 local part
                quoted = name.replace("\\", "\\\\").replace('"', '\\"')
                out.append(f'"{quoted}" <{addr}>')
    return out


def bare(address: str) -> str:
    """The address of one mailbox ("Name" <addr>), lower-cased; "" when there is none."""
    found = parse_address_list(address)
    return found[0][1].lower() if found else ""


@dataclass
class Part:
    filename: str
    content_type: str
    data: bytes


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
    parts: list[Part] = field(default_factory=list)  # attachments made in memory


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
    acct = d.account
    fields = [("From", formataddr((safe_header(acct.display_name), acct.email)))]
    if acct.reply_to:
        fields.append(("Reply-To", safe_header(acct.reply_to)))
    to, cc, bcc = addresses(d.to), addresses(d.cc), addresses(d.bcc)
    fields.append(("To", ", ".join(to)))
    if cc:
        fields.append(("Cc", ", ".join(cc)))
    utf8 = {"To", "Cc"} if not all(a.isascii() for a in (*to, *cc)) else set()
    subject = safe_header(d.subject)
    mid = message_id(acct)
    fields += [("Subject", subject), ("Date", format_datetime(_now())), ("Message-ID", mid)]
    if d.in_reply_to:
        fields.append(("In-Reply-To", safe_header(d.in_reply_to)))
    refs = [safe_header(r) for r in d.references if r]
    if d.in_reply_to and d.in_reply_to not in refs:
        refs.append(safe_header(d.in_reply_to))
    if refs:
        fields.append(("References", " ".join(refs[-20:])))
    ours = {name.lower() for name, _v in fields} | {"mime-version", "content-type",
                                                    "content-transfer-encoding", "x-loop"}
    for name, value in d.headers.items():
        name = safe_header(name)
        if name.lower() in ours or not _FIELD_NAME.fullmatch(name):
            raise UsageError(f"header {name!r} cannot be set here")
        fields.append((name, safe_header(value)))
    auto = d.headers.get("Auto-Submitted", "no").split(";")[0].strip().lower()
    if auto != "no" and acct.email:
        # Our address in X-Loop: a robot that echoes this mail without Auto-Submitted is
        # still recognised when it comes back (mail.autoreply refuses to answer it).
        fields.append(("X-Loop", safe_header(acct.email)))
    sig_text, sig_html = d.signature
    text = d.text.rstrip("\n") + "\n"
    if sig_text:
        text += f"\n-- \n{sig_text.rstrip()}\n"
    if d.html is None:
        body = _text_part(text)
    else:
        part = MIMEPart()
        part.set_content(text)
        html = d.html + (f"\n<div class=\"signature\">{sig_html}</div>" if sig_html else "")
        part.add_alternative(html, subtype="html")
        body = part.as_bytes(policy=SMTP)
    head = b"".join(header_line(k, v, k in utf8) for k, v in fields) + b"MIME-Version: 1.0\r\n"
    raw = head + body if not (d.attachments or d.parts) else _mixed(head, body, d.attachments,
                                                                     d.parts)
    rcpts = [bare(a) for a in (*to, *cc, *bcc)]
    if acct.archive_bcc:
        rcpts.append(envelope(acct.archive_bcc).lower())
    return Composed(raw, mid, list(dict.fromkeys(rcpts)), subject, text)


def header_line(name: str, value: str, utf8: bool = False) -> bytes:
    """One header field with CRLF. A short ASCII value is written as it is; anything else goes
    through email's header classes, which fold it and RFC 2047-encode non-ASCII text. (Parsing
    every value into a header object was two thirds of composing a document mail.) `utf8`:
    an address field with a UTF-8 address, which RFC 2047 cannot encode: written as UTF-8
    (RFC 6532), for delivery with SMTPUTF8."""
    if value.isascii() and len(name) + len(value) < 76:
        return f"{name}: {value}\r\n".encode("ascii")
    if utf8:
        return SMTPUTF8.header_factory(name, value).fold(policy=SMTPUTF8).encode("utf-8")
    return SMTP.header_factory(name, value).fold(policy=SMTP).encode("ascii")


def _base64_lines(data: bytes) -> bytes:
    """Base64 in 76-character CRLF lines (RFC 2045 6.8) from one C-level encode
    (base64.encodebytes calls the encoder once per 57-byte line)."""
    encoded = base64.b64encode(data)
    lines = [encoded[i:i + 76] for i in range(0, len(encoded), 76)]
    return b"\r\n".join(lines) + b"\r\n" if lines else b""


def _text_part(text: str) -> bytes:
    """A text/plain part: 7bit when it is short-lined ASCII, else quoted-printable UTF-8,
    which every server and client takes."""
    head = b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: '
    lines = text.replace("\r\n", "\n").split("\n")
    if text.isascii() and max(map(len, lines)) <= 78:
        return head + b"7bit\r\n\r\n" + "\r\n".join(lines).encode("ascii")
    encoded = quopri.encodestring("\n".join(lines).encode("utf-8")).replace(b"\n", b"\r\n")
    return head + b"quoted-printable\r\n\r\n" + encoded


def _mixed(head: bytes, body: bytes, attachments: list[Path], parts: list[Part]) -> bytes:
    """multipart/mixed written by hand around the body: the email generator writes a base64
    attachment one 76-byte line at a time, which was most of a document batch's own time."""
    boundary = f"=_mailtix_{uuid.uuid4().hex}"
    sep = b"--" + boundary.encode() + b"\r\n"
    out = [head, header_line("Content-Type", f'multipart/mixed; boundary="{boundary}"'),
           b"\r\n", sep, body, b"\r\n"]
    for path in attachments:
        ctype, encoding = mimetypes.guess_type(path.name)
        if ctype is None or encoding is not None:
            ctype = "application/octet-stream"
        out += [sep, header_line("Content-Type", ctype), _disposition(path.name),
                b"Content-Transfer-Encoding: base64\r\n\r\n",
                _base64_lines(path.read_bytes())]
    for part in parts:
        out += [sep, *_part(part)]
    out.append(b"--" + boundary.encode() + b"--\r\n")
    return b"".join(out)


def _part(part: Part) -> list[bytes]:
    """A message/rfc822 part goes unencoded (RFC 2046 5.2.1 allows only 7bit, 8bit or binary
    there); one SMTP could not carry (NUL, lines over 998 bytes) goes as an opaque .eml."""
    data = part.data
    if part.content_type == "message/rfc822":
        lines = data.replace(b"\r\n", b"\n").split(b"\n")
        if b"\0" not in data and max(map(len, lines)) <= 998:
            cte = "7bit" if data.isascii() else "8bit"
            body = b"\r\n".join(lines).rstrip(b"\r\n") + b"\r\n"
            return [header_line("Content-Type", "message/rfc822"), _disposition(part.filename),
                    f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode(), body]
        part = Part(part.filename, "application/octet-stream", data)
    return [header_line("Content-Type", safe_header(part.content_type)),
            _disposition(part.filename), b"Content-Transfer-Encoding: base64\r\n\r\n",
            _base64_lines(data)]


def _disposition(filename: str) -> bytes:
    if _PLAIN_NAME.fullmatch(filename) and len(filename) < 40:
        return f'Content-Disposition: attachment; filename="{filename}"\r\n'.encode("ascii")
    part = MIMEPart()  # RFC 2231 for other names, as email writes them
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return SMTP.fold_binary("Content-Disposition", part["Content-Disposition"])


def _now():
    # The local offset, as a mail client writes it (RFC 5322 allows any; people read it).
    from mailtix.locale import now

    return now()


def sender_for(config: Config, from_: str | None) -> Account:
    """The account to send as: named, or whose address it is, else the default sender."""
    if from_:
        if from_ in config.accounts:
            return _with_smtp(config.accounts[from_])
        wanted = bare(from_)
        for acct in config.accounts.values():
            if acct.email.lower() == wanted and acct.smtp is not None and acct.active:
                return acct
        for acct in sorted(config.accounts.values(), key=lambda a: a.name):
            if wanted in acct.send_as and acct.smtp is not None and acct.active:
                return as_agent(config, acct, wanted)
        raise UsageError(f"no active account with SMTP sends as {from_!r}",
                         hint="an agent's own address must be listed in an account's send_as")
    acct = config.default_sender()
    if acct is None:
        raise UsageError("no account can send: give one an [accounts.NAME.smtp] table")
    return _with_smtp(acct)


def as_agent(config: Config, acct: Account, address: str) -> Account:
    """The account with an agent's own address in From. Answers still come back to the
    account (Reply-To), where they are fetched and threaded onto the ticket."""
    from mailtix.record import replace

    name = next((a.display_name for a in config.agents.values()
                 if a.email.lower() == address), "")
    return replace(acct, email=address, display_name=name or acct.display_name,
                   reply_to=acct.reply_to or acct.email)


def _with_smtp(acct: Account) -> Account:
    if acct.smtp is None:
        raise UsageError(f"account {acct.name!r} has no SMTP settings")
    if not acct.active:
        raise UsageError(f"account {acct.name!r} is disabled")
    return acct
