"""Address lists (From, To, Cc, Reply-To, a manifest's `to`) split by RFC 5322's quoting rules,
with display names decoded only after the addresses are known.

`email.utils.getaddresses` cannot serve here: callers have to decode encoded words before it
sees the value, so `=?utf-8?q?victim=40example.org?= <real@sender.example>` turns into a
second address; its result for `"Müller, Jürgen" <j@x>` differs between 3.11 patch releases
(the CVE-2023-27043 change); and it needs minutes for 100 KB of '('. This scanner visits each
character once, never raises, and keeps going on broken input the way mail clients do.
"""

from __future__ import annotations

import re

from mailtix.mail.text import clean, header_text

_QUOTED = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"?', re.S)
_COMMENT_STOP = re.compile(r"[()\\]")
_ANGLE = re.compile(r'<((?:[^>"\\]|\\.|"[^"\\]*(?:\\.[^"\\]*)*"?)*)>?', re.S)
_ATOM = re.compile(r'[^\s"(<,;:]+')
_SPACE = re.compile(r"\s+")
_UNESCAPE = re.compile(r"\\(.)", re.S)


class _Entry:
    """One mailbox being read: its words, angle address and comments."""

    __slots__ = ("words", "angle", "comments", "gap", "start", "end")

    def __init__(self, start: int = 0) -> None:
        self.start = self.end = start  # its span in the text, for split_address_list()
        self.words: list[tuple[str, str]] = []  # (source text, text) of atoms and quoted strings
        self.angle: str | None = None
        self.comments: list[str] = []
        self.gap = False  # whitespace or a comment since the last word

    def add(self, source: str, text: str) -> None:
        if self.words and not self.gap:  # adjacent: one word (`"john doe"@example.org`)
            prev_source, prev_text = self.words[-1]
            self.words[-1] = (prev_source + source, prev_text + text)
        else:
            self.words.append((source, text))
        self.gap = False

    def empty(self) -> bool:
        return not self.words and self.angle is None


def parse_address_list(text: str) -> list[tuple[str, str]]:
    """[(display name, address)] of an address-list header value or a typed list.

    `text` is the raw value: encoded words are decoded in display names only, after the list
    is split, so an encoded '<', ',' or '@' can never add or replace an address. Undecodable
    8-bit bytes (surrogate-escaped, as `email` keeps them) are decoded like 8-bit subjects.
    An entry without a recognisable address comes back as ("", its text) for the caller to
    report; addresses keep their case. Group names are dropped, their members kept; an
    unquoted "Last, First <addr>" is read as one person, as mail clients show it.
    """
    return [(name, addr) for name, addr, _source in _scan(text)]


def split_address_list(text: str) -> list[str]:
    """The list's entries as written (quotes, comments and all), split where
    parse_address_list() splits it: for a list that is kept as text and parsed again later."""
    return [source for _name, _addr, source in _scan(text)]


def _scan(text: str) -> list[tuple[str, str, str]]:
    entries: list[tuple[_Entry, str]] = []  # (entry, separator that ended it)
    entry = _Entry()
    in_group = False
    pos, end = 0, len(text)
    while pos < end:
        c = text[pos]
        if c == '"':
            m = _QUOTED.match(text, pos)
            entry.add(m.group(0), _UNESCAPE.sub(r"\1", m.group(1)))
            pos = m.end()
        elif c == "(":
            pos = _comment(text, pos, entry)
            entry.gap = True
        elif c == "<":
            m = _ANGLE.match(text, pos)
            if entry.angle is None:
                entry.angle = m.group(1)
            pos = m.end()
            entry.gap = True
        elif c == ",":
            entry.end = pos
            entries.append((entry, ","))
            entry, pos = _Entry(pos + 1), pos + 1
        elif c == ";":  # ends a group; outside one, a separator (as Outlook users type lists)
            entry.end = pos
            entries.append((entry, ";"))
            entry, pos, in_group = _Entry(pos + 1), pos + 1, False
        elif c == ":" and entry.angle is None and not in_group:
            # the group's name is not a person
            entry, pos, in_group = _Entry(pos + 1), pos + 1, True
        elif c.isspace() or c == ":":
            pos += 1
            entry.gap = True
        else:
            m = _ATOM.match(text, pos)
            if m is None:  # a stray ':' inside a group
                pos += 1
                continue
            entry.add(m.group(0), m.group(0))
            pos = m.end()
    entry.end = end
    entries.append((entry, ""))
    return _finish(text, entries)


