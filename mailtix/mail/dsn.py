"""Delivery reports read from a returned mail: who failed or is delayed, with which status and
diagnostic, and what identifies the mail that was returned.

RFC 3464 reports (multipart/report; report-type=delivery-status) are read field by field. The
common non-standard forms (qmail, Exim, old Gmail and Exchange texts, a copy of the message
after a marker line) are read from X-Failed-Recipients, the text before the copy, and the
copy's headers. Pure: bytes in, a Report out; nothing here touches the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import message_from_bytes, message_from_string
from email.message import Message
from email.policy import compat32
from email.utils import parsedate_to_datetime

from mailtix.mail.addresses import parse_address_list
from mailtix.mail.text import decode_bytes, header_text

_ADDRESS = re.compile(r"(?<![=\w.!#$%&'*+/?^`{|}~-])[\w.!#$%&'*+/?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"(?<![\d.])([245]\d\d)(?:[ -]|$)")
_MSGID = re.compile(r"^message-id:[ \t]*(<[^<>\s]+>)", re.I | re.M)
# Where a non-standard bounce starts its copy of the returned mail.
_COPY_MARKER = re.compile(
    r"^.*(below this line is a copy of the message|this is a copy of the message|"
    r"original message (?:follows|headers? follows?)|----- ?original message ?-----|"
    r"header of the original message|returned message|rfc822 headers? follows?|"
    r"message headers follow|unsent message below|the original message was:|"
    r"--- ?the header of the original).*$", re.I | re.M)
_DELAY_TEXT = re.compile(
    r"(has been delayed|not yet been delivered|delivery (?:is |has been )?delayed|"
    r"will (?:continue|keep) (?:to )?(?:try|retry|trying)|still trying|temporar(?:y|ily) "
    r"(?:failure|unable|deferred)|warning: could not send|deferred)", re.I)
_PERMANENT_TEXT = re.compile(r"(permanent(?:ly)? (?:error|fail)|given up|could not be "
                             r"delivered|failed permanently|user unknown|does not exist|"
                             r"unrecoverable|undeliverable|not delivered)", re.I)


@dataclass(frozen=True)
class Recipient:
    address: str
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str = ""  # the enhanced status code, e.g. 5.1.1
    diagnostic: str = ""
    remote_mta: str = ""

    @property
    def bounced(self) -> bool:
        return self.action == "failed"


@dataclass
class Report:
    recipients: list[Recipient] = field(default_factory=list)
    original_message_id: str = ""
    original_to: list[str] = field(default_factory=list)
    original_from: str = ""
    original_subject: str = ""
    original_date: str | None = None  # ISO, UTC
    standard: bool = False  # an RFC 3464 delivery-status part was found

    @property
    def failed(self) -> list[Recipient]:
        return [r for r in self.recipients if r.bounced]

    @property
    def delayed(self) -> list[Recipient]:
        return [r for r in self.recipients if r.action == "delayed"]


def parse_report(raw: bytes) -> Report | None:
    """The delivery report in a bounce, or None when the mail says nothing we can use."""
    try:
        msg = message_from_bytes(raw, policy=compat32)
    except Exception:  # a report we cannot read is kept as an ordinary mail
        return None
    report = Report()
    texts: list[str] = []
    for part in _walk(msg):
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            report.standard = True
            report.recipients += _status_fields(part)
        elif ctype in ("message/rfc822", "message/global") and not report.original_message_id:
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                _original(report, inner[0])
        elif ctype in ("text/rfc822-headers", "message/global-headers") and \
                not report.original_message_id:
            _original(report, message_from_string(_text(part).lstrip(), policy=compat32))
        elif ctype == "text/plain" and not part.get_filename():
            texts.append(_text(part))
    body = "\n".join(texts)
    head, copy = _split_copy(body)
    if not report.original_message_id and copy:
        _original(report, message_from_string(copy.lstrip("\r\n"), policy=compat32))
    if not report.original_message_id:
        m = _MSGID.search(copy or body)
        report.original_message_id = m.group(1) if m else ""
    if not report.recipients:
        report.recipients = _from_text(msg, head, report.original_message_id)
    if not report.recipients and not report.original_message_id:
        return None
    return report


def _walk(msg: Message, depth: int = 0):
    if depth > 20:
        return
    yield msg
    payload = msg.get_payload()
    if msg.is_multipart() and msg.get_content_type() not in ("message/rfc822", "message/global"):
        for part in payload if isinstance(payload, list) else []:
            if isinstance(part, Message):
                yield from _walk(part, depth + 1)


def _text(part: Message) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        payload = part.get_payload()
        if isinstance(payload, list):
            return "\n\n".join(p.as_string() if isinstance(p, Message) else str(p)
                               for p in payload)
        data = str(payload).encode("utf-8", "surrogateescape")
    return decode_bytes(data, part.get_content_charset()).replace("\r\n", "\n")


def _status_fields(part: Message) -> list[Recipient]:
    """Per-recipient groups of a delivery-status part (the first group is per-message)."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the stdlib parses the groups as header blocks
        groups = [{k.lower(): header_text(str(v)) for k, v in block.items()}
                  for block in payload if isinstance(block, Message)]
    else:
        groups = _groups(_text(part))
    out = []
    for g in groups:
        address = _typed(g.get("final-recipient") or g.get("original-recipient") or "")
        if not address:
            continue
        action = (g.get("action") or "failed").strip().lower().split()[0]
        status_m = _STATUS.search(g.get("status", ""))
        diagnostic = " ".join(_typed(g.get("diagnostic-code", ""), keep=True).split())
        out.append(Recipient(address.lower(), action, status_m.group(0) if status_m else "",
                             diagnostic[:500], _typed(g.get("remote-mta", ""))))
    return out


