"""A MIME splitter that builds the same compat32 Message tree as email's feed parser, faster.

The feed parser reads every line of every body in Python to look for boundaries: for mail with
large attachments that is most of an ingest's parse time. Here header blocks are still read
line by line (they are small), but a multipart body is cut at its boundary lines found by a
substring search, and leaf bodies are sliced, never split into lines.

The rules are those of `email.feedparser.FeedParser._parsegen` (Python 3.11), rule for rule,
including its treatment of broken mail: missing start or close boundaries, runs of boundary
lines, text after a close boundary, digests, delivery-status blocks, header blocks that end
without a blank line. A test compares the trees of both parsers over the whole corpus and
truncated and mutated copies of it. Where this module does not mirror a rule (lone CR line
ends, a structured block inside message/delivery-status, an envelope line at the end of a
header block) it raises `Unsupported` and the caller uses the feed parser itself. Each part of
type message/* records where its enclosed mail lies in the text (`source_of`), so an attached
mail can be hashed and saved as it arrived, without re-serialising.

Unlike the feed parser it bounds its work on hostile mail: header blocks are read up to
HEADER_BLOCK_CAP (fields cut by cap_headers, which the tests also apply to the feed parser's
tree before comparing), and nesting, part count and the caller's budget raise LimitExceeded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email import errors
from email.message import Message
from email.policy import compat32

# The feed parser's own patterns (email/feedparser.py).
_HEADER_LINE = re.compile(r"From |[\041-\071\073-\176]*:|[\t ]")
_BLOCK_END = re.compile(r"\n(?!From |[\041-\071\073-\176]*:|[\t ])")  # before a non-header line
_LONE_CR = re.compile(r"\r(?!\n)")
_BOUNDARY_TAIL = re.compile(r"(--)?[ \t]*(\r\n|\n|\Z)")
_BLANK_LINE = re.compile(r"^\r?\n", re.M)


class Unsupported(Exception):
    """A construct this splitter does not mirror; parse with the feed parser instead."""


class LimitExceeded(Exception):
    """Past a limit no real mail reaches: the caller keeps the raw mail and flags it."""


class TooDeep(LimitExceeded):
    """MIME nesting deeper than MAX_DEPTH: no real mail does that, and both parsers would
    spend time proportional to depth times size on it (or hit the recursion limit)."""


class TooManyParts(LimitExceeded):
    """More than MAX_PARTS parts: each costs a Message object, so memory would grow with a
    hostile mail's count of boundary lines."""


class OverBudget(LimitExceeded):
    """The caller's parse budget ran out (raised by its `check` callback)."""


class HeaderCapDefect(errors.MessageDefect):
    """Header fields cut or left out by the caps; str() says which and why. `dropped`: whole
    fields were not read (an Auto-Submitted or List-Id among them cannot be ruled out)."""

    def __init__(self, why: str, dropped: bool = False) -> None:
        super().__init__(why)
        self.dropped = dropped


MAX_DEPTH = 64
MAX_PARTS = 10_000
# What is read of one header block (the raw mail keeps all of it). MTAs cap headers near
# 100 KB (Postfix header_size_limit); each field is cut on its own first, so one giant field
# cannot push Content-Type out. Content-Type and Content-Disposition get a tighter cap: the
# stdlib's parameter parser (get_boundary, get_filename) is quadratic in their length.
HEADER_BLOCK_CAP = 100 * 1024
FIELD_CAP = 32 * 1024
PARAMS_CAP = 8 * 1024
_PARAM_FIELDS = frozenset({"content-type", "content-disposition"})


def cap_headers(msg: Message) -> None:
    """Apply the header caps to one part's fields, recording a HeaderCapDefect if any bit."""
    kept: list[tuple[str, str]] = []
    total = cut = dropped = 0
    fields = msg._headers  # noqa: SLF001 -- compat32's field list, rewritten once
    for i, (name, value) in enumerate(fields):
        limit = PARAMS_CAP if name.lower() in _PARAM_FIELDS else FIELD_CAP
        if len(value) > limit:
            value = value[:limit]
            cut += 1
        if total + len(name) + len(value) > HEADER_BLOCK_CAP:
            dropped = len(fields) - i  # this one and all after it, as an MTA cuts a header
            break
        total += len(name) + len(value)
        kept.append((name, value))
    if cut or dropped:
        msg._headers = kept  # noqa: SLF001
        why = []
        if cut:
            why.append(f"{cut} header field(s) over {FIELD_CAP // 1024} KB "
                       f"({PARAMS_CAP // 1024} KB for Content-Type/-Disposition) cut")
        if dropped:
            why.append(f"{dropped} header field(s) past {HEADER_BLOCK_CAP // 1024} KB "
                       "of header not read")
        msg.defects.append(HeaderCapDefect("; ".join(why), dropped=bool(dropped)))


