"""`mailtix send` and `mailtix send-batch` against aiosmtpd (and Dovecot for replies)."""

from __future__ import annotations

import csv
import email
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from email import policy
from pathlib import Path

import pytest
from conftest import write_config
from helpers import count
from servers import simple_message

from mailtix.errors import ExitCode

pytestmark = pytest.mark.usefixtures("backend")  # on both store backends

TEMPLATE = "subject: Invoice {{ invoice_no }}\n---\nDear {{ name }},\n\nplease find invoice " \
           "{{ invoice_no }} attached.\n"


@pytest.fixture
def sender(cfgdir, smtp, monkeypatch):
    write_config(cfgdir, f'[accounts.billing]\nemail = "billing@example.com"\n'
                         f'name = "Example Billing"\n[accounts.billing.smtp]\nhost = "127.0.0.1"\n'
                         f'port = {smtp.port}\ntls = "none"\n')
    (cfgdir / "templates").mkdir()
    (cfgdir / "templates" / "invoice.txt").write_text(TEMPLATE)
    return cfgdir


def manifest(tmp_path: Path, rows: int, bad: dict[int, dict] | None = None) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    path = tmp_path / "batch.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["to", "doc_ref", "attachments", "name", "invoice_no"])
        writer.writeheader()
        for i in range(1, rows + 1):
            pdf = docs / f"INV-{i:04d}.pdf"
            pdf.write_bytes(b"%PDF-1.4 " + os.urandom(2048))
            row = {"to": f"customer{i}@example.org", "doc_ref": f"INV-{i:04d}",
                   "attachments": f"docs/{pdf.name}", "name": f"Customer {i}",
                   "invoice_no": f"2026-{i:04d}"}
            row.update((bad or {}).get(i, {}))
            writer.writerow(row)
    return path


def test_bad_rows_are_all_rejected_up_front(sender, smtp, cli, tmp_path):
    path = manifest(tmp_path, 50, bad={
        3: {"to": "not-an-address"}, 7: {"attachments": "docs/missing.pdf"},
        9: {"doc_ref": "INV-0008"}, 12: {"to": ""}})
    with open(path) as fh:
        text = fh.read()
    path.write_text(text.replace("Customer 20,", ","))  # name stays, but test a missing var next
    (sender / "templates" / "strict.txt").write_text(TEMPLATE + "{{ vat_id }}\n")
    result = cli("send-batch", str(path), "--template", "invoice")
    assert result.exit_code != 0
    for expected in ("row 3: to: not an e-mail address", "row 7: attachment not found",
                     "row 9: duplicate of row 8", "row 12: 'to' is empty"):
        assert expected in result.stderr, expected
    assert smtp.messages == [] and count("SELECT COUNT(*) FROM outbox") == 0
    strict = cli("send-batch", str(manifest(tmp_path, 2)), "--template", "strict")
    assert strict.exit_code != 0 and "'vat_id' is undefined" in strict.stderr
    assert "row 1" in strict.stderr and "row 2" in strict.stderr


def test_batch_sends_each_row_once_with_identical_attachments(sender, smtp, cli, tmp_path):
    path = manifest(tmp_path, 20)
    result = cli("send-batch", str(path), "--template", "invoice", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["sent"]) == 20 and data["failed"] == {}
    assert sorted(m["to"][0] for m in smtp.messages) == sorted(
        f"customer{i}@example.org" for i in range(1, 21))
    for got in smtp.messages:
        msg = email.message_from_bytes(got["raw"], policy=policy.default)
        n = int(got["to"][0][len("customer"):].split("@")[0])
        assert msg["Subject"] == f"Invoice 2026-{n:04d}"
        part = next(msg.iter_attachments())
        assert part.get_content() == (tmp_path / "docs" / f"INV-{n:04d}.pdf").read_bytes()
    again = json.loads(cli("send-batch", str(path), "--template", "invoice", "--json").stdout)
    assert again["sent"] == [] and len(again["skipped"]) == 20
    assert len(smtp.messages) == 20
    docs = json.loads(cli("documents", "list", "--doc-ref", "INV-0005", "--json").stdout)
    assert docs[0]["state"] == "sent" and docs[0]["rcpts"] == ["customer5@example.org"]


def test_killed_mid_batch_resumes_without_sending_twice(sender, smtp, tmp_path):
    path = manifest(tmp_path, 30)
    cmd = [sys.executable, "-m", "mailtix", "send-batch", str(path), "--template", "invoice"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)

    def kill_at_twelve(received: int):
        if received == 12:
            os.kill(proc.pid, signal.SIGKILL)  # dies mid-DATA: this mail is not accepted
            return "421 4.3.0 shutting down"
        return None

    smtp.handler.before = kill_at_twelve
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL
    assert len(smtp.messages) == 12
    smtp.handler.before = None
    resumed = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL)
    assert resumed.returncode == 0, resumed.stderr
    received = Counter(m["to"][0] for m in smtp.messages)
    assert len(received) == 30 and set(received.values()) == {1}, received.most_common(3)


