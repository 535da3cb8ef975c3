"""Per-folder IMAP state, POP3 UIDLs, pending server actions and per-account health."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from mailtix.store.db import now


def folder(conn: sqlite3.Connection, account: str, name: str) -> tuple[int, int] | None:
    row = conn.execute("SELECT uidvalidity, last_uid FROM folder_state WHERE account = ? AND "
                       "folder = ?", (account, name)).fetchone()
    return (int(row[0]), int(row[1])) if row else None


def set_folder(conn: sqlite3.Connection, account: str, name: str, uidvalidity: int,
               last_uid: int) -> None:
    conn.execute("INSERT INTO folder_state(account, folder, uidvalidity, last_uid, updated_at) "
                 "VALUES (?,?,?,?,?) ON CONFLICT(account, folder) DO UPDATE SET "
                 "uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, "
                 "updated_at = excluded.updated_at", (account, name, uidvalidity, last_uid, now()))


def pop3_seen(conn: sqlite3.Connection, account: str) -> set[str]:
    return {r[0] for r in conn.execute("SELECT uidl FROM pop3_seen WHERE account = ?", (account,))}


def mark_pop3_seen(conn: sqlite3.Connection, account: str, uidls: list[str]) -> None:
    ts = now()
    conn.executemany("INSERT OR IGNORE INTO pop3_seen(account, uidl, seen_at) VALUES (?,?,?)",
                     [(account, u, ts) for u in uidls])


def add_action(conn: sqlite3.Connection, account: str, folder_name: str, action: str, *,
               uidvalidity: int = 0, uid: int = 0, uidl: str = "", target: str = "") -> None:
    conn.execute("INSERT INTO pending_actions(account, folder, uidvalidity, uid, uidl, action, "
                 "target, created_at) VALUES (?,?,?,?,?,?,?,?)",
                 (account, folder_name, uidvalidity, uid, uidl, action, target, now()))


def actions(conn: sqlite3.Connection, account: str, folder_name: str | None = None
            ) -> list[sqlite3.Row]:
    """Server actions still to do (pending, or flagged and waiting for a safe expunge);
    parked ones wait for `mailtix actions retry`."""
    sql = "SELECT * FROM pending_actions WHERE account = ? AND state != 'parked'"
    args: tuple = (account,)
    if folder_name is not None:
        sql += " AND folder = ?"
        args += (folder_name,)
    return conn.execute(sql + " ORDER BY folder, uid", args).fetchall()


def done_actions(conn: sqlite3.Connection, ids: list[int]) -> None:
    conn.executemany("DELETE FROM pending_actions WHERE id = ?", [(i,) for i in ids])


def actions_failed(conn: sqlite3.Connection, ids: list[int], error: str,
                   max_attempts: int) -> int:
    """Count a failed attempt; after max_attempts the actions are parked. Returns how many
    were parked now."""
    conn.executemany("UPDATE pending_actions SET attempts = attempts + 1, last_error = ? "
                     "WHERE id = ?", [(error[:500], i) for i in ids])
    marks = ",".join("?" * len(ids))
    cur = conn.execute(f"UPDATE pending_actions SET state = 'parked' WHERE id IN ({marks}) "
                       "AND attempts >= ?", (*ids, max_attempts))
    return cur.rowcount


def actions_waiting(conn: sqlite3.Connection, ids: list[int], why: str) -> None:
    """Flagged \\Deleted on the server, expunged once that cannot remove others' mail."""
    conn.executemany("UPDATE pending_actions SET state = 'waiting', last_error = ? WHERE id = ?",
                     [(why[:500], i) for i in ids])


def action_summary(conn: sqlite3.Connection, account: str | None = None) -> list[dict]:
    """Per account, folder, action, target and state: how many, and the last error."""
    sql = ("SELECT account, folder, action, target, state, COUNT(*) AS count, "
           "MAX(attempts) AS attempts, MAX(last_error) AS last_error FROM pending_actions")
    args: tuple = ()
    if account is not None:
        sql += " WHERE account = ?"
        args = (account,)
    sql += " GROUP BY account, folder, action, target, state ORDER BY account, folder"
    return [dict(r) for r in conn.execute(sql, args)]


def retry_parked(conn: sqlite3.Connection, account: str | None = None) -> int:
    sql = "UPDATE pending_actions SET state = 'pending', attempts = 0 WHERE state = 'parked'"
    args: tuple = ()
    if account is not None:
        sql += " AND account = ?"
        args = (account,)
    return conn.execute(sql, args).rowcount


def drop_parked(conn: sqlite3.Connection, account: str | None = None) -> int:
    sql = "DELETE FROM pending_actions WHERE state = 'parked'"
    args: tuple = ()
    if account is not None:
        sql += " AND account = ?"
        args = (account,)
    return conn.execute(sql, args).rowcount


def account_row(conn: sqlite3.Connection, account: str) -> sqlite3.Row:
    conn.execute("INSERT OR IGNORE INTO account_state(account) VALUES (?)", (account,))
    return conn.execute("SELECT * FROM account_state WHERE account = ?", (account,)).fetchone()


def run_started(conn: sqlite3.Connection, account: str) -> str:
    """Record the run; returns the account's first run time (the autoresponder's horizon)."""
    row = account_row(conn, account)
    ts = now()
    first = row["first_run_at"] or ts
    conn.execute("UPDATE account_state SET last_run_at = ?, first_run_at = ? WHERE account = ?",
                 (ts, first, account))
    return str(first)


def run_ok(conn: sqlite3.Connection, account: str, fetched: int) -> None:
    conn.execute("UPDATE account_state SET last_success_at = ?, failures = 0, backoff_until = NULL,"
                 " failing_since = NULL, last_fetched = ?, fetched_total = fetched_total + ? "
                 "WHERE account = ?", (now(), fetched, fetched, account))


def run_failed(conn: sqlite3.Connection, account: str, error: str, backoff_max: int) -> int:
    row = account_row(conn, account)
    failures = int(row["failures"]) + 1
    delay = min(60 * 2 ** (failures - 1), backoff_max)
    until = (datetime.now(UTC) + timedelta(seconds=delay)).isoformat(timespec="seconds")
    conn.execute("UPDATE account_state SET failures = ?, last_error = ?, last_error_at = ?, "
                 "backoff_until = ?, failing_since = COALESCE(failing_since, ?) "
                 "WHERE account = ?", (failures, error[:1000], now(), until, now(), account))
    return delay


def backoff_until(conn: sqlite3.Connection, account: str) -> datetime | None:
    row = account_row(conn, account)
    if not row["backoff_until"]:
        return None
    until = datetime.fromisoformat(row["backoff_until"])
    return until if until > datetime.now(UTC) else None
