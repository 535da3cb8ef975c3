"""Hostile mail is parsed in bounded work, stored raw, flagged with the reason (issue 16
item 1), and 8-bit parameters decode like 8-bit subjects (issue 14 item 7).

No timing assertions: the sizes are chosen so that the quadratic code paths they guard
against would need minutes to hours, while the linear ones take well under a second."""

from __future__ import annotations

import math

import pytest

from mailtix.mail import mime
from mailtix.mail.parse import parse
from mailtix.mail.text import decode_bytes

HEAD = b"From: Sender <sender@example.org>\r\nSubject: hostile\r\nMessage-ID: <h@example.org>\r\n"


def test_two_megabytes_of_content_type_parameters():
    """22 s before (email's _parseparam is quadratic); the field is cut at 8 KB."""
    raw = (HEAD + b"Content-Type: text/plain; charset=utf-8" + b"; a=b" * 400_000
           + b"\r\n\r\nbody text\r\n")
    p = parse(raw)
    assert p.from_addr == "sender@example.org" and p.subject == "hostile"
    assert p.body_text.strip() == "body text"
    assert p.malformed and "Content-Type" in p.parse_error


def test_hundred_thousand_bogus_encoded_words():
    """21 s before (decode_header's list pops and bytes concatenation)."""
    for word in (b"=?x-bogus?q?a?= ", b"=?utf-8?q?a?=", b"=?utf-8?b?!!!?= "):
        raw = (b"From: a@example.org\r\nSubject: " + word * 100_000 + b"\r\n\r\nbody\r\n")
        p = parse(raw)
        assert p.from_addr == "a@example.org" and p.body_text.strip() == "body"
        assert len(p.subject) <= mime.FIELD_CAP
        assert p.malformed and "cut" in p.parse_error


def test_a_large_header_block_is_capped_and_later_fields_survive_a_giant_one():
    giant = b"X-Junk: " + b"x" * 70 + b"".join(b"\r\n " + b"y" * 70 for _ in range(30_000))
    raw = (HEAD + giant + b"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           b"Gr\xc3\xbc\xc3\x9fe\r\n")
    p = parse(raw)
    assert p.content_type == "text/plain" and p.body_text.strip() == "Grüße"
    assert p.malformed and "cut" in p.parse_error
    many = HEAD + b"".join(b"X-H%d: v\r\n" % i for i in range(200_000)) + b"\r\nbody\r\n"
    p = parse(many)
    assert p.subject == "hostile" and p.body_text.strip() == "body"
    assert "not read" in p.parse_error and p.headers_incomplete
    assert not parse(HEAD + b"\r\nbody\r\n").headers_incomplete
    assert sum(len(v) for values in p.headers.values() for v in values) <= mime.HEADER_BLOCK_CAP


def test_too_many_parts_keeps_the_headers():
    raw = (HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           + b"--b\r\n\r\nx\r\n" * (mime.MAX_PARTS + 10) + b"--b--\r\n")
    p = parse(raw)
    assert p.malformed and "MIME parts" in p.parse_error
    assert (p.from_addr, p.subject, p.message_id) == ("sender@example.org", "hostile",
                                                      "<h@example.org>")


def test_deep_nesting_keeps_the_headers():
    raw = HEAD + b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n"
                          % (i, i) for i in range(200)) + b"\r\nx\r\n"
    p = parse(raw)
    assert p.malformed and "nested deeper" in p.parse_error
    assert p.from_addr == "sender@example.org" and p.subject == "hostile"


def test_over_the_budget_is_flagged_with_the_reason():
    raw = HEAD + b"Content-Type: text/html\r\n\r\n<p>hello</p>\r\n"
    assert not parse(raw).malformed
    p = parse(raw, budget=0.0)
    assert p.malformed and "parse budget" in p.parse_error and "stored raw" in p.parse_error
    assert p.from_addr == "sender@example.org" and p.subject == "hostile"
    assert not parse(raw, budget=math.inf).malformed


def test_lone_cr_mail_with_huge_parameters_is_refused_not_slow():
    """The feed parser (used for lone-CR mail) reads Content-Type parameters itself."""
    raw = (HEAD + b"Content-Type: multipart/mixed; boundary=b" + b"; a=b" * 400_000
           + b"\r\n\r\nbody\rwith a lone CR\r\n")
    p = parse(raw)
    assert p.malformed and "feed parser" in p.parse_error
    assert p.from_addr == "sender@example.org"


@pytest.mark.parametrize("disposition", [
    b'attachment; filename="\xc3\x9cbersicht_Gr\xc3\xb6\xc3\x9fen.pdf"',
    b"attachment; filename=\xc3\x9cbersicht_Gr\xc3\xb6\xc3\x9fen.pdf",
    b"attachment; filename*=UTF-8''%C3%9Cbersicht_Gr%C3%B6%C3%9Fen.pdf",
    b'attachment; filename="=?utf-8?q?=C3=9Cbersicht=5FGr=C3=B6=C3=9Fen=2Epdf?="',
])
def test_raw_8bit_attachment_names_decode_like_subjects(disposition):
    raw = (b"From: a@example.org\r\nSubject: \xc3\x9cbersicht\r\n"
           b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
           b"Content-Type: text/plain\r\n\r\nsee attached\r\n--XX\r\n"
           b"Content-Type: application/pdf; name=\"\xc3\x9cbersicht.pdf\"\r\n"
           b"Content-Disposition: " + disposition + b"\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--XX--\r\n")
    p = parse(raw)
    assert p.subject == "Übersicht"
    assert [a.filename for a in p.attachments] == ["Übersicht_Größen.pdf"]


def test_raw_8bit_latin1_name_and_name_parameter():
    raw = (b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
           b"Content-Type: application/pdf; name=\"Gr\xf6\xdfe.pdf\"\r\n\r\nx\r\n--XX--\r\n")
    assert [a.filename for a in parse(raw).attachments] == ["Größe.pdf"]


def test_utf8_cut_inside_a_character_is_not_mojibake():
    """A raw 8-bit name cut inside its last character (as in the corpus's Yahoo mail)."""
    name = "Картинка с очень длинным именем".encode()[:-1]
    raw = (b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
           b"Content-Type: image/png\r\nContent-Disposition: attachment; filename=\""
           + name + b"\"\r\n\r\nx\r\n--XX--\r\n")
    [attachment] = parse(raw).attachments
    assert attachment.filename == "Картинка с очень длинным имене\ufffd"
    assert decode_bytes("Grüße".encode("cp1252")) == "Grüße"
    assert decode_bytes("Grüße aus Kö".encode()[:-1]) == "Grüße aus K\ufffd"
    assert decode_bytes("Grüße aus Köln".encode("latin-1")) == "Grüße aus Köln"