def test_dry_run_sends_nothing_and_limit(sender, smtp, cli, tmp_path):
    path = manifest(tmp_path, 5)
    dry = cli("send-batch", str(path), "--template", "invoice", "--dry-run")
    assert dry.exit_code == 0 and "dry run: 5 of 5 row(s) valid" in dry.stdout
    assert smtp.messages == [] and count("SELECT COUNT(*) FROM outbox") == 0
    limited = json.loads(cli("send-batch", str(path), "--template", "invoice", "--limit", "2",
                             "--json").stdout)
    assert len(limited["sent"]) == 2 and len(smtp.messages) == 2
    # The row composed ahead while the second was sent is not left queued for `mailtix run`.
    assert count("SELECT COUNT(*) FROM outbox") == 2
    assert cli("run").exit_code == 0 and len(smtp.messages) == 2
    rest = json.loads(cli("send-batch", str(path), "--template", "invoice", "--json").stdout)
    assert len(rest["sent"]) == 3 and len(rest["skipped"]) == 2
    assert sorted(m["to"][0] for m in smtp.messages) == [
        f"customer{i}@example.org" for i in range(1, 6)]


def test_rate_limit_spaces_the_mails(sender, smtp, cli, tmp_path):
    path = manifest(tmp_path, 3)
    assert cli("send-batch", str(path), "--template", "invoice", "--rate", "120/min"
               ).exit_code == 0
    times = [m["at"] for m in smtp.messages]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) == 2 and min(gaps) >= 0.45, gaps
    assert cli("send-batch", str(path), "--template", "invoice", "--rate", "fast"
               ).exit_code == ExitCode.USAGE


def test_send_one_dry_run_and_real(sender, smtp, cli, tmp_path):
    pdf = tmp_path / "offer.pdf"
    pdf.write_bytes(b"%PDF offer")
    args = ["send", "--to", "jane@customer.example", "--template", "invoice", "--var",
            "name=Jane", "--var", "invoice_no=7", "--attach", str(pdf), "--doc-ref", "OFF-7"]
    dry = cli(*args, "--dry-run")
    assert dry.exit_code == 0 and "Subject: Invoice 7" in dry.stdout and smtp.messages == []
    real = cli(*args)
    assert real.exit_code == 0 and real.stdout.strip().startswith("<")
    assert smtp.messages[0]["to"] == ["jane@customer.example"]
    missing = cli("send", "--to", "x@example.org", "--template", "invoice")
    assert missing.exit_code != 0 and "undefined" in missing.stderr


def test_reply_to_a_document_mail_links_its_doc_ref(sender, smtp, cli, dovecot, monkeypatch):
    user, password = dovecot.new_user()
    cfg = sender / "config.toml"
    cfg.write_text(cfg.read_text() + f'[accounts.billing.fetch]\nhost = "127.0.0.1"\n'
                                     f'port = {dovecot.imap}\ntls = "none"\nuser = "{user}"\n')
    monkeypatch.setenv("MAILTIX_PASSWORD_BILLING", password)
    sent = cli("send", "--to", "jane@customer.example", "--template", "invoice", "--var",
               "name=Jane", "--var", "invoice_no=42", "--doc-ref", "INV-42")
    message_id = sent.stdout.strip()
    for i in range(2):
        dovecot.deliver(user, simple_message(subject=f"Re: Invoice 42 ({i})",
                                             sender="jane@customer.example",
                                             In_Reply_To=message_id))
    assert cli("run").exit_code == 0
    tickets = json.loads(cli("ticket", "list", "--json").stdout)
    assert len(tickets) == 1, "both replies land on the invoice's ticket"
    detail = json.loads(cli("ticket", "show", tickets[0]["number"], "--json").stdout)
    assert detail["doc_ref"] == "INV-42" and len(detail["messages"]) == 2
    docs = json.loads(cli("documents", "list", "--doc-ref", "INV-42", "--json").stdout)
    assert docs[0]["ticket"] == tickets[0]["number"]


