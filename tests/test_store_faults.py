"""The store under faults (issue 16 item 10): locked past the busy timeout, a full disk, a
damaged page. Each ends in exit 7 with one line saying what happened and what to do; nothing
is lost and nothing is done on the server; --json prints JSON in every outcome."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from helpers import count, server_flags
from servers import simple_message

from mailtix.store import db


def store_path() -> Path:
    return Path(os.environ["MAILTIX_DATA"]) / "mailtix.sqlite3"


@pytest.fixture
def first_run(dovecot, mailbox_account, cli):
    """An account whose first mail is stored; returns the Dovecot user."""
    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message(subject="first"))
    assert cli("run").exit_code == 0
    return user


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert lines[0].startswith("error: ") and (len(lines) == 1 or lines[1].startswith("hint: "))
    assert len(lines) <= 2, stderr
    return stderr


def test_locked_store_ends_in_exit_7_and_changes_nothing(first_run, dovecot, cli, monkeypatch):
    monkeypatch.setattr(db, "BUSY_TIMEOUT", 0.2)
    dovecot.deliver(first_run, simple_message(subject="second"))
    holder = sqlite3.connect(store_path(), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, for longer than we wait
    try:
        res = cli("run")
        assert res.exit_code == 7, (res.stdout, res.stderr)
        err = one_line_error(res.stderr)
        assert "locked by another process" in err and "hint: " in err
        res = cli("run", "--json")
        assert res.exit_code == 7
        report = json.loads(res.stdout)
        assert report["ok"] is False and report["exit_code"] == 7 and "locked" in report["error"]
        holder.execute("ROLLBACK")
        # a holder in exclusive locking mode keeps readers out as well
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("INSERT INTO schema_version VALUES (999, 'x')")
        status = cli("status")
        assert status.exit_code == 7 and "locked" in one_line_error(status.stderr)
        status = cli("status", "--json")
        assert status.exit_code == 7 and json.loads(status.stdout)["exit_code"] == 7
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "\\Seen" not in server_flags(dovecot, first_run)[2], "nothing done on the server"
    assert count("SELECT COUNT(*) FROM messages") == 1
    assert cli("run").exit_code == 0
    assert count("SELECT COUNT(*) FROM messages") == 2


def test_full_disk_ends_in_exit_7_and_nothing_is_marked_on_the_server(first_run, dovecot, cli,
                                                                      monkeypatch):
    # SQLite's max_page_count gives the same SQLITE_FULL as a full file system
    real_connect = db.connect

    def full(data_dir: Path) -> sqlite3.Connection:
        conn = real_connect(data_dir)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        return conn

    monkeypatch.setattr(db, "connect", full)
    big = "x" * 78 + "\n"
    dovecot.deliver(first_run, simple_message(subject="big", body=big * 4000))
    res = cli("run")
    assert res.exit_code == 7, (res.stdout, res.stderr)
    err = one_line_error(res.stderr)
    assert "full" in err and "free space" in err
    res = cli("run", "--json")
    assert res.exit_code == 7 and json.loads(res.stdout)["ok"] is False
    assert "\\Seen" not in server_flags(dovecot, first_run)[2], "nothing done on the server"
    monkeypatch.setattr(db, "connect", real_connect)
    assert cli("run").exit_code == 0
    assert count("SELECT COUNT(*) FROM messages") == 2
    assert "\\Seen" in server_flags(dovecot, first_run)[2]


def _corrupt_index(table: str) -> None:
    conn = sqlite3.connect(store_path(), isolation_level=None)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    roots = [r[0] for r in conn.execute("SELECT rootpage FROM sqlite_master WHERE type = "
                                        "'index' AND tbl_name = ? AND rootpage > 0", (table,))]
    conn.close()
    assert roots
    with open(store_path(), "r+b") as fh:
        for root in roots:
            fh.seek((root - 1) * page_size)
            fh.write(b"\xde\xad\xbe\xef" * (page_size // 4))


def test_damaged_index_page_ends_in_exit_7_and_store_check_says_so(first_run, dovecot, cli):
    assert cli("store", "check").exit_code == 0
    _corrupt_index("tickets")
    res = cli("status")
    assert res.exit_code == 7, (res.stdout, res.stderr)
    err = one_line_error(res.stderr)
    assert "damaged" in err and "mailtix store check" in err
    dovecot.deliver(first_run, simple_message(subject="second"))
    res = cli("run", "--json")
    assert res.exit_code == 7 and json.loads(res.stdout)["ok"] is False
    check = cli("store", "check")
    assert check.exit_code == 7 and "DAMAGED" in check.stdout
    report = json.loads(cli("store", "check", "--json").stdout)
    assert report["ok"] is False and report["problems"] and report["free_bytes"] > 0
    assert "\\Seen" not in server_flags(dovecot, first_run)[2], "nothing done on the server"
