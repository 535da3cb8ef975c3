"""`mailtix deliver` (one message from an MTA on stdin) and `mailtix import` (mbox, Maildir):
every corpus message stored once, MTA exit codes, dedupe across retries and re-imports."""

from __future__ import annotations

import mailbox
import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import write_config
from helpers import count, db
from servers import simple_message
from test_corpus import corpus_files

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def feed():
    """The CLI in-process with bytes on stdin (an MTA hands over bytes, not text)."""
    from typer.testing import CliRunner

    from mailtix.cli.main import app

    runner = CliRunner()

    def invoke(raw: bytes, *args: str):
        return runner.invoke(app, ["deliver", *args], input=raw, catch_exceptions=False)

    return invoke


def mailtix(*args: str, stdin: bytes = b"", env: dict | None = None):
    """A real process, as Postfix's pipe runs it: real stdin, real exit status."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "mailtix", *args], input=stdin,
                          capture_output=True, env=full, timeout=120)


def test_deliver_every_corpus_file(feed):
    files = corpus_files()
    for f in files:
        result = feed(f.read_bytes())
        assert result.exit_code == 0, (f.name, result.stdout, result.stderr)
    with db() as conn:
        stored = {bytes(r[0]) for r in conn.execute("SELECT data FROM raw_messages")}
        sources = conn.execute("SELECT COUNT(*) FROM message_sources").fetchone()[0]
        messages = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    # No loss: every file's bytes are kept as delivered (stdin keeps its line endings), but
    # for an mbox "From " line, which an MTA may prepend and deliver strips.
    missing = [f.name for f in files if f.read_bytes() not in stored
               and f.read_bytes().split(b"\n", 1)[-1] not in stored]
    assert missing == []
    # Each file is one source row; a file that is the same message as another (same
    # Message-ID and content) is recorded as seen again, not stored twice.
    assert sources == len(files)
    dups = count("SELECT COUNT(*) FROM events WHERE kind = 'duplicate'")
    assert messages + dups == len(files)
    assert dups <= 2
    assert count("SELECT COUNT(*) FROM messages WHERE ticket_id IS NULL AND malformed = 0") == 0
    assert count("SELECT COUNT(*) FROM messages WHERE malformed = 1") > 0
    # An MTA retry of a message already committed is a success that stores nothing.
    again = feed(files[0].read_bytes())
    assert again.exit_code == 0
    assert count("SELECT COUNT(*) FROM message_sources") == len(files)


@pytest.mark.usefixtures("backend")  # on both store backends
def test_deliver_threads_and_autoresponds(feed, cfgdir):
    write_config(cfgdir, '[accounts.support]\nemail = "support@example.com"\n'
                         '[accounts.support.autoresponder]\nenabled = true\n'
                         '[accounts.support.smtp]\nhost = "127.0.0.1"\nport = 2525\n'
                         'tls = "none"\n')
    from email.utils import format_datetime

    # The first delivery is the account's first run: mail dated before it is not answered.
    assert feed(simple_message("Written last week")).exit_code == 0
    assert count("SELECT COUNT(*) FROM outbox") == 0
    time.sleep(1.1)  # first_run_at has one-second resolution
    now = format_datetime(datetime.now(UTC))
    first = simple_message("Printer broken", message_id="<q1@example.org>", Date=now,
                           sender="other@example.org")
    assert feed(first).exit_code == 0
    reply = simple_message("Re: Printer broken", message_id="<q2@example.org>", Date=now,
                           In_Reply_To="<q1@example.org>", sender="other@example.org")
    assert feed(reply, "--account", "support").exit_code == 0
    assert count("SELECT COUNT(*) FROM tickets") == 2
    assert count("SELECT COUNT(*) FROM messages WHERE subject LIKE '%Printer broken' "
                 "AND direction = 'in' AND ticket_id = (SELECT ticket_id FROM messages "
                 "WHERE message_id = '<q1@example.org>')") == 2
    # The new ticket is answered once; its follow-up is not (on_followups = false).
    assert count("SELECT COUNT(*) FROM outbox WHERE kind = 'autoresponse'") == 1


def test_deliver_store_locked_tempfails_then_retry_succeeds(monkeypatch, feed):
    from mailtix.store import db as storedb

    raw = simple_message("Locked out")
    assert feed(simple_message("first, creates the store")).exit_code == 0
    monkeypatch.setattr(storedb, "BUSY_TIMEOUT", 0.3)
    holder = sqlite3.connect(Path(os.environ["MAILTIX_DATA"]) / "mailtix.sqlite3")
    holder.execute("BEGIN IMMEDIATE")  # another writer that does not let go
    try:
        result = feed(raw)
        assert result.exit_code == 75, result.stdout + result.stderr
        assert "retry" in result.stderr and "locked" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        holder.rollback()
        holder.close()
    assert count("SELECT COUNT(*) FROM messages") == 1
    again = feed(raw)
    assert again.exit_code == 0, again.stderr
    assert count("SELECT COUNT(*) FROM messages") == 2


def test_deliver_broken_store_or_config_tempfails(tmp_path, cfgdir):
    data = tmp_path / "data"
    data.mkdir()
    (data / "mailtix.sqlite3").write_bytes(b"this is not a database" * 100)
    result = mailtix("deliver", stdin=simple_message())
    assert result.returncode == 75, result.stderr
    assert result.stderr.decode().count("\n") == 1
    write_config(cfgdir, "[general\n")
    result = mailtix("deliver", stdin=simple_message())
    assert result.returncode == 75
    assert b"config.toml" in result.stderr


def test_deliver_while_a_run_holds_its_lock(cfgdir, tmp_path):
    from mailtix.lock import run_lock

    box = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    write_config(cfgdir, f'[accounts.support]\nemail = "support@example.com"\n'
                         f'[accounts.support.fetch]\nprotocol = "maildir"\npath = "{box}"\n')
    with run_lock(Path(os.environ["MAILTIX_DATA"])):
        busy = mailtix("run")
        assert busy.returncode == 0 and b"another mailtix run is active" in busy.stdout
        result = mailtix("deliver", stdin=simple_message("During a run"))
        assert result.returncode == 0, result.stderr
    assert count("SELECT COUNT(*) FROM messages WHERE subject = 'During a run'") == 1


@pytest.mark.usefixtures("backend")  # on both store backends
def test_concurrent_deliveries_on_a_new_store():
    """Eight MTA deliveries at once, the first ones creating the store: all land."""
    raws = [simple_message(f"parallel {i}") for i in range(8)]
    procs = [subprocess.Popen([sys.executable, "-m", "mailtix", "deliver"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}) for _ in raws]
    errors: list[bytes] = []

    def send(p, raw):
        _out, err = p.communicate(raw, timeout=120)
        if p.returncode != 0:
            errors.append(err)

    threads = [threading.Thread(target=send, args=pair) for pair in zip(procs, raws, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count("SELECT COUNT(*) FROM messages WHERE subject LIKE 'parallel %'") == 8


def test_deliver_strips_the_mbox_from_line(feed):
    raw = simple_message("From line")
    assert feed(b"From customer@example.org Mon Nov 23 10:00:00 2026\n" + raw).exit_code == 0
    with db() as conn:
        data = conn.execute("SELECT r.data FROM messages m JOIN raw_messages r "
                            "ON r.sha256 = m.raw_sha256").fetchone()[0]
    assert bytes(data) == raw


def test_import_mbox_of_the_corpus(cli, tmp_path):
    files = corpus_files()
    path = tmp_path / "corpus.mbox"
    box = mailbox.mbox(path)
    for f in files:
        box.add(f.read_bytes())
    box.flush()
    box.close()
    result = cli("import", "--mbox", str(path), "--as-closed", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    import json

    summary = json.loads(result.stdout)
    assert summary["messages"] == len(files)
    with db() as conn:
        sources = conn.execute("SELECT COUNT(*) FROM message_sources").fetchone()[0]
        messages = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    dups = count("SELECT COUNT(*) FROM events WHERE kind = 'duplicate'")
    # mbox keeps identical messages apart only by position; both land as one message.
    assert messages + dups + summary["known"] == len(files)
    assert sources == messages + dups
    assert summary["stored"] == messages
    assert count("SELECT COUNT(*) FROM tickets WHERE status != 'closed'") == 0
    assert count("SELECT COUNT(*) FROM outbox") == 0
    again = cli("import", "--mbox", str(path), "--json")
    assert json.loads(again.stdout)["stored"] == 0
    assert count("SELECT COUNT(*) FROM messages") == messages


@pytest.mark.usefixtures("backend")  # on both store backends
def test_import_maildir_dedupes_against_delivered_mail(cli, feed, tmp_path):
    from mailtix.sources.maildir import deliver

    box = tmp_path / "Old"
    raws = [simple_message(f"old {i}") for i in range(3)]
    for raw in raws:
        deliver(box, raw)
    assert feed(raws[0]).exit_code == 0
    result = cli("import", "--maildir", str(box))
    assert result.exit_code == 0, result.stderr
    assert "2 stored" in result.stdout and "1 duplicate" in result.stdout
    assert count("SELECT COUNT(*) FROM messages") == 3
    assert len(list((box / "new").iterdir())) == 3


def test_import_needs_one_source(cli, tmp_path):
    result = cli("import")
    assert result.exit_code == 2
    result = cli("import", "--maildir", str(tmp_path))
    assert result.exit_code == 2 and "not a Maildir" in result.stderr



def test_deliver_during_a_real_run_writing_the_store(cfgdir, tmp_path):
    """A `mailtix run` ingesting the corpus from a Maildir holds the run lock and writes the
    store; deliveries meanwhile neither wait for it nor get lost."""
    import fcntl

    from mailtix.sources.maildir import deliver

    box = tmp_path / "Maildir"
    files = corpus_files()
    for copy in range(3):  # a run of some seconds, so that deliveries surely overlap it
        for f in files:
            deliver(box, f"X-Copy: {copy}\r\n".encode() + f.read_bytes())
    write_config(cfgdir, f'[accounts.support]\nemail = "support@example.com"\n'
                         f'[accounts.support.fetch]\nprotocol = "maildir"\npath = "{box}"\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.Popen([sys.executable, "-m", "mailtix", "run", "--quiet"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lock = Path(os.environ["MAILTIX_DATA"]) / "run.lock"

    def run_active() -> bool:
        if not lock.exists():
            return False
        with open(lock, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False

    deadline = time.monotonic() + 60
    while not run_active() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert run.poll() is None, "the run ended before a delivery could overlap it"
    first = mailtix("deliver", stdin=simple_message("during run 0"))
    overlapped = run.poll() is None  # committed while the run still held the lock
    delivered = [first] + [mailtix("deliver", stdin=simple_message(f"during run {i}"))
                           for i in (1, 2)]
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err.decode()
    assert [d.returncode for d in delivered] == [0, 0, 0], [d.stderr for d in delivered]
    assert overlapped, "the deliveries did not overlap the run; make the run longer"
    assert count("SELECT COUNT(*) FROM messages WHERE subject LIKE 'during run %'") == 3
    assert count("SELECT COUNT(*) FROM message_sources WHERE uidl LIKE 'maildir:%'") \
        == 3 * len(files)