def _groups(text: str) -> list[dict[str, str]]:
    groups: list[dict[str, str]] = []
    for block in re.split(r"\n[ \t]*\n", text.strip()):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields:
            groups.append(fields)
    return groups


def _typed(value: str, keep: bool = False) -> str:
    """'rfc822; a@b' -> 'a@b' (the address type is noise for us); keep=True keeps free text."""
    kind, sep, rest = value.partition(";")
    text = rest.strip() if sep else value.strip()
    if keep:
        return text
    return text.strip("<> ")


def _original(report: Report, headers: Message) -> None:
    mid = _MSGID.search(f"message-id: {headers.get('message-id', '')}".replace("\n", " "))
    report.original_message_id = mid.group(1) if mid else ""
    report.original_to = [a.lower() for v in headers.get_all("to", []) + headers.get_all("cc", [])
                          for _n, a in parse_address_list(str(v)) if a and "@" in a]
    sender = parse_address_list(str(headers.get("from", "")))
    report.original_from = sender[0][1].lower() if sender else ""
    report.original_subject = header_text(str(headers.get("subject", "")))
    report.original_date = _date(headers.get("date"))


def _date(value: object) -> str | None:
    if not value:
        return None
    try:
        from datetime import UTC

        dt = parsedate_to_datetime(str(value))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.astimezone(UTC).isoformat(timespec="seconds")
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _split_copy(body: str) -> tuple[str, str]:
    """The explanation and the copy of the returned mail, split at the marker line."""
    m = _COPY_MARKER.search(body)
    if m is None:
        return body, ""
    return body[:m.start()], body[m.end():]


def _from_text(msg: Message, text: str, original_id: str) -> list[Recipient]:
    """Recipients of a non-standard bounce: X-Failed-Recipients, else the addresses its text
    names before the copy, each with the status and SMTP reply found near it."""
    delayed = bool(_DELAY_TEXT.search(text)) and not _PERMANENT_TEXT.search(text)
    action = "delayed" if delayed else "failed"
    # An address standing as a display name ("a@x <b@y>") is the message's own too.
    own = {part.lower() for h in ("from", "to", "sender", "return-path")
           for entry in parse_address_list(str(msg.get(h, ""))) for part in entry}
    named = [a.strip().lower() for a in str(msg.get("x-failed-recipients", "")).split(",")
             if "@" in a]
    if not named:
        # Message-IDs look like addresses; the ones the text quotes are not recipients.
        own |= {m.group(1).strip("<>").lower() for m in _MSGID.finditer(text)}
        own.add(original_id.strip("<>").lower())
        for m in _ADDRESS.finditer(text):
            address = m.group(0).lower().rstrip(".")
            if address not in own and address not in named and \
                    not address.startswith(("mailer-daemon@", "postmaster@")):
                named.append(address)
    return [Recipient(a, action, *_near(text, a)) for a in named[:20]]


def _near(text: str, address: str) -> tuple[str, str]:
    """The status and diagnostic line closest after the address (or anywhere in the text)."""
    pos = text.lower().find(address)
    window = text[pos:pos + 1500] if pos != -1 else text
    diagnostic = ""
    for line in window.splitlines():
        if _SMTP_CODE.search(line) or _STATUS.search(line):
            diagnostic = " ".join(line.split())
            break
    status = _STATUS.search(diagnostic) or _STATUS.search(window)
    code = _SMTP_CODE.search(diagnostic)
    value = status.group(0) if status else (f"{code.group(1)[0]}.0.0" if code else "")
    return value, diagnostic[:500]
