"""Threading and routing of fetched mail, through Dovecot and `mailtix run`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import count, db
from servers import simple_message

from mailtix.store import Store, messages, tickets

pytestmark = pytest.mark.usefixtures("backend")  # on both store backends


def ticket_of(message_id: str) -> str:
    with db() as conn:
        row = conn.execute("SELECT t.number FROM messages m JOIN tickets t ON t.id = m.ticket_id "
                           "WHERE m.message_id = ?", (message_id,)).fetchone()
    return row[0] if row else ""


def test_in_reply_to_threads_into_the_ticket(dovecot, mailbox_account, cli):
    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message(subject="Printer broken", message_id="<a1@x.org>"))
    cli("run")
    dovecot.deliver(user, simple_message(subject="Re: Printer broken", message_id="<a2@x.org>",
                                         In_Reply_To="<a1@x.org>"))
    result = cli("run")
    assert "1 threaded" in result.stdout
    assert ticket_of("<a1@x.org>") == ticket_of("<a2@x.org>") != ""
    assert count("SELECT COUNT(*) FROM tickets") == 1


def test_references_only_threads(dovecot, mailbox_account, cli):
    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message(subject="Order 17", message_id="<b1@x.org>"))
    cli("run")
    dovecot.deliver(user, simple_message(subject="different subject entirely",
                                         message_id="<b2@x.org>",
                                         References="<zz@elsewhere> <b1@x.org>"))
    cli("run")
    assert ticket_of("<b2@x.org>") == ticket_of("<b1@x.org>")


def test_subject_tag_threads_only_into_existing_tickets(dovecot, mailbox_account, cli):
    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message(subject="Invoice question", message_id="<c1@x.org>"))
    cli("run")
    number = ticket_of("<c1@x.org>")
    dovecot.deliver(user, simple_message(subject=f"AW: [Ticket#{number}] Invoice question",
                                         message_id="<c2@x.org>"))
    dovecot.deliver(user, simple_message(subject="Re: [Ticket#209901010001] made up",
                                         message_id="<c3@x.org>"))
    cli("run")
    assert ticket_of("<c2@x.org>") == number
    assert ticket_of("<c3@x.org>") not in ("", number), "unknown tag: a new ticket"
    assert count("SELECT COUNT(*) FROM tickets") == 2


def test_same_subject_alone_never_threads(dovecot, mailbox_account, cli):
    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message(subject="Help", message_id="<d1@x.org>"))
    dovecot.deliver(user, simple_message(subject="Help", message_id="<d2@x.org>"))
    cli("run")
    assert ticket_of("<d1@x.org>") != ticket_of("<d2@x.org>")


def test_reply_to_our_outgoing_message_id(dovecot, mailbox_account, cli):
    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message(subject="Quote please", message_id="<e1@x.org>"))
    cli("run")
    store = Store.open(Path(os.environ["MAILTIX_DATA"]))
    with store.tx() as conn:
        ticket = tickets.by_number(conn, ticket_of("<e1@x.org>"))
        messages.insert(conn, ticket_id=ticket["id"], account="support", direction="out",
                        message_id="<our.reply.1@example.com>", subject="Your quote")
    store.close()
    dovecot.deliver(user, simple_message(subject="Thanks!", message_id="<e2@x.org>",
                                         In_Reply_To="<our.reply.1@example.com>"))
    cli("run")
    assert ticket_of("<e2@x.org>") == ticket_of("<e1@x.org>")


def test_reply_reopens_a_closed_ticket(dovecot, mailbox_account, cli):
    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message(subject="Done?", message_id="<f1@x.org>"))
    cli("run")
    with db() as conn:
        conn.execute("UPDATE tickets SET status = 'closed'")
    dovecot.deliver(user, simple_message(subject="Re: Done?", message_id="<f2@x.org>",
                                         In_Reply_To="<f1@x.org>"))
    cli("run")
    with db() as conn:
        assert conn.execute("SELECT status FROM tickets").fetchone()[0] == "open"
        assert conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'status'").fetchone()[0]


def test_same_mail_in_two_accounts_is_one_message(dovecot, mailbox_account, cli):
    first, _ = mailbox_account("sales")
    second, _ = mailbox_account("info")
    mail = simple_message(subject="To both of you", message_id="<g1@x.org>",
                          to="sales@example.com, info@example.com")
    dovecot.deliver(first, b"Delivered-To: sales@example.com\r\n" + mail)
    dovecot.deliver(second, b"Delivered-To: info@example.com\r\n" + mail)
    result = cli("run")
    assert result.exit_code == 0, result.stderr
    assert count("SELECT COUNT(*) FROM messages") == 1
    assert count("SELECT COUNT(*) FROM message_sources") == 2
    assert count("SELECT COUNT(*) FROM tickets") == 1


def test_routing_rules_and_group_watchers(dovecot, mailbox_account, cli):
    user, _ = mailbox_account(extra='group = ["ann", "bob"]\n'
                                    '[accounts.support.tickets]\nqueue = "firstlevel"\n'
                                    '[[accounts.support.rules]]\nsubject = "*invoice*"\n'
                                    'queue = "billing"\npriority = "high"\ntags = ["money"]\n'
                                    '[[accounts.support.rules]]\nfrom = "*@vip.example"\n'
                                    'assignee = "bob"\n')
    cfg = Path(os.environ["MAILTIX_CONFIG"])
    cfg.write_text(cfg.read_text() + '[agents.ann]\nname = "Ann"\n[agents.bob]\nname = "Bob"\n'
                   '[queues.firstlevel]\n[queues.billing]\nassignee = "ann"\n')
    dovecot.deliver(user, simple_message(subject="Your Invoice 42", message_id="<h1@x.org>"))
    dovecot.deliver(user, simple_message(subject="Hello", sender="boss@vip.example",
                                         message_id="<h2@x.org>"))
    result = cli("run")
    assert result.exit_code == 0, result.stderr
    with db() as conn:
        rows = {r["subject"]: r for r in conn.execute("SELECT * FROM tickets")}
        tags = [r[0] for r in conn.execute("SELECT tag FROM tags")]
        watchers = conn.execute("SELECT COUNT(*) FROM watchers").fetchone()[0]
    assert rows["Your Invoice 42"]["queue"] == "billing"
    assert rows["Your Invoice 42"]["priority"] == "high"
    assert rows["Your Invoice 42"]["assignee"] == "ann", "the queue's responsible agent"
    assert rows["Hello"]["queue"] == "firstlevel" and rows["Hello"]["assignee"] == "bob"
    assert tags == ["money"]
    assert watchers == 4


def test_flags_on_bounce_autoreply_list_and_spam(dovecot, mailbox_account, cli):
    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message(subject="Out of office", Auto_Submitted="auto-replied"))
    dovecot.deliver(user, simple_message(subject="Undelivered Mail Returned to Sender",
                                         sender="MAILER-DAEMON@mx.example.org"))
    dovecot.deliver(user, simple_message(subject="[list] news", List_Id="<news.example.org>"))
    dovecot.deliver(user, simple_message(subject="cheap pills", X_Spam_Flag="YES"))
    cli("run")
    with db() as conn:
        flags = {r["subject"]: r for r in conn.execute("SELECT * FROM messages")}
        spam_status = conn.execute("SELECT status FROM tickets WHERE subject = 'cheap pills'"
                                   ).fetchone()[0]
    assert flags["Out of office"]["auto_submitted"] == 1
    assert flags["Undelivered Mail Returned to Sender"]["bounce"] == 1
    assert flags["[list] news"]["list"] == 1
    assert flags["cheap pills"]["spam"] == 1 and spam_status == "spam"


def test_bounce_threads_by_the_returned_message_without_reopening(dovecot, mailbox_account, cli):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
    from demo import bounce, mail

    user, _ = mailbox_account()
    original = mail("Quote", "Jane <jane@customer.example>", "Please send a quote.")
    dovecot.deliver(user, original.as_bytes())
    cli("run")
    with db() as conn:
        conn.execute("UPDATE tickets SET status = 'closed'")
    dovecot.deliver(user, bounce(original).as_bytes())
    result = cli("run")
    assert "1 threaded" in result.stdout
    with db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 1
        assert conn.execute("SELECT status FROM tickets").fetchone()[0] == "closed"
        assert conn.execute("SELECT bounce FROM messages ORDER BY id DESC").fetchone()[0] == 1
