"""Address lists: split by the quoting rules first, display names decoded after (issue 15
item 7, issue 17 also-found item 9), in linear time on hostile input."""

from __future__ import annotations

from email.utils import formataddr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtix.mail.addresses import parse_address_list
from mailtix.mail.parse import parse


def test_encoded_display_name_cannot_replace_the_address():
    raw = (b"From: =?utf-8?q?victim=40example=2Eorg_=3Cvictim=40example=2Eorg=3E?= "
           b"<real@sender.example>\r\n"
           b"To: =?utf-8?q?boss=40example=2Eorg?= <support@example.com>\r\n"
           b"Cc: =?utf-8?b?YUBldmlsLmV4YW1wbGUsIGJAZXZpbC5leGFtcGxl?= <cc@example.com>\r\n"
           b"Reply-To: =?utf-8?q?x=40evil=2Eexample?= <reply@sender.example>\r\n"
           b"Subject: hi\r\n\r\nbody\r\n")
    p = parse(raw)
    assert p.from_addr == "real@sender.example"
    assert p.from_name == "victim@example.org <victim@example.org>"
    assert [a for _, a in p.to] == ["support@example.com"]
    assert [a for _, a in p.cc] == ["cc@example.com"]
    assert p.cc[0][0] == "a@evil.example, b@evil.example"
    assert [a for _, a in p.reply_to] == ["reply@sender.example"]


def test_an_encoded_word_alone_is_never_an_address():
    p = parse(b"From: =?utf-8?q?victim=40example=2Eorg?=\r\nSubject: x\r\n\r\nb\r\n")
    assert p.from_addr == ""
    assert p.malformed and "no From address" in p.parse_error


def test_comma_inside_quotes_keeps_the_full_name():
    raw = ('From: "Müller, Jürgen" <j.mueller@example.de>\r\n'
           'To: "Schmidt, Anna" <anna@example.de>, "Weber, Tom (IT)" <tom@example.de>\r\n'
           'Cc: =?utf-8?q?Gr=C3=BC=C3=9Fe=2C_Hans?= <hans@example.de>\r\n'
           '\r\nbody\r\n').encode()
    p = parse(raw)
    assert (p.from_name, p.from_addr) == ("Müller, Jürgen", "j.mueller@example.de")
    assert p.to == [("Schmidt, Anna", "anna@example.de"), ("Weber, Tom (IT)", "tom@example.de")]
    assert p.cc == [("Grüße, Hans", "hans@example.de")]


@pytest.mark.parametrize("text, expected", [
    ("a@example.org", [("", "a@example.org")]),
    ("A <a@example.org>, b@example.org", [("A", "a@example.org"), ("", "b@example.org")]),
    ('"Müller, Jürgen" <j@example.org>', [("Müller, Jürgen", "j@example.org")]),
    # Unquoted "Last, First <addr>", as some clients write it: one person, not two entries.
    ("Müller, Jürgen <j@example.org>", [("Müller, Jürgen", "j@example.org")]),
    ('"a \\"quoted\\" name" <q@example.org>', [('a "quoted" name', "q@example.org")]),
    ("a@example.org (Alice, Admin)", [("Alice, Admin", "a@example.org")]),
    ("Alice (comment, here) <a@example.org>", [("Alice", "a@example.org")]),
    ("team: a@example.org, B <b@example.org>;, c@example.org",
     [("", "a@example.org"), ("B", "b@example.org"), ("", "c@example.org")]),
    ("undisclosed-recipients:;", []),
    ("a@example.org; b@example.org", [("", "a@example.org"), ("", "b@example.org")]),
    ("<@route.example:a@example.org>", [("", "a@example.org")]),
    ('"john doe"@example.org', [("", '"john doe"@example.org')]),
    ("=?utf-8?q?J=C3=BCrgen?= <j@example.org>", [("Jürgen", "j@example.org")]),
    ('"=?utf-8?q?J=C3=BCrgen?=" <j@example.org>', [("Jürgen", "j@example.org")]),
    ("=?utf-8?q?a=40b=2Ec?=", [("", "=?utf-8?q?a=40b=2Ec?=")]),
    (" , ,a@example.org,, ", [("", "a@example.org")]),
    ("", []),
    ("not an address", [("", "not an address")]),
    ("<a@example.org", [("", "a@example.org")]),
    # No address found: the entry as written, for the caller to report.
    ('"unterminated <a@example.org>', [("", '"unterminated <a@example.org>')]),
])
def test_parse_address_list(text, expected):
    assert parse_address_list(text) == expected


def test_raw_8bit_display_names_are_decoded():
    value = 'Jürgen Müller <j@example.org>'.encode().decode("ascii", "surrogateescape")
    assert parse_address_list(value) == [("Jürgen Müller", "j@example.org")]


@pytest.mark.parametrize("unit", ["(", "<", '"a', "=?x?q?a?= ", "a@b.c, ", "\\", ")", ":;"])
def test_hostile_address_headers_parse(unit):
    """100 KB of one construct: email.utils.getaddresses needs minutes on 100 KB of '('."""
    text = unit * (100_000 // len(unit))
    out = parse_address_list(text)
    assert isinstance(out, list)
    raw = b"From: a@b.example\r\nTo: " + text.encode() + b"\r\n\r\nbody\r\n"
    assert parse(raw).from_addr == "a@b.example"


names = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=30).map(
    lambda s: " ".join(s.split()))
local = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,15}", fullmatch=True)
domain = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z]{2,6}){1,2}", fullmatch=True)
mailboxes = st.tuples(names, st.tuples(local, domain).map("@".join))


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.lists(mailboxes, max_size=5))
def test_round_trip_of_what_the_stdlib_writes(pairs):
    """Whatever names and addresses email.utils.formataddr writes (quoting, RFC 2047 for
    non-ASCII), parse_address_list reads back."""
    text = ", ".join(formataddr(pair) for pair in pairs)
    assert parse_address_list(text) == [(name, addr) for name, addr in pairs]
