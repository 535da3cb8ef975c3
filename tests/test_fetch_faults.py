"""Faults inside one run against Dovecot: a jammed pending delete, a defect in one account,
a dead parse worker, two first opens of a store, the same mail without Message-ID in two
mailboxes, passwords in children's environments."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from helpers import count, db, server_uids
from servers import simple_message

from mailtix.config import load
from mailtix.runner import run
from mailtix.store import Store


class Crash(BaseException):
    """A power cut at a chosen moment (not an Exception: the runner would record it)."""


def _store() -> Store:
    return Store.open(Path(os.environ["MAILTIX_DATA"]))


def _children(marker: bytes = b"spawn_main") -> list[int]:
    """Our child processes whose command line holds marker (multiprocessing's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and marker in cmdline:
            found.append(int(entry.name))
    return found


def test_pending_delete_after_a_crash_does_not_jam_later_runs(dovecot, mailbox_account):
    user, _ = mailbox_account(extra='post_fetch = "delete"')
    for i in range(3):
        dovecot.deliver(user, simple_message(subject=f"delete me {i}"))
    config = load()
    store = _store()

    def crash(stage, outcomes):
        raise Crash(stage)

    with pytest.raises(Crash):
        run(config, store, on_chunk=crash)
    assert count("SELECT COUNT(*) FROM pending_actions WHERE action = 'delete'") == 3
    dovecot.deliver(user, simple_message(subject="after the crash"))
    report = run(config, store)
    store.close()
    assert not report.failed, report.failed[0].error
    assert report.accounts[0].fetched == 1
    assert server_uids(dovecot, user) == []
    assert count("SELECT COUNT(*) FROM messages") == 4
    assert count("SELECT COUNT(*) FROM pending_actions") == 0


def test_a_defect_in_one_account_stops_neither_the_others_nor_the_outbox(
        dovecot, mailbox_account, cli, monkeypatch, tmp_path):
    user_a, _ = mailbox_account("alpha")
    user_b, _ = mailbox_account("beta")
    dovecot.deliver(user_a, simple_message(subject="for alpha"))
    dovecot.deliver(user_b, simple_message(subject="for beta"))
    from mailtix import delivery, intake

    real = intake.fetch_imap

    def broken(config, account, *args, **kwargs):
        if account.name == "alpha":
            raise TypeError("'bool' object is not callable")
        return real(config, account, *args, **kwargs)

    delivered = []
    real_deliver = delivery.deliver
    monkeypatch.setattr(intake, "fetch_imap", broken)
    monkeypatch.setattr(delivery, "deliver",
                        lambda *a, **k: delivered.append(1) or real_deliver(*a, **k))
    result = cli("run")
    assert result.exit_code == 6, "one account failed, one worked: partial failure"
    assert "beta: 1 new message(s)" in result.stdout
    assert delivered, "the outbox was delivered"
    assert "account alpha:" in result.stderr and "TypeError" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "Traceback" in (tmp_path / "log" / "mailtix.log").read_text()
    status = cli("status", "--json")
    import json

    accounts = {a["account"]: a for a in json.loads(status.stdout)["accounts"]}
    assert "TypeError" in accounts["alpha"]["last_error"]
    assert accounts["beta"]["last_error"] == ""
    assert "TypeError" in cli("status").stdout
    debug = cli("--debug", "run", "--account", "alpha")
    assert debug.exit_code == 1 and "Traceback" in debug.stderr


@pytest.fixture
def small_pool(monkeypatch):
    """The parse pool for a handful of mails, in chunks of three."""
    from mailtix.sources import imap

    monkeypatch.setattr(imap, "PARALLEL_MIN", 2)
    monkeypatch.setattr(imap, "CHUNK_COUNT", 3)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)


def test_a_dead_parse_worker_does_not_stop_the_run(dovecot, mailbox_account, small_pool):
    user, _ = mailbox_account()
    for i in range(15):
        dovecot.deliver(user, simple_message(subject=f"pool {i}"))
    killed = []

    def kill_workers(stage, outcomes):
        if not killed:
            for pid in _children():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.5)  # let the executor notice: the next map then raises at once

    store = _store()
    report = run(load(), store, on_chunk=kill_workers)
    store.close()
    assert killed, "the workers ran"
    assert not report.failed, report.failed[0].error
    assert report.accounts[0].fetched == 15
    assert count("SELECT COUNT(*) FROM messages") == 15


