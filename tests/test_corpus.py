"""Every real-world message of the shared corpus goes through IMAP and POP3 into the store:
no crash, one stored message per file, raw bytes identical to what the server sent."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import CORPUS
from helpers import count, db, server_bodies


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        pytest.fail(f"corpus folder {CORPUS} is missing: set MAILTIX_TEST_CORPUS to the "
                    "shared/corpus folder", pytrace=False)
    files = sorted(CORPUS.glob("*/*.eml"))
    assert len(files) >= 299, f"expected the full corpus, found {len(files)} files"
    return files


# Byte-for-byte the same message but for its line endings: IMAP serves both with CRLF,
# so the second is recorded as the same message seen again (a source row), not lost.
LINE_ENDING_TWINS = {("bsd__lhost-postfix-01.eml", "dos__lhost-postfix-01.eml")}


def test_corpus_over_imap(dovecot, mailbox_account, cli, monkeypatch):
    """Through the parallel parse path: worker processes, chunks pipelined with the fetch."""
    from mailtix.sources import imap

    monkeypatch.setattr(imap, "PARALLEL_MIN", 50)
    monkeypatch.setattr(imap, "CHUNK_COUNT", 40)
    pools = []
    real_pool = imap._pool
    monkeypatch.setattr(imap, "_pool", lambda n: pools.append(real_pool(n)) or pools[-1])
    files = corpus_files()
    user, _ = mailbox_account()
    for f in files:
        dovecot.deliver(user, f.read_bytes())
    result = cli("run")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert pools and pools[0] is not None, "the worker pool was used"
    served = server_bodies(dovecot, user)
    assert len(served) == len(files)
    with db() as conn:
        sources = conn.execute(
            "SELECT s.uid, m.raw_sha256, m.id FROM message_sources s "
            "JOIN messages m ON m.id = s.message_id WHERE s.account = 'support'").fetchall()
        assert sorted(r["uid"] for r in sources) == sorted(served), "a message was lost"
        for row in sources:
            raw = conn.execute("SELECT data FROM raw_messages WHERE sha256 = ?",
                               (row["raw_sha256"],)).fetchone()[0]
            assert bytes(raw) == served[row["uid"]], f"uid {row['uid']}: raw bytes differ"
            assert hashlib.sha256(bytes(raw)).hexdigest() == row["raw_sha256"]
        distinct = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        dups = conn.execute("SELECT detail FROM events WHERE kind = 'duplicate'").fetchall()
    assert distinct == len(files) - len(LINE_ENDING_TWINS)
    assert len(dups) == len(LINE_ENDING_TWINS)
    # Corpus content on the server equals the file, line endings aside.
    by_name = {f.name: f.read_bytes() for f in files}
    assert any(served_raw.replace(b"\r\n", b"\n") == by_name["msg_01.eml"].replace(b"\r\n", b"\n")
               for served_raw in served.values())
    # Everything is findable: a ticket or the quarantine list, nothing silently dropped.
    assert count("SELECT COUNT(*) FROM messages WHERE ticket_id IS NULL AND malformed = 0") == 0
    assert count("SELECT COUNT(*) FROM messages WHERE bounce = 1") >= 40
    assert count("SELECT COUNT(*) FROM messages WHERE list = 1") >= 20
    # A second run finds nothing new.
    again = cli("run")
    assert again.exit_code == 0
    assert "0 new message(s)" in again.stdout
    assert count("SELECT COUNT(*) FROM message_sources") == len(files)


def test_corpus_over_pop3(dovecot, mailbox_account, cli):
    files = corpus_files()
    user, _ = mailbox_account(protocol="pop3")
    for f in files:
        dovecot.deliver(user, f.read_bytes())
    result = cli("run")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert count("SELECT COUNT(*) FROM message_sources WHERE uidl != ''") == len(files)
    assert count("SELECT COUNT(*) FROM messages") == len(files) - len(LINE_ENDING_TWINS)
    # POP3 strips line terminators; what is stored is the message with CRLF line ends.
    with db() as conn:
        subjects = {r[0] for r in conn.execute("SELECT subject FROM messages")}
    assert any("Lyrics" in s for s in subjects)
    again = cli("run")
    assert again.exit_code == 0 and "0 new message(s)" in again.stdout