def test_jsonl_manifest_with_several_attachments(sender, smtp, cli, tmp_path):
    (tmp_path / "a.pdf").write_bytes(b"%PDF a")
    (tmp_path / "b.txt").write_bytes(b"terms")
    path = tmp_path / "batch.jsonl"
    path.write_text(json.dumps({"to": "x@example.org", "doc_ref": "OFF-1", "name": "X",
                                "invoice_no": "1", "attachments": ["a.pdf", "b.txt"]}) + "\n")
    result = cli("send-batch", str(path), "--template", "invoice", "--json")
    assert result.exit_code == 0, result.stderr
    msg = email.message_from_bytes(smtp.messages[0]["raw"], policy=policy.default)
    assert [p.get_filename() for p in msg.iter_attachments()] == ["a.pdf", "b.txt"]


def test_ctrl_c_stops_after_the_current_mail(sender, smtp, tmp_path):
    path = manifest(tmp_path, 10)
    cmd = [sys.executable, "-m", "mailtix", "send-batch", str(path), "--template", "invoice",
           "--rate", "300/min"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    smtp.handler.before = lambda received: (os.kill(proc.pid, signal.SIGINT)
                                            if received == 2 else None)
    proc.wait(60)
    smtp.handler.before = None
    assert proc.returncode == ExitCode.INTERRUPTED, proc.stderr.read()
    first = len(smtp.messages)
    assert 3 <= first < 10, "the mail in flight was finished, the rest left for later"
    resumed = subprocess.run(cmd, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert resumed.returncode == 0
    assert sorted(Counter(m["to"][0] for m in smtp.messages).values()) == [1] * 10


def test_one_process_sends_at_a_time(sender, smtp, cli, tmp_path, monkeypatch):
    """While a batch is sending (here: this test holds the outbox lock), `mailtix run` and
    `mailtix send` leave their rows queued, a second batch refuses to start, and nothing is
    sent twice once the lock is free."""
    from mailtix import batch
    from mailtix.lock import outbox_lock

    args = ["send", "--to", "jane@customer.example", "--template", "invoice", "--var",
            "name=Jane", "--var", "invoice_no=1"]
    assert cli(*args, "--queue").exit_code == 0
    path = manifest(tmp_path, 3)
    monkeypatch.setattr(batch, "LOCK_WAIT", 0.3)
    with outbox_lock(Path(os.environ["MAILTIX_DATA"])):
        run = cli("run")
        assert run.exit_code == 0 and "another process is sending" in run.stdout
        now = json.loads(cli(*args, "--json").stdout)
        assert now["state"] == "queued" and "next `mailtix run`" in now["note"]
        batch = cli("send-batch", str(path), "--template", "invoice")
        assert batch.exit_code != 0 and "another process is sending" in batch.stderr
        assert smtp.messages == [] and count("SELECT COUNT(*) FROM outbox") == 2
    assert cli("run").exit_code == 0
    assert cli("run").exit_code == 0
    assert len(smtp.messages) == 2
    assert count("SELECT COUNT(*) FROM outbox WHERE state = 'sent'") == 2


def test_batch_templates_see_the_account_in_validation_and_mail(sender, smtp, cli, tmp_path):
    (sender / "templates" / "signed.txt").write_text(
        "subject: Invoice {{ invoice_no }} from {{ account.display_name or account.email }}\n"
        "---\nDear {{ name }},\nregards, {{ account.email }}\n")
    result = cli("send-batch", str(manifest(tmp_path, 2)), "--template", "signed", "--json")
    assert result.exit_code == 0, result.stderr
    mails = [email.message_from_bytes(m["raw"], policy=policy.default) for m in smtp.messages]
    assert {m["Subject"] for m in mails} == {"Invoice 2026-0001 from Example Billing",
                                             "Invoice 2026-0002 from Example Billing"}
    assert all("regards, billing@example.com" in m.get_body(("plain",)).get_content()
               for m in mails)


def test_lines_starting_with_a_dot_arrive_intact(sender, smtp, cli):
    import random
    import re

    from mailtix.mail.clients import dot_stuff

    def smtplib_way(data: bytes) -> bytes:  # what smtplib.SMTP.data does with bytes
        quoted = re.sub(rb"(?m)^\.", b"..", data)
        return quoted + (b"" if quoted.endswith(b"\r\n") else b"\r\n") + b".\r\n"

    rnd = random.Random(5)
    for _ in range(3000):
        data = bytes(rnd.choice(b".\r\nab") for _ in range(rnd.randrange(12)))
        assert dot_stuff(data) == smtplib_way(data), data
    (sender / "templates" / "dots.txt").write_text(
        "subject: dots\n---\n.{{ a }}\n..two\n.\nend\n")
    assert cli("send", "--to", "x@example.org", "--template", "dots", "--var", "a=one"
               ).exit_code == 0
    got = email.message_from_bytes(smtp.messages[0]["raw"], policy=policy.default)
    assert got.get_content().replace("\r\n", "\n").startswith(".one\n..two\n.\nend\n")
