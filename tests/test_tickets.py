"""`mailtix ticket …` on a store filled by real ingestion over IMAP."""

from __future__ import annotations

import json

import pytest
from helpers import only_ticket
from servers import simple_message

from mailtix.errors import ExitCode

pytestmark = pytest.mark.usefixtures("backend")  # every ticket command on both store backends


@pytest.fixture
def desk(dovecot, mailbox_account, cli, cfgdir):
    user, _ = mailbox_account(extra='[accounts.support.tickets]\nqueue = "support"')
    cfg = cfgdir / "config.toml"
    cfg.write_text(cfg.read_text() + '[agents.ann]\nname = "Ann"\n[queues.support]\n'
                   '[queues.billing]\n')
    dovecot.deliver(user, simple_message(subject="Printer jams", message_id="<p1@x.org>",
                                         sender="jane@customer.example",
                                         body="The printer jams on page two.\n"))
    dovecot.deliver(user, simple_message(subject="Invoice VAT wrong", message_id="<p2@x.org>",
                                         sender="tom@buyer.example",
                                         body="We are exempt from VAT.\n> old quote\n> more\n"))
    assert cli("run").exit_code == 0
    rows = json.loads(cli("ticket", "list", "--json").stdout)
    return {r["subject"]: r["number"] for r in rows}


def test_list_filters_and_json(desk, cli):
    assert set(desk) == {"Printer jams", "Invoice VAT wrong"}
    only = json.loads(cli("ticket", "list", "--contact", "jane", "--json").stdout)
    assert [r["subject"] for r in only] == ["Printer jams"]
    table = cli("ticket", "list")
    assert "Printer jams" in table.stdout and "new" in table.stdout


def test_search_finds_body_text(desk, cli):
    hits = json.loads(cli("ticket", "search", "exempt", "--json").stdout)
    assert [h["number"] for h in hits] == [desk["Invoice VAT wrong"]]
    assert "[exempt]" in hits[0]["snippet"]
    assert json.loads(cli("ticket", "search", 'printer" OR "x', "--json").stdout) == []


def test_show_folds_quotes_and_raw_is_exact(desk, cli):
    number = desk["Invoice VAT wrong"]
    shown = cli("ticket", "show", number)
    assert "We are exempt from VAT." in shown.stdout
    assert "2 quoted line(s)" in shown.stdout and "> old quote" not in shown.stdout
    detail = json.loads(cli("ticket", "show", number, "--json").stdout)
    message_row = detail["messages"][0]["id"]
    raw = cli("ticket", "show", number, "--raw", str(message_row))
    assert raw.stdout_bytes.startswith(b"From: tom@buyer.example")


def test_note_assign_status_and_history(desk, cli, monkeypatch):
    number = desk["Printer jams"]
    monkeypatch.setenv("MAILTIX_AGENT", "ann")
    assert cli("ticket", "note", number, "called the customer").exit_code == 0
    assert cli("ticket", "assign", number, "ann").exit_code == 0
    assert cli("ticket", "status", number, "waiting-customer").exit_code == 0
    assert cli("ticket", "queue", number, "billing").exit_code == 0
    assert cli("ticket", "close", number).exit_code == 0
    detail = json.loads(cli("ticket", "show", number, "--json").stdout)
    assert detail["assignee"] == "ann" and detail["status"] == "closed"
    assert detail["queue"] == "billing"
    assert [m["direction"] for m in detail["messages"]] == ["in", "note"]
    kinds = [(h["kind"], h["agent"]) for h in detail["history"]]
    assert ("assignee", "ann") in kinds and ("note", "ann") in kinds
    assert sum(k == "status" for k, _ in kinds) == 2
    hidden = json.loads(cli("ticket", "list", "--json").stdout)
    assert number not in [r["number"] for r in hidden]
    assert cli("ticket", "reopen", number).exit_code == 0


def test_bad_input_changes_nothing(desk, cli):
    number = desk["Printer jams"]
    assert cli("ticket", "status", number, "done").exit_code == ExitCode.USAGE
    assert cli("ticket", "assign", number, "zed").exit_code == ExitCode.USAGE
    missing = cli("ticket", "show", "209901010001")
    assert missing.exit_code == ExitCode.USAGE and "no ticket" in missing.stderr
    detail = json.loads(cli("ticket", "show", number, "--json").stdout)
    assert detail["status"] == "new" and detail["assignee"] == ""


