"""Per-recipient SMTP state against aiosmtpd refusing chosen recipients at RCPT: accepted ones
are done, 4xx ones retried alone with the same Message-ID, 5xx ones failed and visible."""

from __future__ import annotations

import email
import json
from email import policy

import pytest
from conftest import write_config
from helpers import db, only_ticket
from servers import simple_message

from mailtix.errors import ExitCode

pytestmark = pytest.mark.usefixtures("backend")  # on both store backends


@pytest.fixture
def helpdesk(dovecot, mailbox_account, smtp):
    user, _ = mailbox_account(
        extra='archive_bcc = "archive@example.com"\n'
              f'[accounts.support.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\ntls = "none"\n')
    return user


def _ticket(cli, dovecot, user) -> str:
    dovecot.deliver(user, simple_message(subject="Printer", sender="jane@customer.example"))
    assert cli("run").exit_code == 0
    return only_ticket(cli)


def _due_now() -> None:
    with db() as conn:
        conn.execute("UPDATE outbox SET next_attempt_at = '2000-01-01'")


def test_4xx_for_the_customer_while_the_archive_accepts_is_retried_to_her_alone(
        helpdesk, dovecot, smtp, cli):
    number = _ticket(cli, dovecot, helpdesk)
    smtp.handler.refuse = {"jane@customer.example": "451 4.7.1 greylisted, try again later"}
    first = cli("ticket", "reply", number, input="We are on it.\n")
    assert first.exit_code == ExitCode.TEMPFAIL, first.stdout
    assert [m["to"] for m in smtp.messages] == [["archive@example.com"]]
    row = json.loads(cli("outbox", "list", "--json").stdout)[0]
    assert row["state"] == "retry" and "jane@customer.example retry 451" in row["refused"]
    shown = json.loads(cli("outbox", "show", str(row["id"])).stdout)
    assert {r["rcpt"]: r["state"] for r in shown["recipients"]} == {
        "jane@customer.example": "retry", "archive@example.com": "sent"}
    smtp.handler.refuse = {}
    _due_now()
    assert "outbox: 1 sent" in cli("run").stdout
    assert [m["to"] for m in smtp.messages] == [["archive@example.com"],
                                                ["jane@customer.example"]]
    ids = {email.message_from_bytes(m["raw"], policy=policy.default)["Message-ID"]
           for m in smtp.messages}
    assert ids == {row["message_id"]}, "the retry carries the same Message-ID"
    assert json.loads(cli("outbox", "list", "--json").stdout)[0]["state"] == "sent"
    _due_now()
    cli("run")
    assert len(smtp.messages) == 2, "nobody gets it twice"


def test_5xx_for_the_customer_is_failed_and_visible(helpdesk, dovecot, smtp, cli):
    number = _ticket(cli, dovecot, helpdesk)
    smtp.handler.refuse = {"jane@customer.example": "550 5.1.1 no such user"}
    result = cli("ticket", "reply", number, input="We are on it.\n")
    assert result.exit_code == ExitCode.PARTIAL
    assert "jane@customer.example refused: 550 5.1.1 no such user" in result.stdout
    rows = json.loads(cli("outbox", "list", "--state", "partial", "--json").stdout)
    assert len(rows) == 1 and "jane@customer.example refused 550" in rows[0]["refused"]
    status = json.loads(cli("status", "--json").stdout)
    assert status["outbox"] == {"partial": 1}
    _due_now()
    cli("run")
    assert [m["to"] for m in smtp.messages] == [["archive@example.com"]], "no retry of a 5xx"
    # The admin had the address fixed on the far side: a retry on purpose reaches Jane only.
    smtp.handler.refuse = {}
    assert cli("outbox", "retry", str(rows[0]["id"])).exit_code == 0
    cli("run")
    assert [m["to"] for m in smtp.messages] == [["archive@example.com"],
                                                ["jane@customer.example"]]
    assert json.loads(cli("outbox", "list", "--json").stdout)[0]["state"] == "sent"


def test_all_recipients_4xx_then_one_5xx(helpdesk, dovecot, smtp, cli):
    number = _ticket(cli, dovecot, helpdesk)
    smtp.handler.refuse = {"jane@customer.example": "452 4.2.2 mailbox full",
                           "archive@example.com": "451 4.3.0 later"}
    assert cli("ticket", "reply", number, input="x\n").exit_code == ExitCode.TEMPFAIL
    assert smtp.messages == []
    smtp.handler.refuse = {"jane@customer.example": "550 5.2.1 mailbox disabled"}
    _due_now()
    cli("run")
    assert [m["to"] for m in smtp.messages] == [["archive@example.com"]]
    row = json.loads(cli("outbox", "list", "--json").stdout)[0]
    assert row["state"] == "partial" and "550" in row["refused"]


def test_send_cc_refused_with_550_is_reported_and_the_document_bounced(cfgdir, smtp, cli):
    write_config(cfgdir, f'[accounts.billing]\nemail = "billing@example.com"\n'
                         f'[accounts.billing.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                         'tls = "none"\n')
    smtp.handler.refuse = {"old@customer.example": "550 5.1.1 user unknown"}
    body = cfgdir / "letter.txt"
    body.write_text("Dear Jane,\nas discussed.\n")
    result = cli("send", "--to", "jane@customer.example", "--cc", "old@customer.example",
                 "--subject", "Our call", "--body-file", str(body), "--doc-ref", "LET-1",
                 "--json")
    assert result.exit_code == ExitCode.PARTIAL
    data = json.loads(result.stdout)
    assert [(r["rcpt"], r["state"]) for r in data["refused"]] == [
        ("old@customer.example", "refused")]
    assert [m["to"] for m in smtp.messages] == [["jane@customer.example"]]
    doc = json.loads(cli("documents", "list", "--doc-ref", "LET-1", "--json").stdout)
    assert len(doc) == 1 and doc[0]["state"] == "bounced"
    refused = [r for r in doc[0]["recipients"] if r["state"] == "refused"]
    assert refused[0]["rcpt"] == "old@customer.example"
    assert refused[0]["reply"] == "550 5.1.1 user unknown"
    listed = cli("documents", "list", "--state", "bounced").stdout
    assert "LET-1" in listed and "bounced" in listed and "(refused)" in listed
    assert json.loads(cli("documents", "list", "--state", "sent", "--json").stdout) == []


def test_send_exits_75_when_only_queued_for_a_retry(cfgdir, smtp, cli):
    write_config(cfgdir, f'[accounts.billing]\nemail = "billing@example.com"\n'
                         f'[accounts.billing.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                         'tls = "none"\n')
    smtp.handler.replies = ["451 4.3.0 try again later"]
    result = cli("send", "--to", "jane@customer.example", "--subject", "Hello",
                 "--body-file", "-", input="Free text from stdin.\n")
    assert result.exit_code == ExitCode.TEMPFAIL
    assert "queued for a retry" in result.stderr and smtp.messages == []
    docs = json.loads(cli("documents", "list", "--state", "queued", "--json").stdout)
    assert len(docs) == 1 and docs[0]["outbox_state"] == "retry"
    _due_now()
    cli("run")
    got = email.message_from_bytes(smtp.messages[0]["raw"], policy=policy.default)
    assert got["Subject"] == "Hello"
    assert "Free text from stdin." in got.get_content()
    assert json.loads(cli("documents", "list", "--state", "sent", "--json").stdout)
    missing = cli("send", "--to", "x@example.org", "--subject", "only a subject")
    assert missing.exit_code == ExitCode.USAGE and "--body-file" in missing.stderr
