"""Outgoing mail against aiosmtpd and Dovecot: the bytes that arrive, retries, failures,
the Sent copy, the archive BCC, and the autoresponder's loop guards."""

from __future__ import annotations

import email
import json
from email import policy

import pytest
from helpers import count, db, only_ticket, server_bodies, server_flags
from servers import SMTPServer, simple_message

from mailtix.errors import ExitCode

pytestmark = pytest.mark.usefixtures("backend")  # on both store backends


@pytest.fixture
def helpdesk(dovecot, mailbox_account, smtp, cfgdir):
    """Account `support` fetching from Dovecot and sending through `smtp`."""

    def make(extra: str = "", general: str = "") -> str:
        user, _ = mailbox_account(
            extra='name = "Example Support"\nsent_folder = "Sent"\n'
                  'archive_bcc = "archive@example.com"\nsignature = "Example Ltd support"\n'
                  + extra + f'\n[accounts.support.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                  'tls = "none"\n', general=general)
        return user

    return make


def parsed(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


def test_reply_arrives_with_threading_tag_signature_attachment(
        helpdesk, dovecot, smtp, cli, tmp_path):
    user = helpdesk()
    dovecot.deliver(user, simple_message(subject="Broken printer", message_id="<in1@x.org>",
                                         sender="Jane <jane@customer.example>",
                                         to=f"{user}@example.com, colleague@customer.example"))
    cli("run")
    number = only_ticket(cli)
    pdf = tmp_path / "Lösung März.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 40)
    body = tmp_path / "reply.txt"
    body.write_text("We sent a technician.\n")
    result = cli("ticket", "reply", number, "--body-file", str(body), "--attach", str(pdf),
                 "--all", "--status", "waiting-customer", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["delivery"]["sent"] == [info["outbox_id"]]
    got = smtp.messages[-1]
    assert sorted(got["to"]) == ["archive@example.com", "colleague@customer.example",
                                 "jane@customer.example"]
    msg = parsed(got["raw"])
    assert msg["From"] == f"Example Support <{user}@example.com>"
    assert msg["Subject"] == f"Re: Broken printer [Ticket#{number}]"
    assert msg["In-Reply-To"] == "<in1@x.org>" and "<in1@x.org>" in msg["References"]
    assert msg["Message-ID"] == info["message_id"]
    assert msg["Message-ID"].endswith("@example.com>")
    assert "Bcc" not in msg and b"archive@example.com" not in got["raw"]
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "We sent a technician." in text and "-- \nExample Ltd support" in text
    attachment = next(msg.iter_attachments())
    assert attachment.get_filename() == "Lösung März.pdf"
    assert attachment.get_content() == pdf.read_bytes()
    # Stored on the ticket, status set, and the Sent copy is on the server, seen.
    detail = json.loads(cli("ticket", "show", number, "--json").stdout)
    assert [m["direction"] for m in detail["messages"]] == ["in", "out"]
    assert detail["status"] == "waiting-customer"
    sent = server_bodies(dovecot, user, "Sent")
    assert len(sent) == 1 and info["message_id"].encode() in list(sent.values())[0]
    assert "\\Seen" in list(server_flags(dovecot, user, "Sent").values())[0]
    # The customer's answer to our reply threads back and reopens.
    dovecot.deliver(user, simple_message(subject="Re: thanks", message_id="<in2@x.org>",
                                         In_Reply_To=info["message_id"]))
    cli("run")
    assert json.loads(cli("ticket", "show", number, "--json").stdout)["status"] == "open"


def test_right_smtp_server_per_from_address(dovecot, mailbox_account, cli, cfgdir):
    first, second = SMTPServer().start(), SMTPServer().start()
    try:
        user_a, _ = mailbox_account("sales", extra=f'[accounts.sales.smtp]\nhost = "127.0.0.1"\n'
                                                   f'port = {first.port}\ntls = "none"\n')
        user_b, _ = mailbox_account("info", extra=f'[accounts.info.smtp]\nhost = "127.0.0.1"\n'
                                                  f'port = {second.port}\ntls = "none"\n')
        dovecot.deliver(user_a, simple_message(subject="to sales", message_id="<s@x>"))
        dovecot.deliver(user_b, simple_message(subject="to info", message_id="<i@x>"))
        cli("run")
        tickets = {t["subject"]: t["number"]
                   for t in json.loads(cli("ticket", "list", "--json").stdout)}
        for subject in ("to sales", "to info"):
            assert cli("ticket", "reply", tickets[subject], input="ok\n").exit_code == 0
        assert [parsed(m["raw"])["From"] for m in first.messages] == [f"{user_a}@example.com"]
        assert [parsed(m["raw"])["From"] for m in second.messages] == [f"{user_b}@example.com"]
    finally:
        first.stop()
        second.stop()


def test_4xx_is_retried_then_sent(helpdesk, dovecot, smtp, cli):
    user = helpdesk()
    dovecot.deliver(user, simple_message(subject="retry me"))
    cli("run")
    number = only_ticket(cli)
    smtp.handler.replies = ["451 4.3.0 try again later"]
    first = cli("ticket", "reply", number, input="hello\n")
    assert first.exit_code == ExitCode.TEMPFAIL and "queued for retry" in first.stdout
    rows = json.loads(cli("outbox", "list", "--json").stdout)
    assert rows[0]["state"] == "retry" and "451" in rows[0]["last_error"]
    assert smtp.messages == []
    assert cli("run").exit_code == 0  # not due yet: back-off
    assert smtp.messages == []
    with db() as conn:
        conn.execute("UPDATE outbox SET next_attempt_at = '2000-01-01'")
    result = cli("run")
    assert "outbox: 1 sent" in result.stdout
    assert len(smtp.messages) == 1
    assert json.loads(cli("outbox", "list", "--json").stdout)[0]["state"] == "sent"


def test_5xx_fails_visibly(helpdesk, dovecot, smtp, cli):
    user = helpdesk()
    dovecot.deliver(user, simple_message(subject="fail me"))
    cli("run")
    number = only_ticket(cli)
    smtp.handler.replies = ["554 5.7.1 rejected by policy"]
    result = cli("ticket", "reply", number, input="hello\n")
    assert result.exit_code == ExitCode.PARTIAL and "FAILED" in result.stdout
    row = json.loads(cli("outbox", "list", "--state", "failed", "--json").stdout)[0]
    assert "554 5.7.1 rejected by policy" in row["last_error"]
    assert cli("outbox", "retry", str(row["id"])).exit_code == 0
    assert "outbox: 1 sent" in cli("run").stdout


def test_sent_copy_failure_does_not_unsend(helpdesk, dovecot, smtp, cli, monkeypatch):
    user = helpdesk()
    dovecot.deliver(user, simple_message(subject="copy fails"))
    cli("run")
    number = only_ticket(cli)
    monkeypatch.setenv("MAILTIX_PASSWORD_SUPPORT", "wrong-now")
    from mailtix import secrets

    secrets._cache.clear()
    cli("ticket", "reply", number, input="hello\n")
    row = json.loads(cli("outbox", "list", "--json").stdout)[0]
    assert row["state"] == "sent" and row["sent_copy"] == "failed"
    assert len(smtp.messages) == 1


AUTO = "[accounts.support.autoresponder]\nenabled = true\n"


def test_autoresponse_once_per_interval(helpdesk, dovecot, smtp, cli):
    user = helpdesk(extra=AUTO)
    cli("run")  # first run: the autoresponder's horizon starts here
    for i in range(3):
        dovecot.deliver(user, simple_message(subject=f"Question {i}", sender="jane@cust.example",
                                             Date="Mon, 23 Nov 2099 10:00:00 +0000"))
    result = cli("run")
    assert result.exit_code == 0, result.stderr
    answers = [m for m in smtp.messages if "jane@cust.example" in m["to"]]
    assert len(answers) == 1, "three new tickets, one answer per interval"
    msg = parsed(answers[0]["raw"])
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["In-Reply-To"] and "[Ticket#" in msg["Subject"]
    assert count("SELECT COUNT(*) FROM messages WHERE direction = 'out'") == 1
    with db() as conn:
        reasons = [r[0] for r in conn.execute(
            "SELECT detail FROM events WHERE kind = 'autoresponse skipped'")]
    assert sum("within the interval" in r for r in reasons) == 2


LOOPS = {
    "auto-submitted": {"Auto_Submitted": "auto-replied"},
    "precedence bulk": {"Precedence": "bulk"},
    "precedence junk": {"Precedence": "junk"},
    "list-id": {"List_Id": "<news.example.org>"},
    "list-unsubscribe": {"List_Unsubscribe": "<mailto:u@example.org>"},
    "suppress": {"X_Auto_Response_Suppress": "OOF, AutoReply"},
    "x-autoreply": {"X_Autoreply": "yes"},
    "empty return-path": {"Return_Path": "<>"},
    "mailer-daemon": {"sender": "MAILER-DAEMON@mx.example.org"},
    "postmaster": {"sender": "postmaster@example.org"},
    "noreply": {"sender": "no-reply@shop.example"},
    "spam": {"X_Spam_Flag": "YES"},
    "own address": {"sender": "OWN"},
    "older than first run": {"Date": "Mon, 01 Jan 2001 10:00:00 +0000"},
}


@pytest.mark.parametrize("case", sorted(LOOPS))
def test_autoresponder_never_answers_loop_cases(case, helpdesk, dovecot, smtp, cli):
    user = helpdesk(extra=AUTO)
    cli("run")
    headers = dict(LOOPS[case])
    if headers.get("sender") == "OWN":
        headers["sender"] = f"{user}@example.com"
    headers.setdefault("Date", "Mon, 23 Nov 2099 10:00:00 +0000")
    dovecot.deliver(user, simple_message(subject=f"case {case}", **headers))
    assert cli("run").exit_code == 0
    assert smtp.messages == [], f"answered: {case}"
    assert count("SELECT COUNT(*) FROM events WHERE kind = 'autoresponse skipped'") == 1


def test_hourly_cap_across_accounts(helpdesk, dovecot, smtp, cli):
    user = helpdesk(extra=AUTO.replace("enabled = true", 'enabled = true\ninterval = "0"'),
                    general="autoresponder_hourly_cap = 2")
    cli("run")
    for i in range(4):
        dovecot.deliver(user, simple_message(subject=f"q{i}", sender="jane@cust.example",
                                             Date="Mon, 23 Nov 2099 10:00:00 +0000"))
    cli("run")
    assert len(smtp.messages) == 2


def test_header_injection_through_subject_is_neutralised(helpdesk, dovecot, smtp, cli):
    user = helpdesk(extra=AUTO)
    cli("run")
    raw = simple_message(subject="hi", Date="Mon, 23 Nov 2099 10:00:00 +0000").replace(
        b"Subject: hi", b"Subject: =?utf-8?q?hi=0D=0ABcc=3A_victim=40evil=2Eexample?=")
    dovecot.deliver(user, raw)
    cli("run")
    assert len(smtp.messages) == 1
    got = smtp.messages[0]
    assert got["to"] == ["customer@example.org", "archive@example.com"]
    assert b"\nBcc:" not in got["raw"] and b"\r\nBcc:" not in got["raw"]
    assert parsed(got["raw"])["Subject"].startswith("Re: hi Bcc: victim@evil.example")


def test_sandbox_refuses_python_internals(helpdesk, dovecot, smtp, cli, cfgdir):
    user = helpdesk(extra=AUTO.replace('enabled = true', 'enabled = true\ntemplate = "evil"'))
    (cfgdir / "templates").mkdir()
    (cfgdir / "templates" / "evil.txt").write_text(
        "subject: x\n---\n{{ ticket.__class__.__mro__[1].__subclasses__() }}\n")
    cli("run")
    dovecot.deliver(user, simple_message(subject="x", Date="Mon, 23 Nov 2099 10:00:00 +0000"))
    assert cli("run").exit_code == 0, "a broken template does not break the fetch"
    assert smtp.messages == []
    with db() as conn:
        detail = conn.execute("SELECT detail FROM events WHERE kind = 'autoresponse failed'"
                              ).fetchone()[0]
    assert "sandbox" in detail or "unsafe" in detail
    render = cli("template", "render", "evil", "--account", "support")
    assert render.exit_code != 0 and "subclasses" not in render.stdout


def test_template_errors_name_template_line_and_variable(cli, cfgdir, helpdesk):
    helpdesk()
    (cfgdir / "templates").mkdir()
    (cfgdir / "templates" / "offer.txt").write_text(
        "subject: Offer {{ offer_no }}\n---\nDear {{ name }},\n\n{% if %}\n")
    bad = cli("template", "render", "offer", "--var", "offer_no=7")
    assert bad.exit_code != 0 and "offer" in bad.stderr and "line 5" in bad.stderr
    (cfgdir / "templates" / "offer.txt").write_text(
        "subject: Offer {{ offer_no }}\n---\nDear {{ name }}, legacy {BETREFF}\n")
    missing = cli("template", "render", "offer", "--var", "offer_no=7")
    assert missing.exit_code != 0 and "'name' is undefined" in missing.stderr
    ok = cli("template", "render", "offer", "--var", "offer_no=7", "--var", "name=Jane",
             "--json")
    assert ok.exit_code == 0, ok.stderr
    rendered = json.loads(ok.stdout)
    assert rendered["subject"] == "Offer 7" and rendered["text"].startswith("Dear Jane, legacy")
    listed = cli("template", "list").stdout
    assert "autoreply" in listed and "offer" in listed


def test_explain_changes_nothing(helpdesk, dovecot, smtp, cli, tmp_path):
    user = helpdesk(extra=AUTO)
    dovecot.deliver(user, simple_message(subject="first", message_id="<x1@x.org>"))
    cli("run")
    before = count("SELECT COUNT(*) FROM messages"), count("SELECT COUNT(*) FROM events")
    reply = tmp_path / "reply.eml"
    reply.write_bytes(simple_message(subject="Re: first", In_Reply_To="<x1@x.org>",
                                     Auto_Submitted="auto-replied"))
    result = cli("explain", str(reply), "--account", "support", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert "(by headers)" in data["ticket"]
    assert data["autoresponse"].startswith("no: Auto-Submitted")
    assert (count("SELECT COUNT(*) FROM messages"), count("SELECT COUNT(*) FROM events")) == before


def test_sendmail_transport_and_signature_fallback(dovecot, mailbox_account, cli, cfgdir,
                                                   tmp_path):
    """A local MTA binary instead of SMTP; the project's signature when the account has none."""
    spool = tmp_path / "spool"
    spool.mkdir()
    fake = tmp_path / "sendmail"
    fake.write_text(f'#!/bin/sh\necho "$@" > {spool}/args\ncat > {spool}/message\n')
    fake.chmod(0o755)
    user, _ = mailbox_account(extra=f'[accounts.support.smtp]\nprotocol = "sendmail"\n'
                                    f'sendmail_path = "{fake}"\n'
                                    '[accounts.support.tickets]\nproject = "acme"\n',
                              general='signature = "global sig"')
    cfg = cfgdir / "config.toml"
    cfg.write_text(cfg.read_text() + '[projects.acme]\nsignature = "ACME project sig"\n')
    dovecot.deliver(user, simple_message(subject="via sendmail", sender="jane@cust.example"))
    cli("run")
    number = only_ticket(cli)
    result = cli("ticket", "reply", number, input="hello\n")
    assert result.exit_code == 0, result.stderr
    args = (spool / "args").read_text().split()
    assert args[:3] == ["-i", "-f", f"{user}@example.com"] and args[-1] == "jane@cust.example"
    msg = parsed((spool / "message").read_bytes())
    text = msg.get_body(("plain",)).get_content()
    assert "ACME project sig" in text and "global sig" not in text


def test_header_fields_are_encoded_folded_and_safe():
    from email import message_from_bytes, policy

    from mailtix.config.model import Account
    from mailtix.errors import UsageError
    from mailtix.mail.compose import Draft, compose, header_line

    assert header_line("Subject", "plain") == b"Subject: plain\r\n"
    long = header_line("Subject", "word " * 40)
    assert all(len(line) <= 78 for line in long.split(b"\r\n")) and long.count(b"\r\n") > 1
    acct = Account("b", "b@example.com", display_name="Müller, Büro")
    d = Draft(account=acct, to=["Zoë Ä <z@example.org>"], subject="Rechnung März " + "x" * 80,
              text="Grüße\n", headers={"X-Ticket": "7"})
    raw = compose(d).raw
    header_block = raw.split(b"\r\n\r\n")[0]
    assert header_block.isascii() and all(len(line) <= 998 for line in raw.split(b"\r\n"))
    back = message_from_bytes(raw, policy=policy.default)
    assert back["Subject"] == "Rechnung März " + "x" * 80
    assert back["From"].addresses[0].display_name == "Müller, Büro"
    assert back["To"].addresses[0].display_name == "Zoë Ä" and back["X-Ticket"] == "7"
    assert back.get_content().rstrip("\r\n") == "Grüße"
    for bad in ({"Subject": "again"}, {"Bad Name": "x"}, {"Evil:": "x"}):
        with pytest.raises(UsageError):
            compose(Draft(account=acct, to=["z@example.org"], subject="s", text="t",
                          headers=bad))
