"""Small helpers shared by tests that look into the store."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path


def db() -> sqlite3.Connection:
    """The test's store, SQLite or PostgreSQL (the backend fixture), as a sqlite3-like
    connection."""
    if os.environ.get("MAILTIX_STORE_URL"):
        from mailtix.store import pg

        return pg.connect(os.environ["MAILTIX_STORE_URL"], os.environ["MAILTIX_STORE_PASSWORD"])
    conn = sqlite3.connect(Path(os.environ["MAILTIX_DATA"]) / "mailtix.sqlite3")
    conn.row_factory = sqlite3.Row
    return conn


def count(sql: str, *args) -> int:
    with db() as conn:
        return int(conn.execute(sql, args).fetchone()[0])


@contextmanager
def selected(dovecot, user: str, folder: str = "INBOX"):
    """A read-only imaplib session on one folder, logged out afterwards."""
    client = dovecot.imap_client(user)
    try:
        client.select(folder, readonly=True)
        yield client
    finally:
        client.logout()


def server_uids(dovecot, user: str, folder: str = "INBOX", criteria: str = "ALL") -> list[int]:
    with selected(dovecot, user, folder) as client:
        typ, data = client.uid("SEARCH", criteria)
        return [int(x) for x in data[0].split()]


def server_flags(dovecot, user: str, folder: str = "INBOX") -> dict[int, str]:
    with selected(dovecot, user, folder) as client:
        typ, data = client.uid("FETCH", "1:*", "(UID FLAGS)")
    out = {}
    for line in data:
        if isinstance(line, bytes):
            text = line.decode()
            uid = int(text.split("UID ")[1].split()[0].rstrip(")"))
            out[uid] = text.split("FLAGS (")[1].split(")")[0]
    return out


def server_bodies(dovecot, user: str, folder: str = "INBOX") -> dict[int, bytes]:
    with selected(dovecot, user, folder) as client:
        typ, data = client.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
    out = {}
    for item in data:
        if isinstance(item, tuple):
            uid = int(item[0].split(b"UID ")[1].split()[0])
            out[uid] = item[1]
    return out


def only_ticket(cli) -> str:
    """The number of the single open ticket (fails loudly if there is not exactly one)."""
    rows = json.loads(cli("ticket", "list", "--json").stdout)
    assert len(rows) == 1, rows
    return rows[0]["number"]


def billing_sender(cfgdir: Path, port: int, template: str = "") -> None:
    """A config with one sending account `billing` on the SMTP server at port, and the
    template `invoice` with the given text (none when empty)."""
    from conftest import write_config

    write_config(cfgdir, f'[accounts.billing]\nemail = "billing@example.com"\n'
                         f'[accounts.billing.smtp]\nhost = "127.0.0.1"\nport = {port}\n'
                         'tls = "none"\n')
    if template:
        (cfgdir / "templates").mkdir(exist_ok=True)
        (cfgdir / "templates" / "invoice.txt").write_text(template)
