"""IMAP behind the source interface, against Dovecot: the contract (STYLE 12) as the POP3 and
local sources meet it, reading with BODY.PEEK (nothing turns \\Seen before the commit), and
actions by UID that leave other clients' \\Deleted mail alone."""

from __future__ import annotations

import pytest
from helpers import server_flags, server_uids
from servers import simple_message

from mailtix.sources import Action

RAWS = [simple_message(f"imap {i}") for i in range(3)]


@pytest.fixture
def imap(dovecot):
    """(user, a fresh source on its INBOX with three messages); logged out afterwards."""
    from imap_tools import MailBoxUnencrypted

    from mailtix.sources.imap import ImapSource

    user, _ = dovecot.new_user()
    for raw in RAWS:
        dovecot.deliver(user, raw)
    mailbox = MailBoxUnencrypted("127.0.0.1", dovecot.imap, timeout=10)
    mailbox.login(user, dovecot.users[user], initial_folder=None)
    yield user, ImapSource(mailbox, ("INBOX",), host="127.0.0.1")
    mailbox.logout()


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_reads_every_message_byte_exact_without_setting_seen(dovecot, imap):
    user, src = imap
    items = list(src.items())  # listed first, read afterwards: a reader needs no listing state
    assert sorted(item.read() for item in items) == sorted(crlf(r) for r in RAWS)
    assert [item.size for item in items] == [len(item.read()) for item in items]
    assert all("\\Seen" not in flags for flags in server_flags(dovecot, user).values())


def test_keys_are_unique_and_stable(imap):
    _user, src = imap
    first = [item.key for item in src.items()]
    assert len(set(first)) == len(first) == 3
    assert all(k.folder == "INBOX" and k.uidvalidity > 0 and k.uid > 0 for k in first)
    assert [item.key for item in src.items()] == first


def test_act_is_idempotent_and_keeps_keys(dovecot, imap):
    user, src = imap
    keys = [item.key for item in src.items()]
    actions = [Action(k, "seen") for k in keys]
    assert src.act(actions) == actions
    assert src.act(actions) == actions  # a replay after a crash is harmless
    assert [item.key for item in src.items()] == keys
    assert all("\\Seen" in flags for flags in server_flags(dovecot, user).values())


def test_new_uids_asks_only_above_the_last_one(imap):
    _user, src = imap
    keys = [item.key for item in src.items()]
    src.select("INBOX")
    assert src.new_uids(keys[0].uid) == [k.uid for k in keys[1:]]
    assert src.new_uids(keys[-1].uid) == []


def test_delete_and_move_leave_other_clients_mail_alone(dovecot, imap):
    user, src = imap
    keys = [item.key for item in src.items()]
    client = dovecot.imap_client(user)
    client.select("INBOX")
    client.uid("STORE", str(keys[2].uid), "+FLAGS.SILENT", r"(\Deleted)")  # another client's
    client.logout()
    assert src.act([Action(keys[0], "delete")]) == [Action(keys[0], "delete")]
    moved = Action(keys[1], "move", "Done/2026")
    assert src.act([moved]) == [moved]
    assert not src.errors and not src.waiting
    assert server_uids(dovecot, user) == [keys[2].uid], "UID EXPUNGE spared the foreign one"
    assert len(server_uids(dovecot, user, "Done/2026")) == 1


def test_a_refused_action_is_reported_not_raised(imap):
    _user, src = imap
    key = next(src.items()).key
    assert src.act([Action(key, "move", "")]) == []
    assert list(src.errors) == [("INBOX", "move", "")]


def test_a_run_with_no_news_imports_no_parsing_nor_ingest(dovecot, mailbox_account, cli):
    import os
    import subprocess
    import sys
    from pathlib import Path

    user, _ = mailbox_account()
    dovecot.deliver(user, RAWS[0])
    assert cli("run").exit_code == 0
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "mailtix", "run",
                           "--quiet"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "mailtix.sources.imap" in imported, "the IMAP source was asked"
    assert not {"mailtix.ingest", "mailtix.mail.parse"} & imported
