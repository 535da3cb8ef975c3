"""`mailtix run` against Dovecot: no loss, no duplicates, only new mail, server actions."""

from __future__ import annotations

import fcntl
import os
from datetime import date
from pathlib import Path

import pytest
from helpers import count, db, server_flags, server_uids
from servers import simple_message

from mailtix.config import load
from mailtix.runner import run
from mailtix.store import Store


class Crash(BaseException):
    """A power cut: not an Exception, which the runner records against the account."""


def _store() -> Store:
    return Store.open(Path(os.environ["MAILTIX_DATA"]))


def test_rerun_fetches_nothing_new_and_marks_seen(dovecot, mailbox_account, cli):
    user, _ = mailbox_account()
    for i in range(3):
        dovecot.deliver(user, simple_message(subject=f"Request {i}"))
    first = cli("run")
    assert first.exit_code == 0 and "3 new message(s), 3 new ticket(s)" in first.stdout
    assert all("\\Seen" in f for f in server_flags(dovecot, user).values())
    second = cli("run")
    assert "0 new message(s)" in second.stdout
    dovecot.deliver(user, simple_message(subject="Request 3"))
    third = cli("run")
    assert "1 new message(s)" in third.stdout
    assert count("SELECT COUNT(*) FROM tickets") == 4


def test_mail_read_elsewhere_is_still_fetched(dovecot, mailbox_account, cli):
    """'New' means a new UID, not unseen: a mail read in another client is not skipped."""
    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message(subject="read by a colleague"))
    client = dovecot.imap_client(user)
    client.select("INBOX")
    client.store("1", "+FLAGS", "\\Seen")
    client.logout()
    assert "1 new message(s)" in cli("run").stdout


def test_unseen_mode_skips_seen_mail(dovecot, mailbox_account, cli):
    user, _ = mailbox_account(extra='select = "unseen"')
    dovecot.deliver(user, simple_message(subject="read already"))
    dovecot.deliver(user, simple_message(subject="still unread"))
    client = dovecot.imap_client(user)
    client.select("INBOX")
    client.uid("STORE", "1", "+FLAGS", "(\\Seen)")
    client.logout()
    assert "1 new message(s)" in cli("run").stdout
    assert count("SELECT COUNT(*) FROM messages WHERE subject = 'still unread'") == 1


def test_crash_after_commit_loses_and_duplicates_nothing(dovecot, mailbox_account):
    user, _ = mailbox_account()
    for i in range(5):
        dovecot.deliver(user, simple_message(subject=f"crash {i}"))
    config = load()
    store = _store()

    def crash(stage, outcomes):
        raise Crash(stage)

    with pytest.raises(Crash):
        run(config, store, on_chunk=crash)
    # Stored, but the server action never ran: the mail is still unseen there.
    assert count("SELECT COUNT(*) FROM messages") == 5
    assert not any("\\Seen" in f for f in server_flags(dovecot, user).values())
    assert count("SELECT COUNT(*) FROM pending_actions") == 5
    report = run(config, store)
    assert report.accounts[0].fetched == 0
    assert count("SELECT COUNT(*) FROM messages") == 5
    assert all("\\Seen" in f for f in server_flags(dovecot, user).values())
    assert count("SELECT COUNT(*) FROM pending_actions") == 0
    store.close()


def test_crash_before_commit_refetches_everything(dovecot, mailbox_account, monkeypatch):
    user, _ = mailbox_account()
    for i in range(4):
        dovecot.deliver(user, simple_message(subject=f"before {i}"))
    config = load()
    store = _store()
    from mailtix import ingest

    real = ingest.store_message
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Crash("power cut while storing")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "store_message", flaky)
    with pytest.raises(Crash):
        run(config, store)
    assert count("SELECT COUNT(*) FROM messages") == 0, "the chunk's transaction rolled back"
    assert not any("\\Seen" in f for f in server_flags(dovecot, user).values())
    monkeypatch.setattr(ingest, "store_message", real)
    report = run(config, store)
    assert report.accounts[0].fetched == 4
    assert count("SELECT COUNT(*) FROM messages") == 4
    store.close()


