"""Non-ASCII addresses (RFC 6531/6532) against aiosmtpd with and without SMTPUTF8: the domain
goes out as IDNA where the local part is ASCII, SMTPUTF8 carries the rest, and a recipient no
server can take fails alone with a clear reason while the run goes on."""

from __future__ import annotations

import email
import json
from email import policy

import pytest
from helpers import billing_sender, db
from servers import SMTPServer, simple_message

from mailtix.errors import ExitCode

AUTO = "[accounts.support.autoresponder]\nenabled = true\n"
FUTURE = "Mon, 23 Nov 2099 10:00:00 +0000"


def _utf8_mail(sender: str, subject: str = "Säying Hello") -> bytes:
    # As in the corpus (mail-ruby-gem/rfc6532__utf8_headers.eml): raw UTF-8 in the headers.
    return (f'From: "Jöhn Doe" <{sender}>\r\nTo: support@example.com\r\n'
            f"Subject: {subject}\r\nDate: {FUTURE}\r\nMessage-ID: <{abs(hash(sender))}@x>\r\n"
            "\r\nbody\r\n").encode()


def _parsed(raw: bytes):
    return email.message_from_string(raw.decode(), policy=policy.default)  # RFC 6532 UTF-8


@pytest.fixture
def smtputf8():
    server = SMTPServer(smtputf8=True).start()
    yield server
    server.stop()


def _helpdesk(mailbox_account, port: int) -> str:
    user, _ = mailbox_account(
        extra=AUTO + f'[accounts.support.smtp]\nhost = "127.0.0.1"\nport = {port}\n'
                     'tls = "none"\n')
    return user


def _outbox() -> list[dict]:
    with db() as conn:
        conn.row_factory = None
        rows = conn.execute("SELECT r.rcpt, r.state, r.reply FROM outbox_rcpts r").fetchall()
    return [{"rcpt": a, "state": b, "reply": c} for a, b, c in rows]


def _answered(mailbox_account, dovecot, server, cli, sender: str):
    """Run once on a mail from `sender`; the one autoresponse as it arrived, and parsed."""
    user = _helpdesk(mailbox_account, server.port)
    dovecot.deliver(user, _utf8_mail(sender))
    result = cli("run")
    assert result.exit_code == 0, result.stdout + result.stderr
    [sent] = server.messages
    return sent, _parsed(sent["raw"])


def test_autoreply_to_a_utf8_local_part_goes_out_with_smtputf8(
        mailbox_account, dovecot, smtputf8, cli):
    sent, msg = _answered(mailbox_account, dovecot, smtputf8, cli, "jdöe@mächine.example")
    assert sent["to"] == ["jdöe@mächine.example"]
    assert "SMTPUTF8" in sent["options"]
    assert msg["To"].addresses[0].addr_spec == "jdöe@mächine.example"


def test_utf8_local_part_without_smtputf8_fails_alone_and_the_run_goes_on(
        mailbox_account, dovecot, smtp, cli):
    user = _helpdesk(mailbox_account, smtp.port)
    dovecot.deliver(user, _utf8_mail("jdöe@mächine.example"))
    dovecot.deliver(user, simple_message(subject="plain", sender="jane@cust.example",
                                         Date=FUTURE))
    result = cli("run")
    assert result.exit_code == ExitCode.PARTIAL, result.stdout + result.stderr
    assert "jdöe@mächine.example" in result.stderr and "Traceback" not in result.stderr
    assert [m["to"] for m in smtp.messages] == [["jane@cust.example"]]
    states = {r["rcpt"]: (r["state"], r["reply"]) for r in _outbox()}
    state, reply = states["jdöe@mächine.example"]
    assert state == "refused" and "SMTPUTF8" in reply
    rows = json.loads(cli("outbox", "list", "--json").stdout)
    assert sorted(r["state"] for r in rows) == ["failed", "sent"]
    # Nothing is retried: the refusal is permanent.
    with db() as conn:
        conn.execute("UPDATE outbox SET next_attempt_at = '2000-01-01'")
    cli("run")
    assert len(smtp.messages) == 1


