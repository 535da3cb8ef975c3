"""Post-fetch server actions against Dovecot: others' \\Deleted mail is never expunged, a move
the server refuses never holds up the fetch, the hierarchy separator of the server is used,
and a backup-only account stays read-only."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from conftest import write_config
from helpers import count, server_flags, server_uids
from servers import Dovecot, simple_message

# Dovecot as some servers are set up: '.' between levels, and neither UIDPLUS nor MOVE.
PLAIN_CAPS = "IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE"


@pytest.fixture(scope="module")
def dovecot_dot(tls):
    server = Dovecot(Path(tempfile.mkdtemp(prefix="mailtix-dovecot-dot-")), tls,
                     separator=".", capabilities=PLAIN_CAPS).start()
    yield server
    server.stop()


def account_on(server: Dovecot, cfgdir: Path, monkeypatch, extra: str = "",
               name: str = "support") -> str:
    user, password = server.new_user()
    write_config(cfgdir, f'[accounts.{name}]\nemail = "{user}@example.com"\n{extra}\n'
                         f'[accounts.{name}.fetch]\nprotocol = "imap"\nhost = "127.0.0.1"\n'
                         f'port = {server.imap}\ntls = "none"\nuser = "{user}"\n')
    monkeypatch.setenv(f"MAILTIX_PASSWORD_{name.upper()}", password)
    return user


def flag_elsewhere(server: Dovecot, user: str, uid: int, flags: str) -> None:
    """Another mail client (a person's) sets flags and does not expunge."""
    client = server.imap_client(user)
    client.select("INBOX")
    client.uid("STORE", str(uid), "+FLAGS", f"({flags})")
    client.logout()


@pytest.mark.parametrize("action", ["delete", "move"])
def test_others_deleted_mail_is_not_expunged(dovecot, mailbox_account, cli, action):
    """Dovecot announces UIDPLUS and MOVE only after login."""
    extra = f'post_fetch = "{action}"\nselect = "unseen"\nmove_to = "Done"'
    user, _ = mailbox_account(extra=extra)
    dovecot.deliver(user, simple_message(subject="kept by a colleague"))
    dovecot.deliver(user, simple_message(subject="for the desk"))
    flag_elsewhere(dovecot, user, 1, "\\Seen \\Deleted")
    assert cli("run").exit_code == 0
    assert count("SELECT COUNT(*) FROM messages") == 1
    assert server_uids(dovecot, user) == [1], "ours is gone, the colleague's stays"
    if action == "move":
        assert len(server_uids(dovecot, user, "Done")) == 1


def test_without_uidplus_ours_stay_flagged_while_others_are(dovecot_dot, cfgdir, cli,
                                                            monkeypatch):
    user = account_on(dovecot_dot, cfgdir, monkeypatch,
                      'post_fetch = "delete"\nselect = "unseen"')
    dovecot_dot.deliver(user, simple_message(subject="kept by a colleague"))
    dovecot_dot.deliver(user, simple_message(subject="for the desk"))
    flag_elsewhere(dovecot_dot, user, 1, "\\Seen \\Deleted")
    assert cli("run").exit_code == 0
    assert server_uids(dovecot_dot, user) == [1, 2], "no EXPUNGE while uid 1 is flagged"
    assert "\\Deleted" in server_flags(dovecot_dot, user)[2]
    status = json.loads(cli("status", "--json").stdout)
    waiting = [a for a in status["server_actions"] if a["state"] == "waiting"]
    assert waiting and waiting[0]["count"] == 1
    assert "UIDPLUS" in cli("status", "--format", "table").stdout
    # The colleague changes their mind: now only ours is flagged, and the next run expunges.
    client = dovecot_dot.imap_client(user)
    client.select("INBOX")
    client.uid("STORE", "1", "-FLAGS", "(\\Deleted)")
    client.logout()
    assert cli("run").exit_code == 0
    assert server_uids(dovecot_dot, user) == [1]
    assert count("SELECT COUNT(*) FROM pending_actions") == 0


def test_move_uses_the_servers_hierarchy_separator(dovecot_dot, cfgdir, cli, monkeypatch):
    user = account_on(dovecot_dot, cfgdir, monkeypatch,
                      'post_fetch = "move"\nmove_to = "Processed/Tickets"')
    for i in range(2):
        dovecot_dot.deliver(user, simple_message(subject=f"move {i}"))
    result = cli("run")
    assert result.exit_code == 0 and result.stderr == "", result.stderr
    assert server_uids(dovecot_dot, user) == []
    assert len(server_uids(dovecot_dot, user, "Processed.Tickets")) == 2
    assert count("SELECT COUNT(*) FROM pending_actions") == 0


def test_account_test_checks_move_to(dovecot_dot, cfgdir, cli, monkeypatch):
    account_on(dovecot_dot, cfgdir, monkeypatch,
               'post_fetch = "move"\nmove_to = "Processed/Tickets"')
    result = cli("account", "test", "support", "--json")
    steps = {s["name"]: s for s in json.loads(result.stdout)["steps"]}
    move = next(s for name, s in steps.items() if "move_to" in name)
    assert move["ok"] and "Processed.Tickets" in move["detail"]
    bad = "x" * 300
    account_on(dovecot_dot, cfgdir, monkeypatch, f'post_fetch = "move"\nmove_to = "{bad}"',
               name="other")
    result = cli("account", "test", "other")
    assert result.exit_code != 0
    assert "move_to" in result.stdout


def test_a_refused_move_never_holds_up_the_fetch(dovecot, mailbox_account, cli, cfgdir):
    """Retried a few runs, then parked; `actions retry` after the fix, or `actions drop`."""
    user, _ = mailbox_account(extra=f'post_fetch = "move"\nmove_to = "{"x" * 300}"')
    dovecot.deliver(user, simple_message(subject="first"))
    first = cli("run")
    assert first.exit_code == 0 and "1 new message(s)" in first.stdout
    assert "move" in first.stderr and "tried again" in first.stderr
    for i in range(3):
        dovecot.deliver(user, simple_message(subject=f"later {i}"))
        assert "1 new message(s)" in cli("run").stdout, "the fetch goes on"
    assert count("SELECT COUNT(*) FROM messages") == 4
    assert count("SELECT COUNT(*) FROM pending_actions WHERE state = 'parked'") >= 1
    status = cli("status", "--format", "table")
    assert "parked" in status.stdout and "mailtix actions retry" in status.stdout
    assert "server action parked" in cli("log").stdout
    assert "parked" in cli("actions", "list").stdout
    # The admin fixes the config; the parked moves go to the new folder.
    config = (cfgdir / "config.toml").read_text().replace("x" * 300, "Processed")
    (cfgdir / "config.toml").write_text(config)
    assert cli("actions", "retry", "support").exit_code == 0
    assert cli("run").exit_code == 0
    assert server_uids(dovecot, user) == []
    assert len(server_uids(dovecot, user, "Processed")) == 4
    assert count("SELECT COUNT(*) FROM pending_actions") == 0


def test_parked_actions_can_be_dropped(dovecot, mailbox_account, cli):
    user, _ = mailbox_account(extra=f'post_fetch = "move"\nmove_to = "{"y" * 300}"')
    dovecot.deliver(user, simple_message(subject="stays"))
    for _ in range(3):
        cli("run", "--account", "support")
    assert count("SELECT COUNT(*) FROM pending_actions WHERE state = 'parked'") == 1
    result = cli("actions", "drop", "support")
    assert result.exit_code == 0 and "1" in result.stdout
    assert count("SELECT COUNT(*) FROM pending_actions") == 0
    assert server_uids(dovecot, user) == [1]


def test_backup_only_account_is_read_only(dovecot, mailbox_account, cli):
    user, _ = mailbox_account(extra='[accounts.support.tickets]\nenabled = false\n'
                                    '[accounts.support.archive]\nenabled = true\n')
    dovecot.deliver(user, simple_message(subject="the employee's new mail"))
    dovecot.deliver(user, simple_message(subject="another"))
    result = cli("run", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["accounts"][0]["archived"] == 2
    flags = {uid: f.replace("\\Recent", "").strip()  # EXAMINE leaves \Recent for others
             for uid, f in server_flags(dovecot, user).items()}
    assert flags == {1: "", 2: ""}, "no \\Seen, no flag at all"
    assert count("SELECT COUNT(*) FROM messages") == 0, "not fetched for tickets"
    assert count("SELECT COUNT(*) FROM archive_messages") == 2
    assert count("SELECT COUNT(*) FROM pending_actions") == 0
