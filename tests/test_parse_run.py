"""Hostile mail over IMAP (Dovecot): `mailtix run` stores every message raw and byte-exact,
flags the hostile ones with the reason, and goes on with the rest (issue 16 item 1)."""

from __future__ import annotations

from email.message import EmailMessage

from helpers import count, db, server_bodies

from mailtix.mail import parse as parse_module


def normal(subject: str, sender: str = "customer@example.org") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg.set_content("Hello, please help.")
    return msg.as_bytes()


HEAD = b"From: Attacker <attacker@example.org>\r\nTo: support@example.com\r\n"
HOSTILE = {
    "html": HEAD + b"Subject: html\r\nContent-Type: text/html\r\n\r\n" + b"<a" * 500_000,
    "params": HEAD + b"Subject: params\r\nContent-Type: text/plain" + b"; a=b" * 400_000
    + b"\r\n\r\nbody\r\n",
    "words": HEAD + b"Subject: " + b"=?x-bogus?q?a?= " * 100_000 + b"\r\n\r\nbody\r\n",
    "parens": b"From: attacker@example.org\r\nSubject: parens\r\nTo: " + b"(" * 100_000
    + b"\r\n\r\nbody\r\n",
    "spoof": b"From: =?utf-8?q?victim=40example=2Eorg_=3Cvictim=40example=2Eorg=3E?= "
    b"<real@sender.example>\r\nSubject: spoof\r\n\r\nbody\r\n",
    "parts": HEAD + b"Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    + b"--b\r\n\r\nx\r\n" * 10_050 + b"--b--\r\n",
}


def stored(user: str, dovecot) -> dict[bytes, dict]:
    """Per raw message on the server: its stored row."""
    served = server_bodies(dovecot, user)
    with db() as conn:
        rows = conn.execute(
            "SELECT s.uid, m.subject, m.from_addr, m.malformed, m.parse_error, m.ticket_id, "
            "r.data FROM message_sources s JOIN messages m ON m.id = s.message_id "
            "JOIN raw_messages r ON r.sha256 = m.raw_sha256").fetchall()
    out = {}
    for row in rows:
        assert bytes(row["data"]) == served[row["uid"]], "raw bytes differ"
        out[served[row["uid"]]] = dict(row)
    assert len(out) == len(served), "a message was lost"
    return out


def test_hostile_mail_is_stored_flagged_and_the_run_goes_on(dovecot, mailbox_account, cli):
    user, _ = mailbox_account()
    dovecot.deliver(user, normal("before"))
    for raw in HOSTILE.values():
        dovecot.deliver(user, raw)
    dovecot.deliver(user, normal("after"))
    result = cli("run")
    assert result.exit_code == 0, result.stdout + result.stderr
    rows = {r["subject"][:20]: r for r in stored(user, dovecot).values()}
    assert {"before", "after", "html", "params", "parens", "spoof", "parts"} <= set(rows)
    assert not rows["before"]["malformed"] and not rows["after"]["malformed"]
    assert not rows["html"]["malformed"] and rows["html"]["ticket_id"] is not None
    assert "Content-Type" in rows["params"]["parse_error"]
    assert "MIME parts" in rows["parts"]["parse_error"]
    assert rows["parts"]["from_addr"] == "attacker@example.org"
    assert rows["spoof"]["from_addr"] == "real@sender.example"
    assert rows["parens"]["from_addr"] == "attacker@example.org"
    # Every one is findable: on a ticket (all have a sender here).
    assert count("SELECT COUNT(*) FROM messages WHERE ticket_id IS NULL") == 0


def test_a_message_over_the_parse_budget_is_stored_raw_and_flagged(dovecot, mailbox_account,
                                                                   cli, monkeypatch):
    """A budget of 0 s: every message runs out of it at the first check."""
    user, _ = mailbox_account()
    monkeypatch.setattr(parse_module, "PARSE_BUDGET", 0.0)
    for i in range(3):
        dovecot.deliver(user, normal(f"budget {i}"))
    result = cli("run")
    assert result.exit_code == 0, result.stdout + result.stderr
    rows = list(stored(user, dovecot).values())
    assert len(rows) == 3
    for row in rows:
        assert row["malformed"] and "parse budget" in row["parse_error"]
        # The header block is still read: threaded and on a ticket, not lost in quarantine.
        assert row["from_addr"] == "customer@example.org" and row["ticket_id"] is not None
