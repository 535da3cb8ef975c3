"""`mailtix ticket …` on a store filled by real ingestion over IMAP."""

from __future__ import annotations

import json

import pytest
from servers import simple_message

from mailtix.errors import ExitCode


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