def message_from_text(text: str, check: Callable[[], None] | None = None) -> Message:
    """The Message tree of `text` (mail decoded as ASCII with surrogateescape). `check` is
    called once per part and may raise OverBudget."""
    if "\r" in text and _LONE_CR.search(text):
        raise Unsupported("lone CR line ends")
    msg, _last = _region(text, 0, len(text), "text/plain", 0, _Walk(check))
    if msg.get_content_maintype() == "multipart" and not msg.is_multipart():
        msg.defects.append(errors.MultipartInvariantViolationDefect())  # as FeedParser.close
    return msg


class _Walk:
    __slots__ = ("parts", "check")

    def __init__(self, check: Callable[[], None] | None) -> None:
        self.parts = 0
        self.check = check


def _region(text: str, start: int, end: int, default_type: str, depth: int, walk: _Walk
            ) -> tuple[Message, Message]:
    """One message or body part in text[start:end]; also the message the feed parser would
    have created last inside it (the one whose trailing line end a boundary takes)."""
    if depth > MAX_DEPTH:
        raise TooDeep(f"MIME parts nested deeper than {MAX_DEPTH} levels")
    walk.parts += 1
    if walk.parts > MAX_PARTS:
        raise TooManyParts(f"more than {MAX_PARTS:,} MIME parts")
    if walk.check is not None:
        walk.check()
    msg = Message()
    if default_type != "text/plain":
        msg.set_default_type(default_type)
    body = _headers(msg, text, start, end)
    ctype = msg.get_content_type()
    maintype = ctype.split("/")[0]
    if ctype == "message/delivery-status":
        return msg, _delivery_status(msg, text, body, end, walk)
    if maintype == "message":
        inner, last = _region(text, body, end, "text/plain", depth + 1, walk)
        msg.attach(inner)
        msg.mailtix_span = (text, body, end)  # type: ignore[attr-defined]
        return msg, last
    if maintype == "multipart":
        _multipart(msg, ctype, text, body, end, depth, walk)
        return msg, msg
    msg.set_payload(text[body:end])
    return msg, msg


def _headers(msg: Message, text: str, pos: int, end: int) -> int:
    """Read the header block into msg; returns where the body starts."""
    # The block ends at the first line that is not a header line: found by one regex search
    # (a 2 MB block is 70,000 lines), then split at line ends in C.
    stop = pos
    if pos < end and _HEADER_LINE.match(text, pos, end):
        m = _BLOCK_END.search(text, pos, end)
        stop = m.end() if m else end
    chunk = text[pos:stop].split("\n")
    lines = [line + "\n" for line in chunk[:-1]]
    if chunk[-1]:
        lines.append(chunk[-1])
    body = end
    if stop < end:
        if text[stop] in "\r\n":
            nl = text.find("\n", stop, end)
            body = end if nl == -1 else nl + 1  # the blank separator belongs to neither part
        else:
            msg.defects.append(errors.MissingHeaderBodySeparatorDefect())
            body = stop
    _parse_header_lines(msg, lines)
    cap_headers(msg)
    return body


def _delivery_status(msg: Message, text: str, pos: int, end: int, walk: _Walk) -> Message:
    """Blocks of header fields separated by blank lines, each a Message without a body."""
    while True:
        walk.parts += 1
        if walk.parts > MAX_PARTS:
            raise TooManyParts(f"more than {MAX_PARTS:,} MIME parts")
        blank = _BLANK_LINE.search(text, pos, end)
        block_end = blank.start() if blank else end
        block = Message()
        msg.attach(block)
        body = _headers(block, text, pos, block_end)
        if block.get_content_maintype() in ("message", "multipart"):
            raise Unsupported("a structured block in message/delivery-status")
        block.set_payload(text[body:block_end])
        if blank is None or blank.end() == end:
            return block
        pos = blank.end()


def _parse_header_lines(msg: Message, lines: list[str]) -> None:
    # FeedParser._parse_headers, with its one push-back case left to the feed parser, and
    # cap_headers' block cap applied on the way: fields past it are never built.
    name = ""
    value: list[str] = []
    total = start = 0
    for lineno, line in enumerate(lines):
        if line[0] in " \t":
            if not name:
                msg.defects.append(errors.FirstHeaderLineIsContinuationDefect(line))
                continue
            value.append(line)
            continue
        if name:
            total = _set_field(msg, value, total)
            name, value = "", []
            if total < 0:
                _past_block_cap(msg, lines, start)
                return
        if line.startswith("From "):
            if lineno == 0:
                msg.set_unixfrom(_strip_eol(line))
                continue
            if lineno == len(lines) - 1:
                raise Unsupported("envelope line at the end of a header block")
            msg.defects.append(errors.MisplacedEnvelopeHeaderDefect(line))
            continue
        colon = line.find(":")
        if colon == 0:
            msg.defects.append(errors.InvalidHeaderDefect("Missing header name."))
            continue
        name, value, start = line[:colon], [line], lineno
    if name and _set_field(msg, value, total) < 0:
        _past_block_cap(msg, lines, start)


