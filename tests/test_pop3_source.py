"""POP3 behind the source interface, against Dovecot: the contract, DELE only for stored
mail and again after a QUIT that never came, `since` settling old mail for good."""

from __future__ import annotations

import poplib

from helpers import count, server_uids
from servers import simple_message

from mailtix.sources import Action


def pop3_client(dovecot, user: str) -> poplib.POP3:
    client = poplib.POP3("127.0.0.1", dovecot.pop3, timeout=10)
    client.user(user)
    client.pass_(dovecot.users[user])
    return client


def test_contract(dovecot):
    from mailtix.sources.pop3 import Pop3Source

    user, _ = dovecot.new_user()
    raws = [simple_message(f"pop {i}") for i in range(3)]
    for raw in raws:
        dovecot.deliver(user, raw)
    client = pop3_client(dovecot, user)
    try:
        src = Pop3Source(client)
        items = list(src.items())
        assert len({i.key.uidl for i in items}) == 3
        assert [i.key for i in src.items()] == [i.key for i in items]
        assert sorted(i.read().replace(b"\r\n", b"\n") for i in items) == sorted(
            r.replace(b"\r\n", b"\n") for r in raws)
        assert src.act([Action(items[0].key, "delete")]) == [Action(items[0].key, "delete")]
    finally:
        client.quit()
    assert len(server_uids(dovecot, user)) == 2


def test_delete_only_stored_mail_and_again_after_a_lost_quit(dovecot, mailbox_account, cli,
                                                            monkeypatch):
    from mailtix import runner

    user, _ = mailbox_account(protocol="pop3", extra='post_fetch = "delete"\n'
                                                    'since = 2026-06-01')
    dovecot.deliver(user, simple_message("too old", Date="Mon, 01 Jan 2024 10:00:00 +0000"))
    dovecot.deliver(user, simple_message("for the desk"))
    real_close = runner._close
    monkeypatch.setattr(runner, "_close", lambda fn: None)  # the connection dies before QUIT
    first = cli("run")
    assert first.exit_code == 0, first.stdout + first.stderr
    assert count("SELECT COUNT(*) FROM messages") == 1
    assert len(server_uids(dovecot, user)) == 2, "no QUIT, so no DELE took effect"
    monkeypatch.setattr(runner, "_close", real_close)
    result = cli("run")
    assert result.exit_code == 0 and "0 new message(s)" in result.stdout
    # Ours is deleted now; the one `since` left alone stays, and is not read again.
    assert len(server_uids(dovecot, user)) == 1
    assert count("SELECT COUNT(*) FROM messages") == 1
    assert "0 new message(s)" in cli("run").stdout
