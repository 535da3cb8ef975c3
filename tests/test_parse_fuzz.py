"""Property test of parse + ingest on generated mail (issue 16): never an exception, every
message stored byte-exact, parsing always finishes (flagged when it had to give up).

The normal suite runs a bounded number of examples; `make fuzz` runs many more
(MAILTIX_FUZZ_EXAMPLES) with Hypothesis' example database kept for replay."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_corpus import corpus_files

from mailtix.config.load import load
from mailtix.ingest import store_message
from mailtix.mail.parse import Parsed, parse
from mailtix.store import Store
from mailtix.store.messages import Source

EXAMPLES = int(os.environ.get("MAILTIX_FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 1000,
    database=None if EXAMPLES <= 1000 else settings.default.database,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large])

# Pieces that have broken mail parsers: quoting, comments, encoded words, 8-bit bytes,
# boundaries, RFC 2231 continuations, stray line ends.
ATOMS = [b"a", b"@", b"<", b">", b"\"", b"(", b")", b",", b";", b":", b"\\", b" ", b"\t",
         b"\r\n", b"\n", b"\r", b"\r\n ", b"=?utf-8?q?", b"=?utf-8?b?", b"=?x-bogus?q?",
         b"?=", b"=C3=BC", b"_", b"w6Q=", b"\xc3\xbc", b"\xfc", b"\xff\xfe", b"\x00",
         b"--b", b"--b--", b"boundary=b", b"charset=", b"filename*0*=", b"utf-8''%C3%BC",
         b"name=", b"multipart/mixed", b"text/html", b"message/rfc822", b"<a", b"<p>", b"&amp;",
         b"base64", b"quoted-printable", b"From ", b"example.org", b"\xe2\x82\xac"]
FIELDS = [b"From", b"To", b"Cc", b"Reply-To", b"Sender", b"Subject", b"Message-ID",
          b"In-Reply-To", b"References", b"Date", b"Content-Type", b"Content-Disposition",
          b"Content-Transfer-Encoding", b"MIME-Version", b"Auto-Submitted", b"X-Junk"]

fragment = st.lists(st.one_of(st.sampled_from(ATOMS), st.binary(max_size=8)),
                    max_size=24).map(b"".join)
header = st.tuples(st.sampled_from(FIELDS), fragment).map(lambda t: t[0] + b": " + t[1])


@st.composite
def mails(draw) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:  # anything at all
        return draw(st.binary(max_size=2000))
    if kind == 1:  # a corpus mail, cut and spliced
        raw = draw(st.sampled_from(CORPUS))
        a = draw(st.integers(0, len(raw)))
        b = draw(st.integers(a, len(raw)))
        return raw[:a] + draw(fragment) + raw[b:]
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    head = eol.join(draw(st.lists(header, max_size=12)))
    if kind == 2:
        return head + eol + eol + draw(fragment)
    # multipart, nested a little, with generated part headers and bodies
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        part_head = eol.join(draw(st.lists(header, max_size=4)))
        parts.append(b"--b" + eol + part_head + eol + eol + draw(fragment))
    close = draw(st.sampled_from([b"--b--", b"", b"--b"]))
    return (head + eol + b"Content-Type: multipart/mixed; boundary=b" + eol + eol
            + eol.join(parts) + eol + close + eol + draw(fragment))


CORPUS = [p.read_bytes() for p in corpus_files()[::7]]


def check_parsed(p: Parsed) -> None:
    assert isinstance(p.subject, str) and "\n" not in p.subject
    assert isinstance(p.body_text, str)
    assert all("@" in addr for _, addr in p.to + p.cc + p.reply_to)
    assert p.from_addr == "" or "@" in p.from_addr
    assert p.malformed or p.from_addr, "a mail without a sender must be flagged"
    assert not p.malformed or p.parse_error


@FUZZ
@given(raw=mails())
def test_parse_never_raises(raw):
    check_parsed(parse(raw))
    check_parsed(parse(raw, payloads=True))


def test_ingest_stores_every_generated_mail_byte_exact(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir(exist_ok=True)
    (cfg / "config.toml").write_text(
        '[accounts.support]\nemail = "support@example.com"\n'
        '[accounts.support.tickets]\nenabled = true\n')
    config = load(cfg / "config.toml")
    account = config.accounts["support"]
    store = Store.open(Path(os.environ["MAILTIX_DATA"]))
    uid = iter(range(1, 10**9))

    @FUZZ
    @given(raw=mails())
    def ingest(raw):
        src = Source(account="support", folder="INBOX", uidvalidity=1, uid=next(uid))
        with store.tx() as conn:
            outcome = store_message(conn, config, account, src, raw)
        sha = hashlib.sha256(raw).hexdigest()
        with store.tx() as conn:
            row = conn.execute("SELECT m.id, m.malformed, m.parse_error FROM message_sources s "
                               "JOIN messages m ON m.id = s.message_id WHERE s.uid = ?",
                               (src.uid,)).fetchone()
            stored = conn.execute("SELECT data FROM raw_messages WHERE sha256 = ?",
                                  (sha,)).fetchone()
        assert row is not None and row["id"] == outcome.message_row, "not recorded"
        # Byte-exact, also for a duplicate (its own bytes are kept beside the first copy's).
        assert stored is not None and bytes(stored["data"]) == raw
        assert not row["malformed"] or row["parse_error"]

    try:
        ingest()
    finally:
        store.close()
