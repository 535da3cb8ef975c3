"""protocol = "maildir" accounts against a Maildir that Dovecot serves at the same time:
new/ and cur/ by file name, post_fetch done like a mail client after the commit (and seen
over IMAP), nothing read twice, an action owed after a crash done on the next run."""

from __future__ import annotations

import pytest
from conftest import write_config
from helpers import count, db, server_flags, server_uids
from servers import simple_message


def maildir_account(cfgdir, dovecot, user: str, extra: str = "") -> None:
    write_config(cfgdir, f'[accounts.local]\nemail = "{user}@example.com"\n{extra}\n'
                         f'[accounts.local.fetch]\nprotocol = "maildir"\n'
                         f'path = "{dovecot.maildir(user)}"\n')


def test_new_and_cur_stored_then_seen_over_imap(dovecot, cfgdir, cli):
    user, _ = dovecot.new_user()
    dovecot.deliver(user, simple_message("read by a person"))
    dovecot.deliver(user, simple_message("also read"))
    client = dovecot.imap_client(user)  # a person reads one in a mail client
    client.select("INBOX")  # a read-write SELECT moves new/ into cur/
    client.uid("STORE", "1", "+FLAGS", "(\\Seen)")
    client.logout()
    assert not list((dovecot.maildir(user) / "new").iterdir())
    assert any(":2,S" in p.name for p in (dovecot.maildir(user) / "cur").iterdir())
    dovecot.deliver(user, simple_message("still new"))
    maildir_account(cfgdir, dovecot, user)
    result = cli("run")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "3 new message(s)" in result.stdout
    flags = server_flags(dovecot, user)
    assert len(flags) == 3 and all("\\Seen" in f for f in flags.values()), flags
    assert not list((dovecot.maildir(user) / "new").iterdir())
    again = cli("run")
    assert "0 new message(s)" in again.stdout
    # A person marks one unread in their client: it is not fetched again, nor re-flagged.
    client = dovecot.imap_client(user)
    client.select("INBOX")
    client.uid("STORE", "1", "-FLAGS", "(\\Seen)")
    client.logout()
    assert "0 new message(s)" in cli("run").stdout
    assert "\\Seen" not in server_flags(dovecot, user)[1]
    assert count("SELECT COUNT(*) FROM messages") == 3
    assert count("SELECT COUNT(*) FROM message_sources WHERE uidl LIKE 'maildir:INBOX/%'") == 3


def test_post_fetch_move_and_delete(dovecot, cfgdir, cli):
    user, _ = dovecot.new_user()
    dovecot.deliver(user, simple_message("to be moved"))
    maildir_account(cfgdir, dovecot, user, 'post_fetch = "move"\nmove_to = "Done"')
    assert cli("run").exit_code == 0
    assert server_uids(dovecot, user) == []
    assert len(server_uids(dovecot, user, "Done")) == 1
    user2, _ = dovecot.new_user()
    dovecot.deliver(user2, simple_message("to be deleted"))
    maildir_account(cfgdir, dovecot, user2, 'post_fetch = "delete"')
    assert cli("run").exit_code == 0
    assert server_uids(dovecot, user2) == []
    assert count("SELECT COUNT(*) FROM messages WHERE subject = 'to be deleted'") == 1


def test_action_owed_after_a_crash_is_done_next_run(dovecot, cfgdir, cli, monkeypatch):
    from mailtix.sources.maildir import MaildirSource

    user, _ = dovecot.new_user()
    for i in range(3):
        dovecot.deliver(user, simple_message(f"crash {i}"))
    maildir_account(cfgdir, dovecot, user)
    real = MaildirSource.act

    def crash(self, actions):
        raise KeyboardInterrupt  # the process dies between the commit and the flagging

    monkeypatch.setattr(MaildirSource, "act", crash)
    with pytest.raises(KeyboardInterrupt):
        from mailtix.config import data_dir, load
        from mailtix.runner import fetch
        from mailtix.store import Store

        cfg = load()
        store = Store.open(data_dir(cfg))
        try:
            fetch(cfg, cfg.account("local"), store)
        finally:
            store.close()
    assert count("SELECT COUNT(*) FROM messages") == 3
    assert count("SELECT COUNT(*) FROM pending_actions") == 3
    assert not any("\\Seen" in f for f in server_flags(dovecot, user).values())
    monkeypatch.setattr(MaildirSource, "act", real)
    result = cli("run")
    assert result.exit_code == 0 and "0 new message(s)" in result.stdout
    assert all("\\Seen" in f for f in server_flags(dovecot, user).values())
    assert count("SELECT COUNT(*) FROM pending_actions") == 0
    assert count("SELECT COUNT(*) FROM messages") == 3


def test_missing_maildir_is_the_accounts_failure(cfgdir, cli, tmp_path):
    write_config(cfgdir, '[accounts.local]\nemail = "x@example.com"\n'
                         '[accounts.local.fetch]\nprotocol = "maildir"\n'
                         f'path = "{tmp_path}/nope"\n')
    result = cli("run")
    assert result.exit_code != 0
    assert "is not a Maildir" in result.stderr
    assert "Traceback" not in result.stderr