def test_parse_workers_do_not_get_the_passwords(dovecot, mailbox_account, small_pool,
                                                monkeypatch):
    user, password = mailbox_account()
    monkeypatch.setenv("MAILTIX_PASSWORD_OTHER", "other-secret")
    for i in range(6):
        dovecot.deliver(user, simple_message(subject=f"env {i}"))
    environments = []

    def look(stage, outcomes):
        for pid in _children():
            environments.append(Path(f"/proc/{pid}/environ").read_bytes())

    store = _store()
    report = run(load(), store, on_chunk=look)
    store.close()
    assert not report.failed and report.accounts[0].fetched == 6
    assert environments, "worker processes were seen"
    for env in environments:
        assert b"MAILTIX_PASSWORD_" not in env
        assert password.encode() not in env
    assert os.environ["MAILTIX_PASSWORD_OTHER"] == "other-secret", "put back afterwards"


def test_password_cmd_does_not_get_the_other_passwords(monkeypatch, tmp_path):
    from mailtix import secrets
    from mailtix.config.model import Account, Server

    monkeypatch.setenv("MAILTIX_PASSWORD_PAYROLL", "payroll-secret")
    out = tmp_path / "env.txt"
    server = Server("imap", "127.0.0.1", 143, "none", "u",
                    password_cmd=f"env > {out}; echo from-command")
    assert secrets.lookup(Account("support", "s@example.com", fetch=server), "fetch",
                          server) == "from-command"
    assert "payroll-secret" not in out.read_text()
    assert "PATH=" in out.read_text(), "the rest of the environment is passed"


def test_two_first_opens_of_a_store_apply_each_migration_once(tmp_path):
    """The second opener reads the version while the first holds the write lock."""
    from mailtix.store import db as store_db
    from mailtix.store.schema import MIGRATIONS

    data = tmp_path / "fresh"
    data.mkdir()
    conn = sqlite3.connect(data / "mailtix.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    other: list[sqlite3.Connection] = []

    def trace(statement: str) -> None:
        # Just before this connection takes the write lock, another command opens the
        # store and migrates it completely.
        if statement.startswith("BEGIN IMMEDIATE") and not other:
            other.append(store_db.connect(data))

    conn.set_trace_callback(trace)
    assert store_db.migrate(conn) == len(MIGRATIONS)
    conn.set_trace_callback(None)
    assert other
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    other[0].close()
    conn.close()


def test_same_mail_without_message_id_in_two_mailboxes_is_one_ticket(dovecot, mailbox_account,
                                                                     cli):
    user_a, _ = mailbox_account("info")
    user_b, _ = mailbox_account("sales")
    raw = (b"From: customer@example.org\r\nTo: info@example.com, sales@example.com\r\n"
           b"Subject: price list please\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
           b"\r\nPlease send the price list.\r\n")
    dovecot.deliver(user_a, b"Received: from mx1 by info-host; Sun, 22 Nov 2026 10:00:01\r\n"
                            b"Delivered-To: info@example.com\r\n" + raw)
    dovecot.deliver(user_b, b"Received: from mx2 by sales-host; Sun, 22 Nov 2026 10:00:02\r\n"
                            b"Delivered-To: sales@example.com\r\n" + raw)
    other = raw.replace(b"Sun, 22 Nov 2026 10:00:00", b"Mon, 23 Nov 2026 09:00:00")
    dovecot.deliver(user_b, other)  # the same text sent again a day later: a new mail
    result = cli("run")
    assert result.exit_code == 0, result.stderr
    assert count("SELECT COUNT(*) FROM messages") == 2
    assert count("SELECT COUNT(*) FROM tickets") == 2
    assert count("SELECT COUNT(*) FROM message_sources") == 3
    with db() as conn:
        row = conn.execute("SELECT COUNT(DISTINCT s.account) FROM message_sources s JOIN messages m"
                           " ON m.id = s.message_id WHERE m.date LIKE '2026-11-22%'").fetchone()
    assert row[0] == 2, "one message, found in both mailboxes"
