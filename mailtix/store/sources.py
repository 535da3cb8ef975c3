"""What intake needs to know about the keys of local sources (Maildir, mbox, stdin)."""

from __future__ import annotations

import sqlite3

from mailtix.store.db import now


def stored_keys(conn: sqlite3.Connection, account: str) -> set[str]:
    """Keys (UIDLs and local keys) of the account's mail that is in the store."""
    return {r[0] for r in conn.execute(
        "SELECT uidl FROM message_sources WHERE account = ? AND uidl != ''", (account,))}


def known_keys(conn: sqlite3.Connection, account: str) -> set[str]:
    """Every key of the account already settled: stored, or recorded as seen by a baseline,
    by `since`, or by a POP3 fetch."""
    return stored_keys(conn, account) | {r[0] for r in conn.execute(
        "SELECT uidl FROM pop3_seen WHERE account = ?", (account,))}


def first_delivery(conn: sqlite3.Connection, account: str) -> None:
    """An account that only ever gets mail from `deliver` has no first run; its first delivery
    is one (the autoresponder answers no mail dated before it)."""
    conn.execute("INSERT OR IGNORE INTO account_state(account) VALUES (?)", (account,))
    conn.execute("UPDATE account_state SET first_run_at = ? WHERE account = ? AND "
                 "first_run_at IS NULL", (now(), account))