def test_maildir_config_needs_a_path(cfgdir, cli):
    write_config(cfgdir, '[accounts.local]\nemail = "x@example.com"\n'
                         '[accounts.local.fetch]\nprotocol = "maildir"\n')
    result = cli("config", "check")
    assert result.exit_code == 3
    assert "accounts.local.fetch.path" in result.stderr


def test_baseline_and_since_settle_old_mail(cfgdir, cli, tmp_path):
    from mailtix.sources.maildir import deliver

    box = tmp_path / "Maildir"
    deliver(box, simple_message("before the baseline"))
    write_config(cfgdir, '[accounts.local]\nemail = "x@example.com"\nsince = 2026-06-01\n'
                         f'[accounts.local.fetch]\nprotocol = "maildir"\npath = "{box}"\n')
    result = cli("account", "baseline", "local")
    assert result.exit_code == 0 and "1 message(s) recorded as seen" in result.stdout
    deliver(box, simple_message("too old", Date="Mon, 01 Jan 2024 10:00:00 +0000"))
    deliver(box, simple_message("new and recent"))
    result = cli("run")
    assert "1 new message(s)" in result.stdout, result.stdout
    assert count("SELECT COUNT(*) FROM messages") == 1
    assert "0 new message(s)" in cli("run").stdout
    # Left for what they are: seen only where stored.
    assert sum(":2,S" in p.name for p in (box / "cur").iterdir()) == 1
    assert len(list((box / "new").iterdir())) == 2


def test_account_test_checks_the_maildir(cfgdir, cli, tmp_path):
    from mailtix.sources.maildir import deliver

    box = tmp_path / "Maildir"
    deliver(box, simple_message())
    write_config(cfgdir, '[accounts.local]\nemail = "x@example.com"\n'
                         f'[accounts.local.fetch]\nprotocol = "maildir"\npath = "{box}"\n'
                         '[accounts.other]\nemail = "y@example.com"\n'
                         '[accounts.other.fetch]\nprotocol = "maildir"\n'
                         f'path = "{tmp_path}/missing"\n')
    ok = cli("account", "test", "local")
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert "1 message(s)" in ok.stdout
    bad = cli("account", "test", "other")
    assert bad.exit_code != 0 and "not a Maildir" in bad.stdout + bad.stderr


def test_archive_of_a_maildir_account_is_a_config_error(cfgdir, cli, tmp_path):
    write_config(cfgdir, '[accounts.local]\nemail = "x@example.com"\n'
                         '[accounts.local.archive]\nenabled = true\n'
                         f'[accounts.local.fetch]\nprotocol = "maildir"\npath = "{tmp_path}"\n')
    result = cli("config", "check")
    assert result.exit_code == 3 and "accounts.local.archive.enabled" in result.stderr



def test_a_refused_action_stays_owed_and_new_mail_still_comes_in(cfgdir, cli, tmp_path,
                                                                  monkeypatch):
    from mailtix.sources import maildir

    box = tmp_path / "Maildir"
    maildir.deliver(box, simple_message("first"))
    write_config(cfgdir, '[accounts.local]\nemail = "x@example.com"\n'
                         f'[accounts.local.fetch]\nprotocol = "maildir"\npath = "{box}"\n')
    real = maildir.add_flag

    def refused(path, flag):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(maildir, "add_flag", refused)  # a folder we may read but not rename in
    result = cli("run")
    assert result.exit_code == 0 and "1 new message(s)" in result.stdout
    assert count("SELECT COUNT(*) FROM pending_actions") == 1
    maildir.deliver(box, simple_message("second"))
    assert "1 new message(s)" in cli("run").stdout  # the owed action holds nothing up
    monkeypatch.setattr(maildir, "add_flag", real)
    assert "0 new message(s)" in cli("run").stdout
    assert count("SELECT COUNT(*) FROM pending_actions") == 0
    assert sorted(":2,S" in p.name for p in (box / "cur").iterdir()) == [True, True]


def test_an_action_refused_three_runs_is_parked_until_retry(cfgdir, cli, tmp_path,
                                                            monkeypatch):
    from mailtix.sources import maildir

    box = tmp_path / "Maildir"
    maildir.deliver(box, simple_message("stuck"))
    write_config(cfgdir, '[accounts.local]\nemail = "x@example.com"\n'
                         f'[accounts.local.fetch]\nprotocol = "maildir"\npath = "{box}"\n')
    real = maildir.add_flag

    def refused(path, flag):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(maildir, "add_flag", refused)
    for _ in range(3):
        assert cli("run").exit_code == 0
    with db() as conn:
        row = conn.execute("SELECT state, attempts, last_error FROM pending_actions").fetchone()
    assert row["state"] == "parked" and row["attempts"] == 3
    assert "Permission denied" in row["last_error"]
    assert "Permission denied" in cli("actions", "list").stdout
    monkeypatch.setattr(maildir, "add_flag", real)
    cli("run")
    assert count("SELECT COUNT(*) FROM pending_actions") == 1, "parked: not tried again"
    assert cli("actions", "retry", "local").exit_code == 0
    cli("run")
    assert count("SELECT COUNT(*) FROM pending_actions") == 0
    assert [":2,S" in p.name for p in (box / "cur").iterdir()] == [True]
