"""Exactly once per document across batches (issue 17), against aiosmtpd: what arrived counts."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import billing_sender, count

from mailtix.errors import ExitCode

TEMPLATE = "subject: Invoice {{ invoice_no }}\n---\nDear {{ name }},\n\nplease find invoice " \
           "{{ invoice_no }} attached.\n"


@pytest.fixture
def sender(cfgdir, smtp):
    billing_sender(cfgdir, smtp.port, TEMPLATE)
    return cfgdir


def write_rows(path: Path, rows: range, doc_ref: bool = True, **override: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        fields = ["to", "name", "invoice_no"] + (["doc_ref"] if doc_ref else [])
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        for i in rows:
            row = {"to": f"customer{i}@example.org", "name": f"Customer {i}",
                   "invoice_no": f"2026-{i:04d}"}
            if doc_ref:
                row["doc_ref"] = f"INV-{i:04d}"
            row.update(override.get(str(i), {}))
            writer.writerow(row)
    return path


def batch(cli, path: Path, *extra: str):
    result = cli("send-batch", str(path), "--template", "invoice", "--json", *extra)
    return result, json.loads(result.stdout) if result.stdout.strip() else None


def received(smtp) -> Counter:
    return Counter(m["to"][0] for m in smtp.messages)


def test_reexported_file_with_one_more_row_sends_exactly_one(sender, smtp, cli, tmp_path):
    first, _ = batch(cli, write_rows(tmp_path / "march.csv", range(1, 6)))
    assert first.exit_code == 0 and len(smtp.messages) == 5
    # The ERP exports again, with one new invoice, under the same name: the content differs.
    result, data = batch(cli, write_rows(tmp_path / "march.csv", range(1, 7)))
    assert result.exit_code == 0, result.stderr
    assert data["sent"] == ["INV-0006"] and len(smtp.messages) == 6
    skipped = {s["key"]: s for s in data["skipped"]}
    assert len(skipped) == 5 and skipped["INV-0001"]["message_id"].startswith("<")
    assert skipped["INV-0001"]["sent_at"] and "already sent" in skipped["INV-0001"]["reason"]
    assert set(received(smtp).values()) == {1}
    text = cli("send-batch", str(tmp_path / "march.csv"), "--template", "invoice")
    assert "INV-0003" in text.stdout and "already sent" in text.stdout


def test_renamed_file_sends_nothing_and_resend_ref_sends_one(sender, smtp, cli, tmp_path):
    batch(cli, write_rows(tmp_path / "a" / "invoices.csv", range(1, 4)))
    assert len(smtp.messages) == 3
    renamed = tmp_path / "b" / "rechnungen-final.csv"
    renamed.parent.mkdir()
    renamed.write_bytes((tmp_path / "a" / "invoices.csv").read_bytes())
    result, data = batch(cli, renamed)
    assert result.exit_code == 0 and data["sent"] == [] and len(data["skipped"]) == 3
    assert len(smtp.messages) == 3
    dry = cli("send-batch", str(renamed), "--template", "invoice", "--dry-run",
              "--resend-ref", "INV-0002")
    assert dry.exit_code == 0 and "skip" in dry.stdout and "INV-0001" in dry.stdout
    assert "already sent" in dry.stdout and len(smtp.messages) == 3
    result, data = batch(cli, renamed, "--resend-ref", "INV-0002")
    assert result.exit_code == 0, result.stderr
    assert data["sent"] == ["INV-0002"] and len(smtp.messages) == 4
    assert received(smtp)["customer2@example.org"] == 2
    docs = json.loads(cli("documents", "list", "--doc-ref", "INV-0002", "--json").stdout)
    assert [d["state"] for d in docs] == ["sent", "sent"], "both sends are recorded"
    assert count("SELECT COUNT(*) FROM events WHERE kind = 'resent'") == 1
    result, data = batch(cli, renamed, "--resend")
    assert len(data["sent"]) == 3 and len(smtp.messages) == 7


def test_path_typed_differently_is_the_same_batch(sender, smtp, tmp_path, monkeypatch):
    """Rows without doc_ref: the batch is keyed on the file's content, not how its path is
    typed (attachment paths resolved from a relative manifest path changed the id)."""
    folder = tmp_path / "m"
    path = write_rows(folder / "r.csv", range(1, 4), doc_ref=False)
    (folder / "t.pdf").write_bytes(b"%PDF terms")
    text = path.read_text().splitlines()
    path.write_text("\n".join([text[0] + ",attachments"] + [t + ",t.pdf" for t in text[1:]]))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "mailtix", "send-batch", "--template", "invoice", "--json"]
    first = subprocess.run(cmd + ["r.csv"], cwd=folder, capture_output=True, text=True,
                           env=env, stdin=subprocess.DEVNULL, timeout=120)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(cmd + [str(path)], cwd=tmp_path, capture_output=True, text=True,
                           env=env, stdin=subprocess.DEVNULL, timeout=120)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["sent"] == [] and len(smtp.messages) == 3
    assert "not protected across files" in json.loads(again.stdout)["warnings"][0]


def test_send_skips_a_document_sent_by_a_batch(sender, smtp, cli, tmp_path):
    batch(cli, write_rows(tmp_path / "x.csv", range(1, 3)))
    args = ["send", "--to", "Customer1@Example.org", "--template", "invoice", "--var",
            "name=C", "--var", "invoice_no=1", "--doc-ref", "INV-0001"]
    again = cli(*args)
    assert again.exit_code == 0 and "already sent" in again.stderr
    assert len(smtp.messages) == 2
    other = cli(*args[:2], "other@example.org", *args[3:])
    assert other.exit_code == 0 and len(smtp.messages) == 3, "another recipient is new"
    forced = cli(*args, "--resend", "--json")
    assert forced.exit_code == 0 and json.loads(forced.stdout)["state"] == "sent"
    assert received(smtp)["customer1@example.org"] == 2


def test_queued_document_is_not_queued_again(sender, smtp, cli, tmp_path):
    args = ["send", "--to", "customer1@example.org", "--template", "invoice", "--var",
            "name=C", "--var", "invoice_no=1", "--doc-ref", "INV-0001", "--queue"]
    assert cli(*args).exit_code == 0
    result, data = batch(cli, write_rows(tmp_path / "x.csv", range(1, 3)))
    assert data["sent"] == ["INV-0002"]
    assert "queued" in data["skipped"][0]["reason"]
    assert count("SELECT COUNT(*) FROM outbox") == 2
    assert cli("run").exit_code == 0 and len(smtp.messages) == 2


def test_changed_row_is_noticed_on_resume(sender, smtp, cli, tmp_path):
    path = write_rows(tmp_path / "x.csv", range(1, 4), **{"2": {"to": "typo@example.org"}})
    smtp.handler.replies = ["250 OK", "550 5.1.1 no such user"]
    result, data = batch(cli, path, "--batch-id", "march")
    assert result.exit_code == ExitCode.PARTIAL and list(data["failed"]) == ["INV-0002"]
    write_rows(path, range(1, 4))  # the address fixed in the ERP
    result, data = batch(cli, path, "--batch-id", "march")
    assert result.exit_code == 0, result.stderr
    assert data["sent"] == ["INV-0002"] and "INV-0002" in data["replaced"]
    assert received(smtp) == Counter({f"customer{i}@example.org": 1 for i in (1, 2, 3)})
    text = cli("send-batch", str(write_rows(path, range(1, 4), **{"3": {"name": "X"}})),
               "--template", "invoice", "--batch-id", "march")
    assert text.exit_code == 0 and "row 3" in text.stdout and "changed" in text.stdout
    assert len(smtp.messages) == 3


def test_rows_left_to_retry_exit_non_zero_and_421_backs_off(sender, smtp, cli, tmp_path):
    attempts = []

    def busy_after_first(n: int):
        attempts.append(n)
        return "421 4.3.2 too busy, come back later" if n >= 1 else None

    smtp.handler.before = busy_after_first
    result, data = batch(cli, write_rows(tmp_path / "x.csv", range(1, 7)))
    assert result.exit_code == ExitCode.PARTIAL
    assert len(data["sent"]) == 1 and len(data["retry"]) == 5
    assert len(attempts) == 2, "one try after the 421, not one connection per row"
    assert count("SELECT COUNT(*) FROM outbox WHERE state = 'retry'") == 5


def test_ctrl_c_during_rate_pause_stops_at_once(sender, smtp, tmp_path):
    path = write_rows(tmp_path / "x.csv", range(1, 5))
    cmd = [sys.executable, "-m", "mailtix", "send-batch", str(path), "--template", "invoice",
           "--rate", "6/min"]  # ten seconds between mails
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not smtp.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # inside the pause before the second mail
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(60)
    assert proc.returncode == ExitCode.INTERRUPTED, proc.stderr.read()
    assert len(smtp.messages) == 1
    assert count("SELECT COUNT(*) FROM outbox WHERE state != 'sent'") == 0


def test_address_with_line_break_is_refused(sender, smtp, cli, tmp_path):
    result = cli("send", "--to", "a@example.org\r\nBcc: b@example.org", "--template",
                 "invoice", "--var", "name=A", "--var", "invoice_no=1")
    assert result.exit_code == ExitCode.USAGE and "line break" in result.stderr
    assert "Traceback" not in result.stderr
    cc = cli("send", "--to", "a@example.org", "--cc", "c@example.org\nBcc: b@example.org",
             "--template", "invoice", "--var", "name=A", "--var", "invoice_no=1")
    assert cc.exit_code == ExitCode.USAGE
    store = Path(os.environ["MAILTIX_DATA"]) / "mailtix.sqlite3"
    assert smtp.messages == []
    assert not store.exists() or count("SELECT COUNT(*) FROM outbox") == 0
