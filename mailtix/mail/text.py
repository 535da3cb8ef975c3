"""Turning bytes and header values from real-world mail into clean text, never raising."""

from __future__ import annotations

import binascii
import codecs
import re
from html.parser import HTMLParser

_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile("[\udc80-\udcff]")  # raw 8-bit bytes kept by surrogateescape
_CHARSET_ALIASES = {
    "unicode-1-1-utf-7": "utf-7", "x-unknown": "", "unknown-8bit": "", "default": "",
    "ks_c_5601-1987": "cp949", "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8", "windows-874": "cp874", "x-mac-roman": "mac-roman",
    "ansi_x3.4-1968": "ascii", "us-ascii": "ascii", "latin-1": "latin-1",
}


def charset_codec(charset: str | None) -> str | None:
    """A Python codec for a declared charset, or None when it is unknown or bogus."""
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return None


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Declared charset, then UTF-8, then cp1252 with replacement: never an exception."""
    codec = charset_codec(charset)
    if codec == "ascii":
        codec = None  # mail declared us-ascii often carries 8-bit text; let UTF-8 try first
    for candidate in (codec, "utf-8"):
        if candidate:
            try:
                return data.decode(candidate)
            except (UnicodeDecodeError, LookupError):
                pass
    return data.decode("cp1252", errors="replace")


def clean(text: str, keep_newlines: bool = True) -> str:
    """Undo surrogate-escaped raw bytes, drop NULs and control characters."""
    if _SURROGATE.search(text):
        raw = text.encode("utf-8", errors="surrogateescape")
        text = decode_bytes(raw)
    if not keep_newlines:
        text = text.replace("\r", " ").replace("\n", " ")
    return _CONTROL.sub("", text)


# An RFC 2047 encoded word. The encoded text may hold a few stray '?' (as the stdlib allows,
# and some mailers write), but a bounded few: an unbounded run would let every "=?" of a
# hostile header scan to its end, the quadratic cost of email.header.decode_header.
_ENCODED_WORD = re.compile(r"=\?([^?]*?)\?([qQbB])\?([^?]*(?:\?(?!=)[^?]*){0,3})\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])|\r?\n\Z")


def header_text(value: object) -> str:
    """Decode an RFC 2047 header value to one clean line, in time linear in its length."""
    if value is None:
        return ""
    raw = str(value)
    if "=?" in raw:
        raw = decode_words(raw)
    else:
        raw = clean(raw, keep_newlines=False)
    return _SPACE.sub(" ", raw).strip()


def decode_words(raw: str) -> str:
    """Encoded words decoded as email.header.make_header(decode_header(...)) would, without
    its quadratic list and bytes handling and without raising: a word that does not decode
    stays as written, an unknown charset falls back as body text does. Text between words
    may carry raw 8-bit bytes as surrogates; each piece is cleaned on its own, so a latin-1
    byte outside cannot turn the UTF-8 of a decoded word into mojibake."""
    raw = _FOLD.sub("", raw)
    # (text, None) for plain text, ([bytes of adjacent words], charset) for decoded words
    pieces: list[tuple[str, None] | tuple[list[bytes], str]] = []
    pos = 0
    for m in _ENCODED_WORD.finditer(raw):
        data = _decode_word(m.group(2), m.group(3))
        if data is None:
            continue  # stays in the plain text around it
        between = raw[pos:m.start()]
        charset = m.group(1).split("*", 1)[0].lower()
        last = pieces[-1] if pieces else None
        if between and not (between.isspace() and last is not None and last[1] is not None):
            pieces.append((between, None))  # whitespace between two words is dropped
        elif last is not None and last[1] == charset and isinstance(last[0], list):
            last[0].append(data)  # one character may span two words: decode them together
            pos = m.end()
            continue
        pieces.append(([data], charset))
        pos = m.end()
    if pos < len(raw):
        pieces.append((raw[pos:], None))
    out: list[str] = []
    prev_word = None
    for value, charset in pieces:
        if charset is None:
            text = clean(value, keep_newlines=False)
            if prev_word and text[:1] and not text[:1].isspace():
                out.append(" ")
            prev_word = False
        else:
            text = _CONTROL.sub("", decode_bytes(b"".join(value), charset))
            if prev_word is False and out and not out[-1][-1:].isspace():
                out.append(" ")
            prev_word = True
        out.append(text)
    return "".join(out)


def _decode_word(encoding: str, text: str) -> bytes | None:
    try:
        if encoding in "qQ":
            return binascii.a2b_qp(text.encode("ascii", "surrogateescape"), header=True)
        data = text.encode("ascii", "surrogateescape")
        missing = -len(data.rstrip(b"=")) % 4
        return binascii.a2b_base64(data.rstrip(b"=") + b"=" * missing)
    except (binascii.Error, ValueError):
        return None


class _HTMLText(HTMLParser):
    BLOCK = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table",
             "blockquote", "pre", "hr", "ul", "ol", "section", "article", "header", "footer"}
    SKIP = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.href: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        elif tag in self.BLOCK:
            self.out.append("\n")
        if tag == "li":
            self.out.append("- ")
        if tag == "a":
            self.href.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skip:
            self.skip -= 1
        elif tag in self.BLOCK:
            self.out.append("\n")
        if tag == "a" and self.href:
            href = self.href.pop()
            if href.startswith(("http://", "https://")) and href not in "".join(self.out[-3:]):
                self.out.append(f" <{href}>")

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def html_to_text(html: str) -> str:
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser is lenient, but never let markup stop an import
        return re.sub(r"<[^>]+>", " ", html)
    text = "".join(parser.out).replace("\xa0", " ")
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
