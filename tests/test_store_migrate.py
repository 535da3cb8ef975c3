"""`mailtix store migrate --to postgresql://…` and `store info` across the two backends."""

from __future__ import annotations

import json
import os

from helpers import db
from servers import simple_message

from mailtix.errors import ExitCode

FUTURE = "Mon, 23 Nov 2099 10:00:00 +0000"


def test_sqlite_store_copied_verified_and_used(dovecot, mailbox_account, smtp, cli, postgresql,
                                               monkeypatch):
    user, _ = mailbox_account(extra=(
        "[accounts.support.autoresponder]\nenabled = true\n[accounts.support.smtp]\n"
        f'host = "127.0.0.1"\nport = {smtp.port}\ntls = "none"\n'))
    for i in range(3):
        dovecot.deliver(user, simple_message(subject=f"Rechnung {i}", message_id=f"<m{i}@x.org>",
                                             sender=f"c{i}@firma.example", Date=FUTURE))
    assert cli("run").exit_code == 0
    numbers = json.loads(cli("ticket", "list", "--json").stdout)
    a, b = sorted(r["number"] for r in numbers)[:2]
    assert cli("ticket", "merge", a, b).exit_code == 0  # a ticket pointing at another
    with db() as conn:
        before = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("tickets", "messages", "raw_messages", "outbox", "events")}
    url = postgresql.url(postgresql.new_database())
    monkeypatch.setenv("MAILTIX_STORE_PASSWORD", postgresql.password)
    result = cli("store", "migrate", "--to", url, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert {t: report["tables"][t] for t in before} == before
    assert report["raw_messages_verified"] == before["raw_messages"] > 0
    # the same commands now read the copy
    monkeypatch.setenv("MAILTIX_STORE_URL", url)
    assert json.loads(cli("store", "info", "--json").stdout)["backend"] == "postgresql"
    assert sorted(r["number"] for r in json.loads(cli("ticket", "list", "--json").stdout)) \
        == sorted(r["number"] for r in numbers if r["number"] != b)
    assert json.loads(cli("ticket", "search", "Rechnung", "--json").stdout)
    # new rows get new ids after the copied ones; a second ingest finds nothing new
    dovecot.deliver(user, simple_message(subject="after the move", sender="n@firma.example"))
    run = json.loads(cli("run", "--json").stdout)
    assert run["accounts"][0]["fetched"] == 1
    with db() as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages WHERE direction = 'in'"
                            ).fetchone()[0] == 4
    # a target that holds data is refused, and nothing changes there
    monkeypatch.delenv("MAILTIX_STORE_URL")
    again = cli("store", "migrate", "--to", url)
    assert again.exit_code == ExitCode.STORE and "already holds data" in again.stderr
    assert postgresql.password not in again.stderr + again.stdout
    assert os.environ["MAILTIX_STORE_PASSWORD"] == postgresql.password
