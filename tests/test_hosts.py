"""Several hosts on one PostgreSQL store: two `mailtix run` processes with their own data dirs
at the same time against Dovecot and aiosmtpd store every mail once and send every outbox mail
once; a dead host's claimed row is sent again, with the same Message-ID, after its claim."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers import db
from servers import simple_message

ROOT = Path(__file__).resolve().parents[1]
ACCOUNTS = ("alpha", "beta", "gamma")
PER_ACCOUNT = 5
FUTURE = "Mon, 23 Nov 2099 10:00:00 +0000"  # newer than the first run: answered


def smtp_extra(name: str, smtp) -> str:
    return (f"[accounts.{name}.autoresponder]\nenabled = true\n"
            f"[accounts.{name}.smtp]\nhost = \"127.0.0.1\"\nport = {smtp.port}\ntls = \"none\"\n")


def start_host(tmp_path: Path, name: str) -> subprocess.Popen:
    data = tmp_path / f"host-{name}"
    data.mkdir(mode=0o700)
    env = dict(os.environ, PYTHONPATH=str(ROOT), MAILTIX_DATA=str(data))
    log = open(tmp_path / f"host-{name}.log", "wb")  # a file: a stray child never blocks a pipe
    with log:
        return subprocess.Popen([sys.executable, "-m", "mailtix", "run", "--quiet"], env=env,
                                cwd=ROOT, stdout=log, stderr=log)


def test_two_hosts_store_once_and_send_once(pg_store, dovecot, mailbox_account, smtp,
                                             tmp_path):
    users = {}
    for name in ACCOUNTS:
        users[name], _ = mailbox_account(name, extra=smtp_extra(name, smtp))
        for i in range(PER_ACCOUNT):
            dovecot.deliver(users[name], simple_message(
                subject=f"{name} question {i}", message_id=f"<{name}{i}@x.org>",
                sender=f"customer{i}@{name}.example", Date=FUTURE))
    expected = len(ACCOUNTS) * PER_ACCOUNT
    for _round in range(2):  # the second round: both hosts find nothing new, at once
        hosts = [start_host(tmp_path, f"{n}{_round}") for n in ("a", "b")]
        codes = [h.wait(timeout=120) for h in hosts]
        logs = [(tmp_path / f"host-{n}{_round}.log").read_text() for n in ("a", "b")]
        assert codes == [0, 0], logs
    with db() as conn:
        ids = [r[0] for r in conn.execute("SELECT message_id FROM messages "
                                          "WHERE direction = 'in'")]
        assert sorted(ids) == sorted(f"<{n}{i}@x.org>" for n in ACCOUNTS
                                     for i in range(PER_ACCOUNT))
        assert conn.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == expected
        states = Counter(r[0] for r in conn.execute("SELECT state FROM outbox"))
    assert states == {"sent": expected}
    sent = Counter(m["raw"].split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0]
                   for m in smtp.messages)
    assert len(sent) == expected and set(sent.values()) == {1}


def test_dead_hosts_row_is_sent_again_after_its_claim(pg_store, dovecot, mailbox_account, smtp,
                                                       cli, monkeypatch):
    import mailtix.delivery

    user, _ = mailbox_account("alpha", extra=smtp_extra("alpha", smtp))
    for i in range(2):
        dovecot.deliver(user, simple_message(subject=f"q{i}", message_id=f"<q{i}@x.org>",
                                             sender=f"c{i}@example.org", Date=FUTURE))
    # a run that fetches and queues the two autoresponses but sends nothing
    with monkeypatch.context() as m:
        m.setattr(mailtix.delivery, "deliver", lambda *a, **k: mailtix.delivery.DeliveryReport())
        assert cli("run").exit_code == 0
    assert smtp.messages == []
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    future = (datetime.now(UTC) + timedelta(minutes=10)).isoformat(timespec="seconds")
    with db() as conn:
        rows = conn.execute("SELECT id, message_id FROM outbox ORDER BY id").fetchall()
        assert len(rows) == 2
        # one host died while sending the first; another is sending the second right now
        conn.execute("UPDATE outbox SET state = 'sending', claimed_by = 'dead:1', "
                     "claimed_until = ? WHERE id = ?", (past, rows[0][0]))
        conn.execute("UPDATE outbox SET state = 'sending', claimed_by = 'alive:2', "
                     "claimed_until = ? WHERE id = ?", (future, rows[1][0]))
    assert cli("run").exit_code == 0
    # the dead host's row went out with the Message-ID it was queued with; the live host's
    # row is left to that host
    assert len(smtp.messages) == 1
    assert rows[0][1].encode() in smtp.messages[0]["raw"]
    with db() as conn:
        states = dict(conn.execute("SELECT id, state FROM outbox").fetchall())
    assert states == {rows[0][0]: "sent", rows[1][0]: "sending"}


def test_account_fetched_by_another_host_is_skipped(pg_store, dovecot, mailbox_account, cli):
    """The per-account advisory lock: while another host holds alpha, this run leaves it."""
    import json

    from mailtix.store import Store

    alpha, _ = mailbox_account("alpha")
    beta, _ = mailbox_account("beta")
    dovecot.deliver(alpha, simple_message(subject="for alpha"))
    dovecot.deliver(beta, simple_message(subject="for beta"))
    other_host = Store.open(Path(os.environ["MAILTIX_DATA"]) / "other")
    try:
        with other_host.account_lock("alpha") as mine:
            assert mine
            report = json.loads(cli("run", "--json").stdout)
            skipped = {a["account"]: a["skipped"] for a in report["accounts"]}
            assert skipped["alpha"] == "being fetched by another host" and not skipped["beta"]
            with db() as conn:
                subjects = [r[0] for r in conn.execute("SELECT subject FROM messages")]
            assert subjects == ["for beta"]
        report = json.loads(cli("run", "--json").stdout)
        assert {a["account"]: a["fetched"] for a in report["accounts"]} == {"alpha": 1,
                                                                            "beta": 0}
    finally:
        other_host.close()


def test_a_row_another_host_is_claiming_is_stepped_around(pg_store, dovecot, mailbox_account,
                                                          smtp, cli):
    """FOR UPDATE SKIP LOCKED: a row locked by another host's claim is neither waited for nor
    sent; it stays with that host."""
    user, _ = mailbox_account("alpha", extra=smtp_extra("alpha", smtp))
    dovecot.deliver(user, simple_message(subject="q", sender="c@example.org", Date=FUTURE))
    import mailtix.delivery

    original = mailtix.delivery.deliver
    mailtix.delivery.deliver = lambda *a, **k: mailtix.delivery.DeliveryReport()
    try:
        assert cli("run").exit_code == 0
    finally:
        mailtix.delivery.deliver = original
    with db() as other_host:
        other_host.execute("BEGIN")
        row = other_host.execute("SELECT id FROM outbox FOR UPDATE").fetchone()
        assert cli("run").exit_code == 0
        assert smtp.messages == []
        other_host.execute("ROLLBACK")
    assert cli("run").exit_code == 0
    assert len(smtp.messages) == 1
    with db() as conn:
        assert conn.execute("SELECT state FROM outbox WHERE id = ?", (row[0],)).fetchone()[0] \
            == "sent"


def test_send_batch_on_one_host_while_another_runs(pg_store, cfgdir, smtp, tmp_path):
    """Host A sends a paced batch (each next row is queued while A waits); host B's runs
    deliver the outbox meanwhile and find those rows due too (in trials B's runs sent
    several): every document goes out exactly once, and A reports no row as left over."""
    import csv
    import time

    from conftest import write_config

    write_config(cfgdir, f'[accounts.billing]\nemail = "billing@example.com"\n'
                         f'[accounts.billing.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                         'tls = "none"\n')
    (cfgdir / "templates").mkdir()
    (cfgdir / "templates" / "invoice.txt").write_text("subject: Invoice {{ doc_ref }}\n---\n"
                                                      "Dear customer, invoice {{ doc_ref }}.\n")
    path = tmp_path / "batch.csv"
    rows = 30
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["to", "doc_ref"])
        writer.writeheader()
        for i in range(rows):
            writer.writerow({"to": f"customer{i}@example.org", "doc_ref": f"INV-{i:04d}"})
    smtp.handler.before = lambda received: time.sleep(0.03)  # a server that takes its time

    def host(name: str, *args: str) -> subprocess.Popen:
        data = tmp_path / f"host-{name}"
        data.mkdir(mode=0o700, exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT), MAILTIX_DATA=str(data))
        with open(tmp_path / f"{name}.log", "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "mailtix", *args], env=env,
                                    cwd=tmp_path, stdout=log, stderr=log,
                                    stdin=subprocess.DEVNULL)

    batch = host("a", "send-batch", str(path), "--template", "invoice", "--rate", "300/min")
    runs = 0
    while batch.poll() is None and runs < 20:
        assert host("b", "run", "--quiet").wait(timeout=120) == 0
        runs += 1
    batch.wait(timeout=120)
    assert batch.returncode == 0, (tmp_path / "a.log").read_text()
    received = Counter(m["to"][0] for m in smtp.messages)
    assert len(received) == rows and set(received.values()) == {1}, received.most_common(3)
    with db() as conn:
        assert dict(conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state")
                    .fetchall()) == {"sent": rows}

