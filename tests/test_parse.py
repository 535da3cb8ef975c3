"""Pure parsing logic on crafted input (the corpus sweep covers real-world mail)."""

from __future__ import annotations

from mailtix.mail.parse import content_hash, parse, safe_filename
from mailtix.mail.text import decode_bytes, header_text, html_to_text


def test_charset_fallbacks_never_raise():
    assert decode_bytes("Grüße".encode(), "x-bogus-charset") == "Grüße"
    assert decode_bytes("Grüße".encode("cp1252"), "utf-8") == "Grüße"
    assert decode_bytes("Grüße".encode(), "us-ascii") == "Grüße"
    assert decode_bytes("Привет".encode("koi8-r"), "koi8-r") == "Привет"


def test_rfc2047_and_raw_8bit_headers():
    assert header_text("=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?iso-8859-1?q?K=F6ln?=") == \
        "Grüße aus Köln"
    raw = "Subject: Gr\xfc\xdfe\r\nFrom: a@b.c\r\n\r\nx".encode("latin-1")
    assert parse(raw).subject == "Grüße"


def test_html_only_becomes_readable_text():
    raw = (b"From: a@b.c\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           b"<html><head><style>p{}</style></head><body><p>Hello <b>you</b></p>"
           b"<ul><li>one</li><li>two</li></ul><script>x()</script></body></html>")
    p = parse(raw)
    assert p.body_text == "Hello you\n\n- one\n\n- two" or "Hello you" in p.body_text
    assert "x()" not in p.body_text and "p{}" not in p.body_text


def test_attachments_with_rfc2231_names_and_attached_mail():
    raw = (b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
           b"Content-Type: text/plain\r\n\r\nsee attached\r\n--XX\r\n"
           b"Content-Type: application/pdf\r\nContent-Disposition: attachment; "
           b"filename*=utf-8''Rechnung%20M%C3%A4rz%2F..%2Fx.pdf\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--XX\r\n"
           b"Content-Type: message/rfc822\r\n\r\nMessage-ID: <inner@x>\r\nSubject: fwd\r\n\r\n"
           b"inner body\r\n--XX--\r\n")
    p = parse(raw)
    assert p.body_text == "see attached"
    names = [a.filename for a in p.attachments]
    assert names[0] == "Rechnung März_.._x.pdf"
    assert p.attachments[0].size == 5 and p.attachments[0].content_type == "application/pdf"
    assert names[1].endswith(".eml") and p.enclosed_ids == ["<inner@x>"]


def test_garbage_is_flagged_not_raised():
    for raw in (b"", b"\x00\x01\x02", b"From: \r\n\r\n", b"Subject: =?bogus?Q?x?=\r\n\r\n"):
        p = parse(raw)
        assert p.malformed


def test_content_hash_ignores_trace_headers_only():
    a = b"Received: from x\r\nDelivered-To: a@x\r\nSubject: s\r\nFrom: f@x\r\n\r\nbody\r\n"
    b = b"Received: from y\r\n\tby z\r\nDelivered-To: b@x\r\nSubject: s\r\nFrom: f@x\r\n\r\nbody\n"
    c = b"Subject: s\r\nFrom: other@x\r\n\r\nbody\r\n"
    assert content_hash(a) == content_hash(b) != content_hash(c)


def test_safe_filename():
    assert safe_filename("../../etc/passwd") == "_.._etc_passwd"
    assert len(safe_filename("x" * 500 + ".pdf")) <= 200
    assert safe_filename("a\x00b\r\n.txt") == "a_b_.txt"


def test_html_links_kept():
    assert "<https://example.com/x>" in html_to_text('<a href="https://example.com/x">here</a>')


def test_attachment_base64_is_rfc2045_lines():
    import base64
    import os

    from mailtix.mail.compose import _base64_lines

    for n in (0, 1, 56, 57, 58, 4096, 100 * 1024 + 7):
        data = os.urandom(n)
        out = _base64_lines(data)
        lines = out.split(b"\r\n")
        assert lines[-1] == b"" and b"\n" not in out.replace(b"\r\n", b""), n
        assert all(0 < len(line) <= 76 for line in lines[:-1]), n
        assert base64.b64decode(b"".join(lines), validate=True) == data, n
