"""The whole corpus through parse in-process, with and without payloads (the IMAP and POP3
sweeps in test_corpus.py cover ingest): no exception, no real mail hits a hostile-mail limit,
and the names and senders this round fixed read as their authors wrote them."""

from __future__ import annotations

import hashlib

from test_corpus import corpus_files

from mailtix.mail.parse import parse

LIMITS = ("parse budget", "MIME parts", "nested deeper", "not read", "feed parser")


def parsed(name: str):
    [path] = [p for p in corpus_files() if p.name == name]
    return parse(path.read_bytes(), payloads=True)


def test_every_corpus_mail_parses_within_the_limits():
    capped = []
    for path in corpus_files():
        raw = path.read_bytes()
        p, with_data = parse(raw), parse(raw, payloads=True)
        assert not any(limit in p.parse_error for limit in LIMITS), (path.name, p.parse_error)
        if "cut" in p.parse_error:
            capped.append(path.name)
        assert (p.subject, p.from_addr, p.body_text) == (
            with_data.subject, with_data.from_addr, with_data.body_text), path.name
        for a in with_data.attachments:
            assert a.data is not None and hashlib.sha256(a.data).hexdigest() == a.sha256
    # Only flanker's 209 KB Subject is over a field cap.
    assert capped == ["long-header.eml"]


def test_long_header_keeps_the_fields_after_the_giant_subject():
    p = parsed("long-header.eml")
    assert p.subject.startswith("Die heiße Zypernsonne") and len(p.subject) < 32 * 1024
    assert p.content_type == "text/plain" and p.from_addr == "bob@example.com"


def test_raw_8bit_attachment_names_in_the_corpus():
    names = {n: [a.filename for a in parsed(n).attachments] for n in (
        "mail_test_1.eml", "attachment_emails__attachment_nonascii_filename.eml",
        "russian-attachment-yahoo.eml")}
    assert names["mail_test_1.eml"] == ["ФНС_РФ558.zip"]
    assert names["attachment_emails__attachment_nonascii_filename.eml"] == ["ciële.txt"]
    assert names["russian-attachment-yahoo.eml"][0].startswith("Картинка с очень, очень")


def test_display_names_and_addresses_in_the_corpus():
    assert (parsed("encoded-header.eml").from_name, parsed("encoded-header.eml").from_addr) == (
        "Foo, Bar", "foo.bar@example.com")
    p = parsed("mail_test_18.eml")
    assert (p.from_name, p.from_addr) == ("LastßlName, FirstName", "comma.name@example.com")
    assert [a for _, a in p.to] == ["tony.stark@example.com"]
    # A display name that looks like an address is a name; the angle address is the sender.
    p = parsed("mail_test_19.eml")
    assert (p.from_name, p.from_addr) == ("alice@example.com", "bob@example.com")