def _set_field(msg: Message, lines: list[str], total: int) -> int:
    """Add one field unless it would take the block past HEADER_BLOCK_CAP (counted as
    cap_headers counts: each field at most its own cap); the new total, or -1."""
    name, value = compat32.header_source_parse(lines)
    limit = PARAMS_CAP if name.lower() in _PARAM_FIELDS else FIELD_CAP
    total += len(name) + min(len(value), limit)
    if total > HEADER_BLOCK_CAP:
        return -1
    msg.set_raw(name, value)
    return total


def _past_block_cap(msg: Message, lines: list[str], first: int) -> None:
    dropped = sum(1 for line in lines[first:] if line[0] not in " \t")
    msg.defects.append(HeaderCapDefect(
        f"{dropped} header line(s) past {HEADER_BLOCK_CAP // 1024} KB of header not read",
        dropped=True))


def _boundary_lines(text: str, pos: int, end: int, boundary: str
                    ) -> list[tuple[int, int, bool]]:
    """(line start, line end with its line end, is a close boundary) of every line in
    text[pos:end] that the feed parser's boundaryre matches (no lone CRs here)."""
    sep = "--" + boundary
    marks: list[tuple[int, int, bool]] = []
    at = pos if text.startswith(sep, pos, end) else -1
    while True:
        if at == -1:  # a plain substring search: much faster than testing every line start
            found = text.find("\n" + sep, pos, end)
            if found == -1:
                return marks
            at = found + 1
        tail = _BOUNDARY_TAIL.match(text, at + len(sep), end)
        if tail:
            marks.append((at, tail.end(), bool(tail.group(1))))
        pos, at = at, -1


def _multipart(msg: Message, ctype: str, text: str, pos: int, end: int, depth: int,
               walk: _Walk) -> None:
    boundary = msg.get_boundary()
    if boundary is None:
        msg.defects.append(errors.NoBoundaryInMultipartDefect())
        msg.set_payload(text[pos:end])
        return
    if str(msg.get("content-transfer-encoding", "8bit")).lower() not in ("7bit", "8bit",
                                                                           "binary"):
        msg.defects.append(errors.InvalidMultipartContentTransferEncodingDefect())
    child_type = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
    marks = _boundary_lines(text, pos, end, boundary)
    if not marks or marks[0][2]:
        # No start boundary: everything before EOF or a close boundary is the payload, and
        # whatever follows a close boundary is dropped (the feed parser's epilogue is '').
        msg.defects.append(errors.StartBoundaryNotFoundDefect())
        msg.set_payload(text[pos:marks[0][0]] if marks else text[pos:end])
        msg.epilogue = ""
        return
    if marks[0][0] > pos:
        msg.preamble = _strip_eol(text[pos:marks[0][0]])
    i = 0
    while True:
        # Past a separator, and past every boundary line right after it (even a close one).
        part_start = marks[i][1]
        i += 1
        while i < len(marks) and marks[i][0] == part_start:
            part_start = marks[i][1]
            i += 1
        part_end = marks[i][0] if i < len(marks) else end
        child, last = _region(text, part_start, part_end, child_type, depth + 1, walk)
        msg.attach(child)
        _take_eol(last)
        node = child
        while (span := getattr(node, "mailtix_span", None)) is not None:
            # Its enclosed mail ends where the part does: before the boundary's line end.
            node.mailtix_span = (text, span[1], span[2] - _eol_length(text, span[1], span[2]))
            node = node.get_payload(0)
        if i == len(marks):
            msg.defects.append(errors.CloseBoundaryNotFoundDefect())
            return
        if marks[i][2]:
            msg.epilogue = text[marks[i][1]:end]
            return


def source_of(part: Message) -> str | None:
    """The text of the mail enclosed in a message/* part, exactly as it arrived, or None when
    the part did not come from this splitter."""
    span = getattr(part, "mailtix_span", None)
    return None if span is None else span[0][span[1]:span[2]]


def _eol_length(text: str, start: int, end: int) -> int:
    if end - start >= 2 and text.startswith("\r\n", end - 2):
        return 2
    return 1 if end > start and text[end - 1] in "\r\n" else 0


def _strip_eol(value: str) -> str:
    # NLCRE_eol.search(value) would scan the whole (maybe megabyte) payload for the \Z.
    if value.endswith("\r\n"):
        return value[:-2]
    return value[:-1] if value.endswith(("\n", "\r")) else value


def _take_eol(last: Message) -> None:
    """RFC 2046: the line end before a boundary belongs to the boundary."""
    if last.get_content_maintype() == "multipart":
        if last.epilogue == "":
            last.epilogue = None
        elif last.epilogue is not None:
            last.epilogue = _strip_eol(last.epilogue)
        return
    payload = last._payload  # noqa: SLF001 -- the feed parser edits it the same way
    if isinstance(payload, str):
        last._payload = _strip_eol(payload)  # noqa: SLF001
