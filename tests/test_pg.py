"""The PostgreSQL store backend: migrations, the SQL bridge, search, secrets, `store info`."""

from __future__ import annotations

import json
import os

import pytest
from helpers import db
from servers import simple_message

from mailtix.errors import ExitCode
from mailtix.store.pg import translate
from mailtix.store.schema import MIGRATIONS
from mailtix.store.url import redact


def test_translation_keeps_literals_and_ignores_duplicates():
    sql, wants_id = translate("SELECT id FROM tickets WHERE number LIKE '%' || ? AND s = 'a?b'")
    assert sql == "SELECT id FROM tickets WHERE number ILIKE '%%' || %s AND s = 'a?b'"
    assert not wants_id
    sql, wants_id = translate("INSERT OR IGNORE INTO tags(ticket_id, tag) VALUES (?, ?)")
    assert sql == "INSERT INTO tags(ticket_id, tag) VALUES (%s, %s) ON CONFLICT DO NOTHING"
    sql, wants_id = translate("INSERT INTO events(at, kind) VALUES (?, ?)")
    assert sql.endswith(" RETURNING id") and wants_id
    assert translate("BEGIN IMMEDIATE") == ("BEGIN", False)


def test_redact_hides_the_password_wherever_it_sits():
    assert redact("postgresql://ann:s3cret@db:5432/tix") == "postgresql://ann:***@db:5432/tix"
    assert "s3cret" not in redact("postgresql://ann@db/tix?password=s3cret&sslmode=require")
    assert redact("postgresql://ann@db/tix") == "postgresql://ann@db/tix"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_store_info_names_backend_and_schema(backend, cli, cfgdir, postgresql):
    assert cli("ticket", "list").exit_code == 0  # creates and migrates the store
    info = json.loads(cli("store", "info", "--json").stdout)
    assert info["backend"] == backend
    assert info["schema_version"] == len(MIGRATIONS) and info["size_bytes"] > 0
    if backend == "postgresql":
        assert postgresql.password not in json.dumps(info)
        with db() as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM schema_version "
                                                   "ORDER BY version")]
        assert versions == list(range(1, len(MIGRATIONS) + 1))
    text = cli("store", "info").stdout
    assert f"backend: {backend}" in text


def test_password_in_config_url_is_refused_and_never_echoed(cli, cfgdir):
    from conftest import write_config

    write_config(cfgdir, '[store]\nurl = "postgresql://ann:Geheim99@127.0.0.1/tix"\n')
    result = cli("config", "check")
    assert result.exit_code == ExitCode.CONFIG
    assert "store.url" in result.stderr and "Geheim99" not in result.stderr + result.stdout


def test_config_url_with_password_from_keyring(cli, cfgdir, postgresql, keyring_data):
    from conftest import write_config

    url = postgresql.url(postgresql.new_database())
    write_config(cfgdir, f'[store]\nurl = "{url}"\n')
    assert cli("store", "password", input=postgresql.password + "\n").exit_code == 0
    assert ("mailtix", "store:postgresql") in keyring_data
    info = json.loads(cli("store", "info", "--json").stdout)
    assert info["backend"] == "postgresql" and info["store"] == url


def test_wrong_password_is_one_clear_line(cli, pg_store, monkeypatch):
    monkeypatch.setenv("MAILTIX_STORE_PASSWORD", "wrong-Pw-123")
    result = cli("ticket", "list")
    assert result.exit_code == ExitCode.STORE
    assert "cannot connect to the PostgreSQL store" in result.stderr
    assert "Traceback" not in result.stderr and "wrong-Pw-123" not in result.stderr


def test_search_stems_german_and_english_ranks_and_highlights(
        pg_store, dovecot, mailbox_account, cli):
    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message(subject="Frage zur Rechnung", message_id="<r1@x.org>",
                                         sender="kunde@firma.example",
                                         body="Die Rechnungen vom März sind doppelt gebucht.\n"))
    dovecot.deliver(user, simple_message(subject="Printers", message_id="<r2@x.org>",
                                         sender="jane@customer.example",
                                         body="Both printers stopped printing today.\n"))
    dovecot.deliver(user, simple_message(subject="Hallo", message_id="<r3@x.org>",
                                         sender="tom@buyer.example",
                                         body="Nur ein Gruß, und nebenbei: Rechnung.\n"))
    assert cli("run").exit_code == 0
    hits = json.loads(cli("ticket", "search", "Rechnungen", "--json").stdout)
    # German stems: the plural finds the singular; the subject hit ranks above the body one
    assert [h["subject"] for h in hits] == ["Frage zur Rechnung", "Hallo"]
    assert "[Rechnung]" in hits[0]["snippet"]
    english = json.loads(cli("ticket", "search", "printer", "--json").stdout)
    assert [h["subject"] for h in english] == ["Printers"]
    assert json.loads(cli("ticket", "search", "kunde@firma.example", "--json").stdout)
    # user input is words, never query syntax
    assert json.loads(cli("ticket", "search", "printer' | !(x", "--json").stdout) == []


def test_store_check_on_postgresql(cli, pg_store, postgresql):
    result = cli("store", "check", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["backend"] == "postgresql"
    assert postgresql.password not in result.stdout
    assert cli("store", "check").stdout.startswith(pg_store + ": ok")


def test_store_password_is_kept_from_child_processes(monkeypatch):
    """password_cmd and parse workers get the environment without the store's password."""
    from mailtix import secrets

    monkeypatch.setenv("MAILTIX_STORE_PASSWORD", "pg-Secret-7")
    assert "MAILTIX_STORE_PASSWORD" not in secrets.child_environment()
    with secrets.withheld():
        assert "MAILTIX_STORE_PASSWORD" not in os.environ
    assert os.environ["MAILTIX_STORE_PASSWORD"] == "pg-Secret-7"


def test_reading_commands_work_on_postgresql(pg_store, dovecot, mailbox_account, cli):
    """Every command that reads the store, once, on PostgreSQL after a real run."""
    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message(subject="Hello there", sender="jane@customer.example"))
    assert cli("run").exit_code == 0
    for args in (("status", "--json"), ("log",), ("outbox", "list"), ("documents", "list"),
                 ("contact", "list"), ("contact", "show", "jane@customer.example"),
                 ("actions", "list"), ("archive", "list"), ("reprocess", "--list"),
                 ("ticket", "list", "--format", "csv"), ("store", "check")):
        result = cli(*args)
        assert result.exit_code == 0, (args, result.stderr)
    status = json.loads(cli("status", "--json").stdout)
    assert status["accounts"][0]["account"] == "support"