def test_uidvalidity_change_rescans_without_duplicates(dovecot, mailbox_account, cli):
    user, _ = mailbox_account()
    for i in range(3):
        dovecot.deliver(user, simple_message(subject=f"validity {i}"))
    assert "3 new message(s)" in cli("run").stdout
    before = server_uids(dovecot, user)
    dovecot.reset_uidvalidity(user)
    dovecot.deliver(user, simple_message(subject="validity new"))
    assert len(server_uids(dovecot, user)) == 4 and before == [1, 2, 3]
    result = cli("run")
    assert result.exit_code == 0
    assert "1 new message(s)" in result.stdout and "3 duplicate(s)" in result.stdout
    assert count("SELECT COUNT(*) FROM messages") == 4
    assert count("SELECT COUNT(*) FROM tickets") == 4
    assert count("SELECT COUNT(DISTINCT uidvalidity) FROM message_sources") == 2


def test_post_fetch_delete_expunges_once(dovecot, mailbox_account, cli):
    user, _ = mailbox_account(extra='post_fetch = "delete"')
    for i in range(3):
        dovecot.deliver(user, simple_message(subject=f"delete {i}"))
    assert cli("run").exit_code == 0
    assert server_uids(dovecot, user) == []
    assert count("SELECT COUNT(*) FROM messages") == 3


def test_post_fetch_move_creates_the_folder(dovecot, mailbox_account, cli):
    user, _ = mailbox_account(extra='post_fetch = "move"\nmove_to = "Done/Imported"')
    for i in range(2):
        dovecot.deliver(user, simple_message(subject=f"move {i}"))
    assert cli("run").exit_code == 0
    assert server_uids(dovecot, user) == []
    assert len(server_uids(dovecot, user, "Done/Imported")) == 2


def test_post_fetch_none_leaves_mail_untouched(dovecot, mailbox_account, cli):
    user, _ = mailbox_account(extra='post_fetch = "none"')
    dovecot.deliver(user, simple_message(subject="untouched"))
    assert cli("run").exit_code == 0
    assert server_flags(dovecot, user) == {1: ""}
    assert "0 new message(s)" in cli("run").stdout


def test_since_skips_older_mail(dovecot, mailbox_account, cli):
    user, _ = mailbox_account(extra=f"since = {date(2026, 11, 1).isoformat()}")
    old = dovecot.deliver(user, simple_message(subject="old mail"), mtime=1_600_000_000)
    assert old.exists()
    dovecot.deliver(user, simple_message(subject="new mail"))
    assert "1 new message(s)" in cli("run").stdout
    assert count("SELECT COUNT(*) FROM messages WHERE subject = 'old mail'") == 0
    assert "0 new message(s)" in cli("run").stdout


def test_baseline_records_existing_mail_without_importing(dovecot, mailbox_account, cli):
    user, _ = mailbox_account()
    for i in range(4):
        dovecot.deliver(user, simple_message(subject=f"years old {i}"))
    result = cli("account", "baseline", "support")
    assert result.exit_code == 0 and "4 message(s) recorded as seen" in result.stdout
    dovecot.deliver(user, simple_message(subject="after baseline"))
    assert "1 new message(s)" in cli("run").stdout
    assert count("SELECT COUNT(*) FROM messages") == 1


