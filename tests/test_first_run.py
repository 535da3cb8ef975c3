"""`make install`'s first run: the example Maildir ingested into a throwaway store, the ticket
list printed; no server, no credentials, the example files left as they are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import db

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def snapshot() -> list[tuple[str, bytes]]:
    box = EXAMPLES / "maildir"
    return sorted((str(p.relative_to(box)), p.read_bytes()) for p in box.rglob("*") if p.is_file())


def test_make_install_ends_with_the_first_run():
    recipe = (ROOT / "Makefile").read_text().split("\ninstall:", 1)[1].split("\n\n", 1)[0]
    assert "examples/first-run.sh" in recipe


def test_first_run_script_prints_the_tickets(tmp_path):
    before = snapshot()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILTIX_")}
    env.update(MAILTIX_BIN=f"{sys.executable} -m mailtix", PYTHONPATH=str(ROOT),
               HOME=str(tmp_path), TMPDIR=str(tmp_path))
    result = subprocess.run(["sh", str(EXAMPLES / "first-run.sh")], capture_output=True,
                            env=env, timeout=120)
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert "support: 6 new message(s), 5 new ticket(s), 1 threaded" in out
    for subject in ("Order 10234: wrong size delivered", "Rechnung März: Überweisung",
                    "Cannot log in to my account", "Damaged parcel, photo attached",
                    "Undelivered Mail Returned to Sender"):
        assert subject in out, subject
    assert snapshot() == before, "the example Maildir was changed"
    assert list(tmp_path.iterdir()) == [], "the throwaway store was left behind"


def test_example_maildir_ingest(cli):
    result = cli("--config", str(EXAMPLES / "first-run.toml"), "run")
    assert result.exit_code == 0, result.stdout + result.stderr
    with db() as conn:
        rows = {r["subject"]: r for r in conn.execute(
            "SELECT m.*, t.queue, t.number FROM messages m JOIN tickets t ON t.id = m.ticket_id")}
        tags = {(r[0], r[1]) for r in conn.execute(
            "SELECT t.number, g.tag FROM tags g JOIN tickets t ON t.id = g.ticket_id")}
        attachments = [r[0] for r in conn.execute(
            "SELECT filename FROM attachments a JOIN messages m ON m.id = a.message_id "
            "WHERE m.subject LIKE 'Damaged parcel%'")]
    question = rows["Order 10234: wrong size delivered"]
    assert rows["Re: Order 10234: wrong size delivered"]["ticket_id"] == question["ticket_id"]
    german = rows["Rechnung März: Überweisung doppelt ausgeführt – bitte um Rückzahlung"]
    assert german["queue"] == "billing" and "Grüßen" in german["body_text"]
    assert german["from_name"] == "Jürgen Weiß"
    html = rows["Cannot log in to my account"]
    assert html["body_html"] and "K-88213" in html["body_text"]
    assert sorted(attachments) == ["order-10251.csv", "parcel.png"]
    bounce = rows["Undelivered Mail Returned to Sender"]
    assert bounce["bounce"] == 1 and (bounce["number"], "bounce") in tags
    assert sum(r["malformed"] for r in rows.values()) == 0