def _comment(text: str, pos: int, entry: _Entry) -> int:
    """Skip a (possibly nested) comment starting at pos; remember its text."""
    depth, start, pos = 0, pos + 1, pos
    while True:
        m = _COMMENT_STOP.search(text, pos)
        if m is None:
            entry.comments.append(text[start:])
            return len(text)
        ch = m.group(0)
        if ch == "\\":
            pos = m.end() + 1
            continue
        depth += 1 if ch == "(" else -1
        pos = m.end()
        if depth == 0:
            entry.comments.append(text[start:pos - 1])
            return pos


def _finish(text: str, entries: list[tuple[_Entry, str]]) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    carry = ""  # "Müller" of an unquoted "Müller, Jürgen <j@x>"
    carry_start = 0
    for i, (entry, sep) in enumerate(entries):
        if entry.empty():
            continue
        source = text[entry.start:entry.end].strip()
        if entry.angle is not None:
            addr = _route_stripped(entry.angle)
            name = " ".join(t for _, t in entry.words)
            if carry:
                name = f"{carry}, {name}" if name else carry
                source = text[carry_start:entry.end].strip()
                carry = ""
        else:
            at = [k for k, (source, _) in enumerate(entry.words) if "@" in _unquoted(source)]
            if not at:
                phrase = " ".join(t for _, t in entry.words)
                following = entries[i + 1][0] if i + 1 < len(entries) else None
                if (sep == "," and following is not None and following.angle is not None
                        and not following.empty()):
                    if not carry:
                        carry_start = entry.start
                    carry = f"{carry}, {phrase}" if carry else phrase
                    continue
                if carry:
                    out.append(("", _one_line(carry), text[carry_start:entry.start].strip(" ,;")))
                    carry = ""
                out.append(("", _one_line(" ".join(s for s, _ in entry.words)), source))
                continue
            k = at[-1]
            addr = entry.words[k][0]
            name = " ".join(t for j, (_, t) in enumerate(entry.words) if j != k)
        if not name and entry.comments:
            name = entry.comments[0]
        out.append((_display(name), _one_line(addr), source))
    if carry:
        out.append(("", _one_line(carry), text[carry_start:].strip(" ,;")))
    return out


def _unquoted(source: str) -> str:
    return _QUOTED.sub("", source)


def _route_stripped(addr: str) -> str:
    # <@relay.example,@other.example:user@example.org>: the route is obsolete syntax.
    addr = addr.strip()
    if addr.startswith("@") and ":" in addr:
        addr = addr.split(":", 1)[1]
    return _SPACE.sub("", addr)


def _one_line(value: str) -> str:
    return _SPACE.sub(" ", clean(value, keep_newlines=False)).strip()


def _display(name: str) -> str:
    return header_text(name) if name else ""


def ascii_address(addr: str) -> str | None:
    """The address as 7-bit SMTP and headers take it: the domain in IDNA A-labels (RFC 5891,
    with UTS 46 mapping, as browsers and MTAs do). None when the local part is not ASCII or
    the domain is no valid IDN: only SMTPUTF8 (RFC 6531) can carry such an address."""
    if addr.isascii():
        return addr
    local, at, domain = addr.rpartition("@")
    if not at or not local.isascii():
        return None
    import idna  # only for the rare non-ASCII domain

    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except idna.IDNAError:
        return None


def envelope(addr: str) -> str:
    """The address as it goes out: IDNA where that makes it ASCII, else as it is (UTF-8)."""
    return ascii_address(addr) or addr