def test_second_run_exits_zero_while_locked(dovecot, mailbox_account, cli, tmp_path):
    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message())
    data = Path(os.environ["MAILTIX_DATA"])
    data.mkdir(parents=True, exist_ok=True)
    fd = os.open(data / "run.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        result = cli("run")
        assert result.exit_code == 0
        assert "another mailtix run is active" in result.stdout
        assert not (data / "mailtix.sqlite3").exists() or count(
            "SELECT COUNT(*) FROM messages") == 0
    finally:
        os.close(fd)
    assert "1 new message(s)" in cli("run").stdout


def test_broken_account_does_not_stop_the_others(dovecot, mailbox_account, cli, monkeypatch):
    user, _ = mailbox_account("good")
    mailbox_account("bad")
    monkeypatch.setenv("MAILTIX_PASSWORD_BAD", "wrong-password")
    dovecot.deliver(user, simple_message(subject="for the good one"))
    result = cli("run")
    assert result.exit_code == 6, "partial failure"
    assert "good: 1 new message(s)" in result.stdout
    assert "account bad:" in result.stderr and "refused" in result.stderr
    assert "wrong-password" not in result.stdout + result.stderr
    with db() as conn:
        bad = conn.execute("SELECT * FROM account_state WHERE account = 'bad'").fetchone()
    assert bad["failures"] == 1 and bad["backoff_until"] and "refused" in bad["last_error"]
    # Backed off: the next run skips it and does not alert again.
    again = cli("run")
    assert again.exit_code == 0 and "bad: skipped, backing off" in again.stdout
    # Naming it explicitly retries at once.
    assert cli("run", "--account", "bad").exit_code == 4


def test_unreachable_server_is_a_network_failure(cfgdir, cli, monkeypatch):
    from conftest import write_config
    from servers import free_port

    write_config(cfgdir, f'[accounts.x]\nemail = "x@example.com"\n[accounts.x.fetch]\n'
                         f'host = "127.0.0.1"\nport = {free_port()}\ntls = "none"\ntimeout = 2\n')
    monkeypatch.setenv("MAILTIX_PASSWORD_X", "pw")
    result = cli("run", "--quiet")
    assert result.exit_code == 5
    assert result.stdout == ""
    assert "connection refused" in result.stderr


def test_quiet_prints_nothing_on_success(dovecot, mailbox_account, cli):
    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message())
    result = cli("run", "--quiet")
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    assert count("SELECT COUNT(*) FROM messages") == 1


def test_run_json_report(dovecot, mailbox_account, cli):
    import json

    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message())
    data = json.loads(cli("run", "--json").stdout)
    assert data["ok"] is True
    assert data["accounts"][0]["account"] == "support"
    assert data["accounts"][0]["fetched"] == 1


def test_status_reports_health_and_alerts(dovecot, mailbox_account, cli, monkeypatch, cfgdir):
    import json

    user, _ = mailbox_account("good", general="alert_after = 0")
    mailbox_account("bad")
    monkeypatch.setenv("MAILTIX_PASSWORD_BAD", "wrong")
    dovecot.deliver(user, simple_message(subject="one"))
    cli("run")
    result = cli("status", "--json")
    assert result.exit_code == 6, "bad has been failing longer than alert_after = 0"
    data = json.loads(result.stdout)
    accounts = {a["account"]: a for a in data["accounts"]}
    assert accounts["good"]["fetched_total"] == 1 and accounts["good"]["failures"] == 0
    assert accounts["bad"]["failures"] == 1 and "refused" in accounts["bad"]["last_error"]
    assert data["tickets_by_status"] == {"new": 1} and data["alert"] == ["bad"]
    human = cli("status")
    assert "ALERT" in human.output and "good" in human.stdout  # piped: the alert on stderr


def test_data_and_config_dirs_are_private(mailbox_account, cli, tmp_path):
    mailbox_account()
    cli("run")
    data = Path(os.environ["MAILTIX_DATA"])
    assert oct(data.stat().st_mode & 0o777) == "0o700"
    assert oct((data / "mailtix.sqlite3").stat().st_mode & 0o777) == "0o600"
    assert cli("account", "add", "x", "--email", "x@example.com").exit_code == 0
    assert oct((tmp_path / "cfg" / "accounts.d").stat().st_mode & 0o777) == "0o700"