def test_reprocess_lists_and_reparses_flagged(dovecot, mailbox_account, cli):
    user, _ = mailbox_account()
    dovecot.deliver(user, b"Subject: no sender at all\r\n\r\nbody\r\n")
    assert cli("run").exit_code == 0
    listed = json.loads(cli("reprocess", "--list", "--json").stdout)
    assert len(listed) == 1 and "no From address" in listed[0]["parse_error"]
    result = cli("reprocess")
    assert "1 still flagged" in result.stdout


def test_tags_and_filters(desk, cli):
    number = desk["Printer jams"]
    assert cli("ticket", "tag", number, "+vip", "+hardware").exit_code == 0
    assert "tags hardware" in cli("ticket", "tag", number, "--", "-vip").stdout
    tagged = json.loads(cli("ticket", "list", "--tag", "hardware", "--json").stdout)
    assert [r["number"] for r in tagged] == [number]
    assert json.loads(cli("ticket", "list", "--older-than", "1d", "--json").stdout) == []
    assert len(json.loads(cli("ticket", "list", "--newer-than", "1h", "--json").stdout)) == 2
    assert cli("ticket", "list", "--older-than", "soon").exit_code == ExitCode.USAGE


def test_merge_moves_everything_and_redirects(desk, cli, dovecot):
    a, b = desk["Printer jams"], desk["Invoice VAT wrong"]
    cli("ticket", "tag", b, "+billing")
    result = cli("ticket", "merge", a, b)
    assert result.exit_code == 0 and f"merged {b} into {a}" in result.stdout
    detail = json.loads(cli("ticket", "show", a, "--json").stdout)
    assert len(detail["messages"]) == 2 and detail["tags"] == ["billing"]
    assert any(h["kind"] == "merged" for h in detail["history"])
    assert json.loads(cli("ticket", "show", b, "--json").stdout)["number"] == a
    assert [r["number"] for r in json.loads(cli("ticket", "list", "--json").stdout)] == [a]
    assert cli("ticket", "merge", a, a).exit_code == ExitCode.USAGE


def test_spam_with_sender_rule_and_junk(desk, cli, dovecot, mailbox_account):
    from helpers import server_uids

    number = desk["Invoice VAT wrong"]
    result = cli("ticket", "spam", number, "--block-sender", "--junk", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["sender_rule"] == "tom@buyer.example" and data["moved"] == 1
    user = [u for u in dovecot.users if dovecot.maildir(u).exists()][-1]
    assert len(server_uids(dovecot, user, "Junk")) == 1
    dovecot.deliver(user, simple_message(subject="again", sender="tom@buyer.example"))
    cli("run")
    spam = json.loads(cli("ticket", "list", "--status", "spam", "--json").stdout)
    assert sorted(r["subject"] for r in spam) == ["Invoice VAT wrong", "again"]


def test_export_and_attachments(dovecot, mailbox_account, cli, tmp_path):
    import mailbox
    from email.message import EmailMessage

    user, _ = mailbox_account()
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@x.org", "s@example.com", "with files"
    msg["Message-ID"] = "<att@x.org>"
    msg.set_content("see attached")
    msg.add_attachment(b"%PDF one", maintype="application", subtype="pdf", filename="../a.pdf")
    msg.add_attachment(b"%PDF two", maintype="application", subtype="pdf", filename="a.pdf")
    dovecot.deliver(user, msg.as_bytes())
    cli("run")
    number = only_ticket(cli)
    saved = cli("ticket", "attachments", number, "--save", str(tmp_path / "att"))
    assert saved.exit_code == 0 and "2 attachment(s) saved" in saved.stdout
    files = sorted(p.name for p in (tmp_path / "att").iterdir())
    assert files == ["_a.pdf", "a.pdf"], "path parts neutralised"
    assert {p.read_bytes() for p in (tmp_path / "att").iterdir()} == {b"%PDF one", b"%PDF two"}
    assert cli("ticket", "export", number, "--mbox", str(tmp_path / "t.mbox")).exit_code == 0
    assert [m["Message-ID"] for m in mailbox.mbox(str(tmp_path / "t.mbox"))] == ["<att@x.org>"]
    assert cli("ticket", "export", number, "--eml", str(tmp_path / "eml")).exit_code == 0
    assert len(list((tmp_path / "eml").glob("*.eml"))) == 1


def test_contacts(desk, cli):
    rows = json.loads(cli("contact", "list", "jane", "--json").stdout)
    assert rows[0]["email"] == "jane@customer.example" and rows[0]["tickets"] == 1
    shown = json.loads(cli("contact", "show", "jane@customer.example", "--json").stdout)
    assert shown[0]["subject"] == "Printer jams" and shown[0]["role"] == "from"
