"""Turning bytes and header values from real-world mail into clean text, never raising."""

from __future__ import annotations

import binascii
import codecs
import re
from html import unescape

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
    """Declared charset, then UTF-8, then cp1252 with replacement: never an exception.
    UTF-8 with a few broken sequences (a name cut inside a character, one stray byte) stays
    UTF-8 with U+FFFD there, rather than turning every other character into cp1252 mojibake."""
    codec = charset_codec(charset)
    if codec == "ascii":
        codec = None  # mail declared us-ascii often carries 8-bit text; let UTF-8 try first
    for candidate in (codec, "utf-8"):
        if candidate:
            try:
                return data.decode(candidate)
            except (UnicodeDecodeError, LookupError):
                pass
    text = data.decode("utf-8", errors="replace")
    # Latin-1/cp1252 text breaks UTF-8 at nearly every 8-bit byte and forms almost no valid
    # multi-byte character; real UTF-8 is broken at a few places between many valid ones.
    bad = text.count("\ufffd")
    valid = len(text) - len(text.encode("ascii", "ignore")) - bad
    if valid >= 2 * bad:
        return text
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


_BLOCK = frozenset({
    "p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote",
    "pre", "hr", "ul", "ol", "section", "article", "header", "footer"})
_SKIP = frozenset({"script", "style", "head", "title"})
# Text after </body> or </html> (list footers appended by a mailing list) belongs to the body,
# as in a browser; libxml2 would drop it.
_DOCUMENT_END = re.compile(r"</(?:body|html)\s*>", re.I)
_TAG = re.compile(r"<[^<>]*>")


def html_to_text(html: str) -> str:
    """Readable text of an HTML body, in time linear in its length.

    lxml (libxml2's HTML parser, C) builds the tree: the stdlib's HTMLParser needs time
    quadratic in the length of an unclosed tag ('<a' * 40,000: 7 s). selectolax (lexbor) was
    measured too: quadratic in nesting depth ('<div>' * 200,000: 8 minutes). A document that
    libxml2 gives up on (nesting deeper than 2,048) has its tags stripped instead.
    """
    from lxml import etree  # imported here: only HTML-only mail pays for it

    # NUL would come back as U+FFFD; encoding declarations in the text are not to be trusted
    # (the part's charset was applied already), so lxml gets UTF-8 bytes and is told so.
    data = _DOCUMENT_END.sub("", html).replace("\x00", "").encode("utf-8", "replace")
    parser = etree.HTMLParser(encoding="utf-8", huge_tree=True, remove_comments=True,
                              remove_pis=True, no_network=True)
    try:
        root = etree.fromstring(data, parser)
    except (etree.LxmlError, ValueError):  # "Document is empty" and the like
        root = None
    if root is None or any(e.level == etree.ErrorLevels.FATAL for e in parser.error_log):
        return _tidy(unescape(_TAG.sub(" ", html)))
    out: list[str] = []
    skip = 0
    hrefs: list[str] = []
    for event, el in etree.iterwalk(root, events=("start", "end")):
        tag = el.tag
        if not isinstance(tag, str):  # an entity or a comment lxml kept: only its tail counts
            if event == "end" and not skip and el.tail:
                out.append(el.tail)
            continue
        tag = tag.lower()
        if event == "start":
            if tag in _SKIP:
                skip += 1
            elif tag in _BLOCK:
                out.append("\n")
            if tag == "li":
                out.append("- ")
            elif tag == "a":
                hrefs.append(el.get("href") or "")
            if not skip and el.text:
                out.append(el.text)
            continue
        if tag in _SKIP and skip:
            skip -= 1
        elif tag in _BLOCK:
            out.append("\n")
        if tag == "a" and hrefs:
            href = hrefs.pop()
            if href.startswith(("http://", "https://")) and href not in "".join(out[-3:]):
                out.append(f" <{href}>")
        if not skip and el.tail:
            out.append(el.tail)
    return _tidy("".join(out))


def _tidy(text: str) -> str:
    text = _CONTROL.sub("", text.replace("\xa0", " "))
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