def test_ascii_local_part_with_an_idn_domain_goes_out_as_idna(
        mailbox_account, dovecot, smtp, cli):
    sent, msg = _answered(mailbox_account, dovecot, smtp, cli, "j.doe@mächine.example")
    assert sent["to"] == ["j.doe@xn--mchine-bua.example"]
    assert "SMTPUTF8" not in sent["options"]
    assert sent["raw"].isascii()
    assert msg["To"].addresses[0].addr_spec == "j.doe@xn--mchine-bua.example"


def test_send_with_a_utf8_display_name_and_address(cfgdir, smtputf8, smtp, cli):
    billing_sender(cfgdir, smtputf8.port)
    body = cfgdir / "letter.txt"
    body.write_text("Hallo.\n")
    result = cli("send", "--to", '"Jöhn Doe" <jdöe@mächine.example>', "--cc",
                 "Märy <mary@exämple.net>", "--subject", "Brief", "--body-file", str(body))
    assert result.exit_code == 0, result.stdout + result.stderr
    [sent] = smtputf8.messages
    assert sent["to"] == ["jdöe@mächine.example", "mary@xn--exmple-cua.net"]
    msg = _parsed(sent["raw"])
    assert msg["To"].addresses[0].display_name == "Jöhn Doe"
    assert msg["Cc"].addresses[0].addr_spec == "mary@xn--exmple-cua.net"


def test_ticket_reply_to_a_utf8_sender(mailbox_account, dovecot, smtputf8, cli):
    user, _ = mailbox_account(
        extra=f'[accounts.support.smtp]\nhost = "127.0.0.1"\nport = {smtputf8.port}\n'
              'tls = "none"\n')
    dovecot.deliver(user, _utf8_mail("jdöe@mächine.example"))
    assert cli("run").exit_code == 0
    number = json.loads(cli("ticket", "list", "--json").stdout)[0]["number"]
    result = cli("ticket", "reply", str(number), input="Danke.\n")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert [m["to"] for m in smtputf8.messages] == [["jdöe@mächine.example"]]


def test_a_document_to_an_idn_address_is_sent_once(cfgdir, smtp, cli, tmp_path):
    billing_sender(cfgdir, smtp.port, "subject: Invoice\n---\nHello.\n")
    first = tmp_path / "march.csv"
    first.write_text("to,doc_ref\nbuchhaltung@mächine.example,INV-1\n")
    assert cli("send-batch", str(first), "--template", "invoice").exit_code == 0
    again = tmp_path / "march-again.csv"
    again.write_text("to,doc_ref,note\n\"Buchhaltung <buchhaltung@mächine.example>\",INV-1,x\n")
    result = cli("send-batch", str(again), "--template", "invoice", "--json")
    assert json.loads(result.stdout)["sent"] == [], "the same document to the same address"
    assert [m["to"] for m in smtp.messages] == [["buchhaltung@xn--mchine-bua.example"]]


def test_utf8_recipient_and_a_refused_one_are_both_settled(cfgdir, smtp, cli):
    billing_sender(cfgdir, smtp.port)
    smtp.handler.refuse = {"jane@cust.example": "550 5.1.1 no such user"}
    body = cfgdir / "letter.txt"
    body.write_text("Hallo.\n")
    result = cli("send", "--to", "jdöe@mächine.example", "--cc", "jane@cust.example",
                 "--subject", "Brief", "--body-file", str(body), "--json")
    data = json.loads(result.stdout)
    assert {r["rcpt"]: r["state"] for r in data["recipients"]} == {
        "jdöe@mächine.example": "refused", "jane@cust.example": "refused"}
    assert data["state"] == "failed" and smtp.messages == []
