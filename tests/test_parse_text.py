"""RFC 2047 decoding without email.header.decode_header (quadratic on many words)."""

from __future__ import annotations

from email.header import Header, decode_header, make_header

from hypothesis import given, settings
from hypothesis import strategies as st

from mailtix.mail.text import header_text

texts = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=120)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(texts, st.sampled_from(["utf-8", "iso-8859-1", "koi8-r", "shift_jis"]))
def test_reads_back_what_the_stdlib_encodes(text, charset):
    try:
        encoded = Header(text, charset, maxlinelen=76).encode()
    except UnicodeEncodeError:  # not representable in that charset
        encoded = Header(text, "utf-8", maxlinelen=76).encode()
    assert header_text(encoded) == " ".join(text.split())


def test_same_as_the_stdlib_on_everyday_forms():
    for value in ["=?utf-8?q?a?= b", "x=?utf-8?q?a?=", "a =?utf-8?q?b?= =?utf-8?q?c?= d",
                  "=?utf-8?q?=C3?= =?utf-8?q?=A4?=", "=?utf-8?q?a?=\r\n =?iso-8859-1?q?=E4?=",
                  "Re: =?windows-1252?Q?Gr=FC=DFe?= aus", "=?UTF-8?B?w6Q=?= x",
                  "=?utf-8?q?Why??="]:
        assert header_text(value) == str(make_header(decode_header(value))), value


def test_broken_words_stay_as_written_and_raw_8bit_is_decoded():
    assert header_text("=?utf-8?b?####?=") == ""  # non-strict base64 keeps no bytes
    assert header_text("=?x-unknown?q?Gr=C3=BC=C3=9Fe?=") == "Grüße"
    raw_latin1 = "K\xf6ln".encode("latin-1").decode("ascii", "surrogateescape")
    assert header_text(raw_latin1 + " =?utf-8?q?Gr=C3=BC=C3=9Fe?=") == "Köln Grüße"
