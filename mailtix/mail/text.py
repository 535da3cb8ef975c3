"""Turning bytes and header values from real-world mail into clean text, never raising."""

from __future__ import annotations

import codecs
import re
from email.header import decode_header, make_header
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


def header_text(value: object) -> str:
    """Decode an RFC 2047 header value to one clean line."""
    if value is None:
        return ""
    raw = str(value)
    if "=?" not in raw:  # no encoded words: decode_header would hand the value back as is
        return _SPACE.sub(" ", clean(raw, keep_newlines=False)).strip()
    try:
        text = str(make_header(decode_header(raw)))
    except Exception:  # bogus charsets and broken encoded words: decode piece by piece
        pieces = []
        try:
            for chunk, charset in decode_header(raw):
                pieces.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
            text = "".join(pieces)
        except Exception:  # last resort: the raw value
            text = raw
    text = clean(text, keep_newlines=False)
    return _SPACE.sub(" ", text).strip()


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
