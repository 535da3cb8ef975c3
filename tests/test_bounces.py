"""Bounces, delay reports and replies land on the document they are about (Dovecot +
aiosmtpd; the returned mails are real corpus bounces with our addresses and IDs put in)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from conftest import CORPUS, write_config
from helpers import server_bodies
from servers import simple_message

from mailtix.errors import ExitCode

TEMPLATE = "subject: Invoice {{ invoice_no }}\n---\nDear customer,\ninvoice {{ invoice_no }}.\n"
JANE = "jane@customer.example"


@pytest.fixture
def billing(dovecot, cfgdir, smtp, monkeypatch):
    """Account `billing`: sends through aiosmtpd, fetches its replies and bounces from
    Dovecot, keeps a copy of what it sends in Sent."""
    user, password = dovecot.new_user()
    write_config(cfgdir, f'[accounts.billing]\nemail = "{user}@example.com"\n'
                         f'sent_folder = "Sent"\n'
                         f'[accounts.billing.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                         f'tls = "none"\n[accounts.billing.fetch]\nhost = "127.0.0.1"\n'
                         f'port = {dovecot.imap}\ntls = "none"\nuser = "{user}"\n')
    (cfgdir / "templates").mkdir()
    (cfgdir / "templates" / "invoice.txt").write_text(TEMPLATE)
    monkeypatch.setenv("MAILTIX_PASSWORD_BILLING", password)
    return user


def send_invoice(cli, ref: str, to: str = JANE) -> str:
    result = cli("send", "--to", to, "--template", "invoice", "--var", f"invoice_no={ref}",
                 "--doc-ref", ref)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def from_template(name: str, swaps: dict[str, str]) -> bytes:
    text = (CORPUS / name).read_bytes().decode("latin-1")
    for old, new in swaps.items():
        assert old in text, old
        text = text.replace(old, new)
    return text.encode("latin-1")


def document(cli, ref: str) -> dict:
    rows = json.loads(cli("documents", "list", "--doc-ref", ref, "--json").stdout)
    assert len(rows) == 1, rows
    return rows[0]


def test_rfc3464_bounce_marks_the_document_bounced_on_its_ticket(billing, dovecot, smtp, cli):
    mid = send_invoice(cli, "INV-1")
    send_invoice(cli, "INV-2", "other@customer.example")
    dsn = from_template("sisimai-bounces/bsd__rfc3464-01.eml", {
        "userunknown@bouncehammer.jp": JANE, "kijitora@example.org": f"{billing}@example.com",
        "<E1C50F1B-1C83-4820-BC36-AC6FBFBE8568@example.org>": mid})
    dovecot.deliver(billing, dsn)
    assert cli("run").exit_code == 0
    doc = document(cli, "INV-1")
    assert doc["state"] == "bounced"
    (bounce,) = doc["bounces"]
    assert (bounce["rcpt"], bounce["status"]) == (JANE, "5.1.1")
    assert "550 5.1.1" in bounce["diagnostic"] and "User Unknown" in bounce["diagnostic"]
    assert document(cli, "INV-2")["state"] == "sent"
    bounced = json.loads(cli("documents", "list", "--state", "bounced", "--json").stdout)
    assert [d["doc_ref"] for d in bounced] == ["INV-1"]
    tickets = json.loads(cli("ticket", "list", "--json").stdout)
    assert len(tickets) == 1 and doc["ticket"] == tickets[0]["number"]
    detail = json.loads(cli("ticket", "show", tickets[0]["number"], "--json").stdout)
    assert detail["doc_ref"] == "INV-1" and "bounce" in detail["tags"]
    # The document's ticket is open for someone to act on, not one of the agents' new tickets.
    assert detail["status"] == "open"
    assert json.loads(cli("ticket", "list", "--status", "new", "--json").stdout) == []


def test_bounce_without_our_message_id_matches_by_recipient_sender_and_time(
        billing, dovecot, smtp, cli):
    send_invoice(cli, "INV-7")
    sent_date = format_datetime(datetime.now(UTC))
    qmail = from_template("sisimai-bounces/bsd__lhost-qmail-01.eml", {
        "kijitora@example.ne.jp": JANE, "Nyanko <nekochan@example.jp>": f"{billing}@example.com",
        "Message-ID: <000000000.9999999999999.JavaMail.postmaster@mailhub>\n": "",
        "Date: Thu, 24 Apr 2013 00:00:00 +0900 (JST)": f"Date: {sent_date}"})
    dovecot.deliver(billing, qmail)
    assert cli("run").exit_code == 0
    doc = document(cli, "INV-7")
    assert doc["state"] == "bounced" and doc["bounces"][0]["rcpt"] == JANE
    assert "550 Unknown user" in doc["bounces"][0]["diagnostic"]
    assert doc["ticket"] is not None


def test_delay_report_records_a_delay_not_a_bounce(billing, dovecot, smtp, cli):
    mid = send_invoice(cli, "INV-3", "user@example.com")
    delay = from_template("flanker/bounce__no-mx.eml", {
        "<19E44CA63F984902B7D654F8FF40F89D@bo>": mid})
    dovecot.deliver(billing, delay)
    assert cli("run").exit_code == 0
    doc = document(cli, "INV-3")
    assert doc["state"] == "sent" and doc["bounces"] == []
    assert [(d["rcpt"], d["status"]) for d in doc["delays"]] == [("user@example.com", "4.4.4")]


def test_out_of_office_links_without_changing_state(billing, dovecot, smtp, cli):
    mid = send_invoice(cli, "INV-4")
    dovecot.deliver(billing, simple_message(
        subject="Automatic reply: Invoice INV-4", sender=JANE, In_Reply_To=mid,
        Auto_Submitted="auto-replied", body="I am out of the office until Monday.\n"))
    assert cli("run").exit_code == 0
    doc = document(cli, "INV-4")
    assert doc["state"] == "sent"
    assert [(r["kind"], r["rcpt"]) for r in doc["replies"]] == [("auto-reply", JANE)]
    assert doc["ticket"] is not None


def test_550_at_rcpt_on_a_document_ends_bounced_with_the_reason(billing, smtp, cli):
    smtp.handler.refuse = {JANE: "550 5.1.1 <jane@customer.example>: user unknown"}
    result = cli("send", "--to", JANE, "--template", "invoice", "--var", "invoice_no=9",
                 "--doc-ref", "INV-9")
    assert result.exit_code == ExitCode.PARTIAL
    assert "refused: jane@customer.example: 550 5.1.1" in result.stderr
    doc = document(cli, "INV-9")
    assert doc["state"] == "bounced" and doc["outbox_state"] == "failed"
    assert doc["recipients"][0]["reply"].startswith("550 5.1.1")


def test_document_mails_get_a_sent_copy(billing, dovecot, smtp, cli):
    mid = send_invoice(cli, "INV-5")
    sent = list(server_bodies(dovecot, billing, "Sent").values())
    assert len(sent) == 1 and mid.encode() in sent[0]


def test_merged_document_ticket_keeps_its_document(billing, dovecot, smtp, cli):
    mid = send_invoice(cli, "INV-8")
    dovecot.deliver(billing, simple_message(subject="Re: Invoice INV-8", sender=JANE,
                                            In_Reply_To=mid))
    dovecot.deliver(billing, simple_message(subject="Another matter", sender=JANE))
    assert cli("run").exit_code == 0
    tickets = {t["subject"]: t["number"]
               for t in json.loads(cli("ticket", "list", "--json").stdout)}
    doc_ticket, other = tickets["Re: Invoice INV-8"], tickets["Another matter"]
    assert cli("ticket", "merge", other, doc_ticket).exit_code == 0
    dovecot.deliver(billing, simple_message(subject="Re: Invoice INV-8 (again)", sender=JANE,
                                            In_Reply_To=mid))
    assert cli("run").exit_code == 0
    open_tickets = json.loads(cli("ticket", "list", "--json").stdout)
    assert [t["number"] for t in open_tickets] == [other], "the reply lands on the target"
    detail = json.loads(cli("ticket", "show", other, "--json").stdout)
    assert len(detail["messages"]) == 3
    assert document(cli, "INV-8")["ticket"] == other


def test_bounce_of_a_ticket_reply_lands_on_the_ticket_and_explain_says_so(
        billing, dovecot, smtp, cli, tmp_path):
    dovecot.deliver(billing, simple_message(subject="Question", sender=JANE))
    assert cli("run").exit_code == 0
    (ticket,) = json.loads(cli("ticket", "list", "--json").stdout)
    reply = json.loads(cli("ticket", "reply", ticket["number"], "--json", input="Answer\n"
                           ).stdout)
    dsn = from_template("flanker/bounce__mailbox-full.eml", {
        "user@aol.com": JANE, "<4E326A95.3010907@example.com>": reply["message_id"]})
    (tmp_path / "dsn.eml").write_bytes(dsn)
    said = json.loads(cli("explain", str(tmp_path / "dsn.eml"), "--json").stdout)
    assert said["returns"] == f"bounce of outbox {reply['outbox_id']}"
    assert said["ticket"].startswith(ticket["number"])
    dovecot.deliver(billing, dsn)
    assert cli("run").exit_code == 0
    assert len(json.loads(cli("ticket", "list", "--all", "--json").stdout)) == 1
    row = json.loads(cli("outbox", "show", str(reply["outbox_id"])).stdout)
    assert row["state"] == "bounced"
    assert [(r["rcpt"], r["state"], r["code"]) for r in row["recipients"]] == [
        (JANE, "bounced", "5.2.2")]
    assert row["events"][0]["kind"] == "bounce"


def test_an_old_bounce_without_our_message_id_is_not_pinned_on_a_new_document(
        billing, dovecot, smtp, cli):
    send_invoice(cli, "INV-6")
    qmail = from_template("sisimai-bounces/bsd__lhost-qmail-01.eml", {
        "kijitora@example.ne.jp": JANE, "Nyanko <nekochan@example.jp>": f"{billing}@example.com",
        "Message-ID: <000000000.9999999999999.JavaMail.postmaster@mailhub>\n": ""})
    dovecot.deliver(billing, qmail)  # its copy says it was sent in 2013
    assert cli("run").exit_code == 0
    doc = document(cli, "INV-6")
    assert doc["state"] == "sent" and doc["bounces"] == [] and doc["ticket"] is None
    (ticket,) = json.loads(cli("ticket", "list", "--json").stdout)
    assert ticket["subject"] == "failure notice"
