"""Group accounts (notices to members, --watching) and per-account defaults (status, type,
owner, send_as), against Dovecot and aiosmtpd."""

from __future__ import annotations

import email
import json
from email import policy

import pytest
from conftest import write_config
from helpers import count, only_ticket
from servers import simple_message

from mailtix.errors import ExitCode

AGENTS = ('\n[agents.ann]\nname = "Ann Agent"\nemail = "ann@example.com"\n'
          '[agents.bob]\nemail = "bob@example.com"\n[agents.carl]\n')


@pytest.fixture
def account(dovecot, mailbox_account, smtp, cfgdir):
    def make(extra: str = "", general: str = "") -> str:
        user, _ = mailbox_account(
            extra='name = "Example Support"\n' + extra
                  + f'\n[accounts.support.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                  'tls = "none"\n', general=general)
        cfg = cfgdir / "config.toml"
        cfg.write_text(cfg.read_text() + AGENTS)
        return user

    return make


def notices(smtp) -> list:
    out = []
    for m in smtp.messages:
        msg = email.message_from_bytes(m["raw"], policy=policy.default)
        if msg["Subject"].startswith("New ticket"):
            out.append((m["to"], msg))
    return out


def test_group_members_get_a_notice_for_a_new_ticket(account, dovecot, smtp, cli):
    user = account('group = ["ann", "bob", "carl"]\nnotify_group = true\n'
                   'archive_bcc = "archive@example.com"\nsent_folder = "Sent"')
    dovecot.deliver(user, simple_message(subject="Printer jams", sender="jane@customer.example",
                                         body="It jams on page two.\n"))
    assert cli("run").exit_code == 0
    got = notices(smtp)
    assert sorted(to[0] for to, _ in got) == ["ann@example.com", "bob@example.com"], \
        "carl has no address; nobody else gets it (no archive BCC)"
    number = only_ticket(cli)
    msg = got[0][1]
    assert msg["Subject"] == f"New ticket {number}: Printer jams"
    assert msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_body(("plain",)).get_content()
    assert "<jane@customer.example>" in body and "It jams on page two." in body
    detail = json.loads(cli("ticket", "show", number, "--json").stdout)
    assert [m["direction"] for m in detail["messages"]] == ["in"], "not part of the thread"
    # A follow-up on the ticket is no new ticket: no notice.
    dovecot.deliver(user, simple_message(subject=f"Re: Printer jams [Ticket#{number}]",
                                         sender="jane@customer.example"))
    cli("run")
    assert len(notices(smtp)) == 2


@pytest.mark.parametrize("headers", [
    {"Auto_Submitted": "auto-replied"},
    {"sender": "MAILER-DAEMON@mx.example", "subject": "Undelivered Mail Returned to Sender"},
    {"X_Spam_Flag": "YES"},
], ids=["autoresponse", "bounce", "spam"])
def test_no_notice_for_machine_mail_or_spam(account, dovecot, smtp, cli, headers):
    user = account('group = ["ann", "bob"]\nnotify_group = true')
    dovecot.deliver(user, simple_message(**headers))
    assert cli("run").exit_code == 0
    assert count("SELECT COUNT(*) FROM tickets") == 1
    assert notices(smtp) == [] and count("SELECT COUNT(*) FROM outbox") == 0


def test_no_notice_to_the_sender_and_none_without_the_switch(account, dovecot, smtp, cli,
                                                             cfgdir):
    user = account('group = ["ann", "bob"]\nnotify_group = true')
    dovecot.deliver(user, simple_message(sender="Bob <bob@example.com>"))
    cli("run")
    assert [to for to, _ in notices(smtp)] == [["ann@example.com"]]
    cfg = cfgdir / "config.toml"
    cfg.write_text(cfg.read_text().replace("notify_group = true", "notify_group = false"))
    dovecot.deliver(user, simple_message(subject="second"))
    cli("run")
    assert len(notices(smtp)) == 1


def test_list_watching_as_agent(account, dovecot, cli, cfgdir, monkeypatch):
    user = account('group = ["ann"]')
    dovecot.deliver(user, simple_message(subject="watched"))
    cli("run")
    number = only_ticket(cli)
    rows = json.loads(cli("ticket", "list", "--watching", "--as", "ann", "--json").stdout)
    assert [r["number"] for r in rows] == [number]
    assert json.loads(cli("ticket", "list", "--watching", "--as", "bob", "--json").stdout) == []
    monkeypatch.setenv("MAILTIX_AGENT", "ann")
    assert len(json.loads(cli("ticket", "list", "--watching", "--json").stdout)) == 1


def test_new_ticket_status_type_and_owner(account, dovecot, cli, cfgdir):
    user = account('new_ticket_status = "open"\nnew_ticket_type = "question"\nowner = "ann"',
                   general='ticket_types = ["question", "complaint"]')
    dovecot.deliver(user, simple_message())
    cli("run")
    number = only_ticket(cli)
    t = json.loads(cli("ticket", "show", number, "--json").stdout)
    assert (t["status"], t["type"], t["assignee"]) == ("open", "question", "ann")
    assert "type question" in cli("ticket", "show", number, "--no-pager").stdout
    assert cli("ticket", "type", number, "complaint").exit_code == 0
    assert json.loads(cli("ticket", "show", number, "--json").stdout)["type"] == "complaint"
    bad = cli("ticket", "type", number, "rant")
    assert bad.exit_code == ExitCode.USAGE and "question, complaint" in bad.stderr


def test_account_defaults_are_validated(cfgdir, cli):
    write_config(cfgdir, '[general]\nticket_types = ["question"]\n'
                         '[agents.ann]\nemail = "ann@example.com"\n'
                         '[accounts.a]\nemail = "a@example.com"\nnew_ticket_type = "rant"\n'
                         'owner = "zed"\nsend_as = ["b@example.com", "nope"]\n'
                         'new_ticket_status = "closed"\n'
                         '[accounts.b]\nemail = "b@example.com"\n')
    result = cli("config", "check")
    assert result.exit_code == ExitCode.CONFIG
    for key in ("accounts.a.new_ticket_type", "accounts.a.owner", "accounts.a.send_as",
                "accounts.a.new_ticket_status"):
        assert key in result.stderr, key
    assert "account 'b'" in result.stderr and "'nope'" in result.stderr


def test_send_as_an_agent_address(account, dovecot, smtp, cli):
    user = account('send_as = ["ann@example.com"]')
    dovecot.deliver(user, simple_message(sender="jane@customer.example"))
    cli("run")
    number = only_ticket(cli)
    ok = cli("ticket", "reply", number, "--from", "ann@example.com", input="Ann here.\n")
    assert ok.exit_code == 0, ok.stderr
    got = smtp.messages[-1]
    assert got["from"] == "ann@example.com"
    msg = email.message_from_bytes(got["raw"], policy=policy.default)
    assert msg["From"] == "Ann Agent <ann@example.com>"
    assert msg["Reply-To"] == f"{user}@example.com", "answers come back to the account"
    refused = cli("ticket", "reply", number, "--from", "bob@example.com", input="Bob.\n")
    assert refused.exit_code == ExitCode.USAGE and "send_as" in refused.stderr
    assert len(smtp.messages) == 1 and count("SELECT COUNT(*) FROM outbox") == 1
    # The agent's address counts as ours: a mail from it gets no autoresponse and reply --all
    # leaves it out.
    from mailtix.config import load

    assert "ann@example.com" in load().own_addresses()
