"""Parse raw mail into plain data, once, without ever raising.

Built on `email` with policy.compat32 and our own decoding: compat32 creates no header objects
(faster), and the decoding in `text` falls back instead of raising on the lying charsets,
bogus encodings and broken structures found in real mail.

Hostile mail costs work linear in its size: header blocks are capped (mime.cap_headers),
addresses and encoded words are read by linear scanners (addresses, text), HTML by lxml, and
each message has a CPU budget; a mail past a limit keeps its top header block and is flagged
malformed with the reason (the caller stores its raw bytes whole either way).
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from email import message_from_string
from email.message import Message
from email.policy import compat32
from email.utils import parsedate_to_datetime

from mailtix.mail import mime
from mailtix.mail.addresses import parse_address_list
from mailtix.mail.text import clean, decode_bytes, header_text, html_to_text

MSGID = re.compile(r"<[^<>\s]+>")
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


@dataclass
class Attachment:
    index: int
    filename: str
    content_type: str
    size: int
    sha256: str
    content_id: str = ""
    inline: bool = False
    data: bytes | None = None  # only with parse(raw, payloads=True)


@dataclass
class Parsed:
    message_id: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    from_addr: str = ""
    from_name: str = ""
    to: list[tuple[str, str]] = field(default_factory=list)
    cc: list[tuple[str, str]] = field(default_factory=list)
    reply_to: list[tuple[str, str]] = field(default_factory=list)
    date: str | None = None
    subject: str = ""
    body_text: str = ""
    body_html: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    content_sha256: str = ""
    malformed: bool = False
    parse_error: str = ""
    headers: dict[str, list[str]] = field(default_factory=dict)
    content_type: str = ""
    part_types: set[str] = field(default_factory=set)
    enclosed_ids: list[str] = field(default_factory=list)  # of attached mails / returned headers
    # Fields of the top header block were left unread (hostile size): flags such as
    # Auto-Submitted may be among them, so an automatic answer should not rely on `headers`.
    headers_incomplete: bool = False

    def header(self, name: str) -> str:
        """The first value of a header, cleaned (headers are kept raw: most are never read)."""
        values = self.headers.get(name.lower())
        return clean(values[0], keep_newlines=False) if values else ""


# Headers a delivery adds or rewrites: one mail delivered to two of our mailboxes differs
# only in these, so they are left out of the content hash.
_TRACE = re.compile(
    rb"^(received|delivered-to|x-original-to|return-path|envelope-to|x-envelope-\S+|"
    rb"x-received|authentication-results|arc-\S+|received-spf|x-spam-\S+|x-virus-\S+|"
    rb"x-gm-\S+|x-ms-exchange-\S+|x-forwarded-\S+|x-delivery-\S+|status|x-status|"
    rb"x-keywords|x-uid|content-length|lines)\s*:", re.I)


def content_hash(raw: bytes) -> str:
    """Hash of headers (less trace headers) and body, line endings normalised."""
    data = raw.replace(b"\r\n", b"\n")
    pos = data.find(b"\n\n")
    head, body = (data[:pos], data[pos:]) if pos != -1 else (data, b"")
    kept: list[bytes] = []
    skipping = False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = bool(_TRACE.match(line)) or line.startswith(b"From ")
        if not skipping:
            kept.append(line)
    return hashlib.sha256(b"\n".join(kept) + body).hexdigest()


# CPU seconds one message may take to parse (thread time: a loaded machine does not eat into
# it). Every step is linear in the mail's size, so only a hostile or enormous mail gets near
# it; one that does is stored raw, flagged malformed with the reason, and the run goes on.
PARSE_BUDGET = 10.0


class _Budget:
    __slots__ = ("until", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.until = time.thread_time() + seconds

    def check(self) -> None:
        if time.thread_time() >= self.until:  # >=: a budget of 0 always runs out
            raise mime.OverBudget(f"parse budget of {self.seconds:g} s CPU exceeded; "
                                  "stored raw")


def parse(raw: bytes, payloads: bool = False, budget: float | None = None) -> Parsed:
    """Plain data of one raw mail; never raises. `budget`: CPU seconds, PARSE_BUDGET when
    None (read at each call), math.inf for none."""
    clock = _Budget(PARSE_BUDGET if budget is None else budget)
    out = Parsed(content_sha256=content_hash(raw))
    text = _strip_envelope(raw).decode("ascii", "surrogateescape")
    try:
        msg = _message(text, clock.check)
    except mime.LimitExceeded as exc:  # hostile structure: keep the headers, flag the rest
        out.malformed = True
        out.parse_error = str(exc)[:500]
        _headers_only(text, out)
        return out
    except Exception as exc:  # the stdlib parser rarely fails, but a failure must not lose mail
        out.malformed = out.headers_incomplete = True
        out.parse_error = f"unparseable: {type(exc).__name__}: {exc}"[:500]
        out.subject = _fallback_subject(raw)
        return out
    problems: list[str] = []
    for step in (_headers, _bodies):
        try:
            step(msg, out) if step is _headers else step(msg, out, payloads, clock)
        except mime.OverBudget as exc:
            problems.append(str(exc))
            break
        except Exception as exc:  # keep what was read so far; the raw bytes are stored anyway
            problems.append(f"{step.__name__.strip('_')}: {type(exc).__name__}: {exc}")
    out.headers_incomplete = any(isinstance(d, mime.HeaderCapDefect) and d.dropped
                                 for d in msg.defects)
    defects = _defects(msg)
    if not out.from_addr:
        defects.append("no From address")
    if problems or defects:
        out.malformed = True
        out.parse_error = "; ".join(problems + defects)[:500]
    return out


def _message(text: str, check: Callable[[], None] | None = None) -> Message:
    # `text` is decoded the way email.parser.BytesParser decodes: undecodable bytes survive
    # as surrogates.
    try:
        return mime.message_from_text(text, check)
    except mime.LimitExceeded:
        raise  # stored raw and flagged: the feed parser would only take longer to fail
    except Exception:  # mime.Unsupported, or a case it did not foresee: the feed parser decides
        pass
    # The feed parser reads parameters of Content-Type itself (get_boundary), in time
    # quadratic in their length: no field that long reaches it.
    for m in _PARAM_FIELD.finditer(text):
        if m.end() - m.start() > mime.PARAMS_CAP:
            raise mime.LimitExceeded("a Content-Type or Content-Disposition field over "
                                     f"{mime.PARAMS_CAP // 1024} KB in mail the MIME "
                                     "splitter leaves to the feed parser")
    msg = message_from_string(text, policy=compat32)
    for part in msg.walk():
        mime.cap_headers(part)
    return msg


_PARAM_FIELD = re.compile(r"^content-(?:type|disposition)[ \t]*:[^\r\n]*"
                          r"(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*", re.I | re.M)


def _headers_only(text: str, out: Parsed) -> None:
    """The top header block alone (From, Subject, Message-ID), so a mail refused for its
    structure can still be threaded and answered."""
    blank = re.search(r"\r?\n\r?\n", text[:4 * mime.HEADER_BLOCK_CAP])
    head = text[:blank.end()] if blank else text[:4 * mime.HEADER_BLOCK_CAP]
    try:
        msg = mime.message_from_text(head)
    except Exception:  # lone CRs: read what the stdlib makes of the header block
        try:
            msg = message_from_string(head, policy=compat32)
            mime.cap_headers(msg)
        except Exception:
            out.headers_incomplete = True
            out.subject = _fallback_subject(head.encode("ascii", "surrogateescape"))
            return
    out.headers_incomplete = any(isinstance(d, mime.HeaderCapDefect) and d.dropped
                                 for d in msg.defects)
    try:
        _headers(msg, out)
    except Exception:
        out.subject = out.subject or _fallback_subject(head.encode("ascii", "surrogateescape"))


def _strip_envelope(raw: bytes) -> bytes:
    # An mbox "From " line is not a header; left in, it hides the real header block.
    if raw.startswith(b"From "):
        end = raw.find(b"\n")
        return raw[end + 1:] if end != -1 else b""
    return raw


def _fallback_subject(raw: bytes) -> str:
    m = re.search(rb"^Subject:[ \t]*(.*(?:\r?\n[ \t].*)*)", raw[:65536], re.M | re.I)
    return header_text(decode_bytes(m.group(1))) if m else ""


def _headers(msg: Message, out: Parsed) -> None:
    # raw_items() keeps undecodable 8-bit bytes as surrogates, which text.clean() recovers;
    # msg.get() would hand back a Header that already replaced them.
    raw: dict[str, list[str]] = out.headers
    for name, value in msg.raw_items():
        raw.setdefault(name.lower(), []).append(str(value))

    def first(name: str) -> str | None:
        values = raw.get(name)
        return values[0] if values else None

    out.subject = header_text(first("subject"))
    out.message_id = _first_id(first("message-id"))
    out.in_reply_to = _first_id(first("in-reply-to"))
    out.references = MSGID.findall(clean(first("references") or ""))[-50:]
    senders = _addresses(raw.get("from", [])) or _addresses(raw.get("sender", []))
    if senders:
        out.from_name, out.from_addr = senders[0]
    out.to = _addresses(raw.get("to", []))
    out.cc = _addresses(raw.get("cc", []))
    out.reply_to = _addresses(raw.get("reply-to", []))
    out.date = _date(first("date"))
    out.content_type = msg.get_content_type()


def _first_id(value: object) -> str:
    if value is None:
        return ""
    text = clean(str(value), keep_newlines=False)
    ids = MSGID.findall(text)
    if ids:
        return ids[0]
    text = text.strip()
    return f"<{text}>" if text and " " not in text else ""


def _addresses(values: list[str]) -> list[tuple[str, str]]:
    # Split the raw value first, decode display names after: an encoded word can never add
    # or replace an address.
    out = []
    for value in values:
        for display, addr in parse_address_list(value):
            addr = addr.lower()
            if "@" in addr and len(addr) < 320:
                out.append((display, addr))
    return out


def _date(value: object) -> str | None:
    if value is None:
        return None
    try:
        dt = parsedate_to_datetime(clean(str(value), keep_newlines=False))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC).isoformat(timespec="seconds")
    except (OverflowError, ValueError):
        return None


def _leaves(msg: Message, depth: int = 0):
    """Leaf parts in order; message/rfc822 is a leaf (an attached mail, not our body)."""
    if depth > 50:
        return
    ctype = msg.get_content_type()
    payload = msg.get_payload()
    if msg.is_multipart() and ctype != "message/rfc822" and isinstance(payload, list):
        for part in payload:
            if isinstance(part, Message):
                yield from _leaves(part, depth + 1)
    else:
        yield msg


def _bodies(msg: Message, out: Parsed, payloads: bool = False,
            clock: _Budget | None = None) -> None:
    texts: list[str] = []
    html = ""
    index = 0
    for part in _leaves(msg):
        if clock is not None:
            clock.check()
        ctype = part.get_content_type()
        out.part_types.add(ctype)
        disposition = str(part.get("content-disposition") or "").split(";")[0].strip().lower()
        filename = _filename(part)
        is_body = disposition != "attachment" and not filename
        if is_body and ctype == "text/plain":
            texts.append(_part_text(part))
            continue
        if is_body and ctype == "text/html" and not html:
            html = _part_text(part)
            continue
        if ctype in ("multipart/mixed", "multipart/alternative") and not part.get_payload():
            continue
        if ctype in ("message/rfc822", "text/rfc822-headers", "message/global-headers"):
            out.enclosed_ids += _enclosed_id(part)
        index += 1
        data = _payload(part)
        if not filename:
            filename = _default_name(ctype, index)
        out.attachments.append(Attachment(
            index=index, filename=filename, content_type=ctype, size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content_id=_first_id(part.get("content-id")).strip("<>"),
            inline=disposition == "inline" or bool(part.get("content-id")),
            data=data if payloads else None,
        ))
    out.body_html = html
    text = "\n\n".join(t for t in texts if t.strip())
    if not text.strip() and html:
        if clock is not None:
            clock.check()
        text = html_to_text(html)
    out.body_text = text


def _enclosed_id(part: Message) -> list[str]:
    inner = part.get_payload()
    if isinstance(inner, list) and inner and isinstance(inner[0], Message):
        found = _first_id(inner[0].get("message-id"))
        return [found] if found else []
    text = _part_text(part)
    m = re.search(r"^message-id:\s*(<[^<>\s]+>)", text, re.I | re.M)
    return [m.group(1)] if m else []


def _part_text(part: Message) -> str:
    data = part.get_payload(decode=True)
    if data is None:
        data = str(part.get_payload()).encode("utf-8", "surrogateescape")
    text = decode_bytes(data, part.get_content_charset())
    return clean(text).replace("\r\n", "\n").replace("\r", "\n")


def _payload(part: Message) -> bytes:
    """An attachment's bytes as it would be saved (an attached mail as its own .eml)."""
    source = mime.source_of(part)
    if source is not None:  # the attached mail exactly as it arrived
        return source.encode("ascii", "surrogateescape")
    if part.get_content_type() == "message/rfc822" or part.is_multipart():
        inner = part.get_payload()
        target = inner[0] if isinstance(inner, list) and inner else part
        try:
            return target.as_bytes() if isinstance(target, Message) else b""
        except Exception:  # re-serialising a broken attached mail: keep its text form
            return str(target).encode("utf-8", "surrogateescape")
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _filename(part: Message) -> str:
    # Read from the raw fields: Message.get() turns raw 8-bit bytes into U+FFFD before
    # get_filename() sees them; clean() decodes them as it does for an 8-bit Subject.
    fields = Message()
    for name, value in part.raw_items():
        if name.lower() in ("content-disposition", "content-type"):
            fields[name] = clean(str(value), keep_newlines=False)
    try:
        filename = fields.get_filename()
    except Exception:  # broken RFC 2231 continuations
        filename = None
    if filename is None:
        return ""
    return safe_filename(header_text(filename))


def safe_filename(name: str) -> str:
    name = _UNSAFE_NAME.sub("_", name).strip(" .")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:190] + dot + ext[:9]) if dot and len(ext) < 10 else name[:200]
    return name


def _default_name(ctype: str, index: int) -> str:
    if ctype == "message/rfc822":
        return f"message-{index}.eml"
    ext = mimetypes.guess_extension(ctype) or ".bin"
    return f"part-{index}{ext}"


def _defects(msg: Message) -> list[str]:
    names: list[str] = []
    stack = [msg]
    while stack and len(names) < 10:
        part = stack.pop()
        names.extend(str(d) if isinstance(d, mime.HeaderCapDefect) else type(d).__name__
                     for d in getattr(part, "defects", []))
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend(p for p in payload if isinstance(p, Message))
    return sorted(set(names))
