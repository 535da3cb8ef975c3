"""Rows behind the agent's mail actions: ticket lookup by a short number, the server copies of
a ticket's mail, trash and restore, the unread marker, contact details."""

from __future__ import annotations

import sqlite3
from typing import Any

from mailtix.store.db import now
from mailtix.store.tickets import event, get, resolve


def by_suffix(conn: sqlite3.Connection, digits: str) -> list[sqlite3.Row]:
    """Tickets whose number ends in `digits`, merges followed, each once."""
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM tickets WHERE number LIKE '%' || ? ORDER BY number", (digits,))]
    seen = dict.fromkeys(resolve(conn, i) for i in ids)
    return [row for i in seen if (row := get(conn, i)) is not None]


def server_copies(conn: sqlite3.Connection, ticket_id: int) -> list[sqlite3.Row]:
    """Where the ticket's incoming mail lies on IMAP servers (POP3 copies have no folder)."""
    return conn.execute(
        "SELECT s.id, s.account, s.folder, s.uidvalidity, s.uid, s.trashed_from, "
        "m.message_id FROM message_sources s JOIN messages m ON m.id = s.message_id "
        "WHERE m.ticket_id = ? AND s.uidl = '' AND m.direction = 'in' ORDER BY s.id",
        (ticket_id,)).fetchall()


def moved(conn: sqlite3.Connection, source_id: int, folder: str, uidvalidity: int, uid: int,
          trashed_from: str = "") -> None:
    """The server copy now lies elsewhere. The old key stays unique forever (UIDs are never
    reused in a UIDVALIDITY), so rewriting the row keeps invariant 2; a fetch of the new
    folder that meets the copy again finds it by Message-ID and content as before."""
    clash = conn.execute(
        "SELECT id FROM message_sources WHERE account = (SELECT account FROM message_sources "
        "WHERE id = ?) AND folder = ? AND uidvalidity = ? AND uid = ? AND uidl = '' AND id != ?",
        (source_id, folder, uidvalidity, uid, source_id)).fetchone()
    if clash is not None:  # a fetch of the target folder recorded it already
        conn.execute("DELETE FROM message_sources WHERE id = ?", (source_id,))
        source_id = int(clash[0])
    conn.execute("UPDATE message_sources SET folder = ?, uidvalidity = ?, uid = ?, "
                 "trashed_from = ? WHERE id = ?",
                 (folder, uidvalidity, uid, trashed_from, source_id))


def set_unread(conn: sqlite3.Connection, ticket_id: int, unread: bool, agent: str) -> bool:
    changed = conn.execute("UPDATE tickets SET unread = ? WHERE id = ? AND unread != ?",
                           (int(unread), ticket_id, int(unread))).rowcount
    if changed:
        event(conn, "unread" if unread else "read", ticket_id=ticket_id, agent=agent)
    return bool(changed)


def trash(conn: sqlite3.Connection, ticket_id: int, agent: str, detail: str) -> None:
    conn.execute("UPDATE tickets SET status_before_delete = status, status = 'deleted', "
                 "deleted_at = ?, updated_at = ? WHERE id = ? AND status != 'deleted'",
                 (now(), now(), ticket_id))
    event(conn, "trash", ticket_id=ticket_id, agent=agent, detail=detail)


def restore(conn: sqlite3.Connection, ticket_id: int, agent: str, detail: str) -> str:
    row = conn.execute("SELECT status_before_delete FROM tickets WHERE id = ?",
                       (ticket_id,)).fetchone()
    status = row[0] or "open"
    conn.execute("UPDATE tickets SET status = ?, deleted_at = NULL, status_before_delete = '', "
                 "updated_at = ? WHERE id = ?", (status, now(), ticket_id))
    event(conn, "restore", ticket_id=ticket_id, agent=agent, detail=detail)
    return status


def edit_contact(conn: sqlite3.Connection, email: str, changes: dict[str, str],
                 agent: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT id, email, name, company FROM contacts WHERE email = ?",
                       (email,)).fetchone()
    if row is None:
        return None
    for col, value in changes.items():
        if col not in ("name", "company"):
            raise ValueError(col)
        if row[col] != value:
            conn.execute(f"UPDATE contacts SET {col} = ? WHERE id = ?", (value, row["id"]))
            event(conn, "contact", agent=agent,
                  detail=f"{row['email']} {col}: {row[col] or '-'} -> {value or '-'}")
    out = conn.execute("SELECT email, name, company FROM contacts WHERE id = ?",
                       (row["id"],)).fetchone()
    return dict(out)


def ticket_numbers(conn: sqlite3.Connection, limit: int = 200) -> list[sqlite3.Row]:
    """Numbers and subjects of the tickets worked on most recently (for shell completion)."""
    return conn.execute(
        "SELECT number, subject FROM tickets WHERE merged_into IS NULL AND status NOT IN "
        "('deleted', 'spam') ORDER BY last_activity_at DESC LIMIT ?", (limit,)).fetchall()


def known_folders(conn: sqlite3.Connection, account: str = "") -> list[str]:
    """Folders the store has met on the servers: fetched ones, and where copies were moved."""
    rows = conn.execute(
        "SELECT folder FROM folder_state WHERE ? IN ('', account) UNION "
        "SELECT folder FROM message_sources WHERE uidl = '' AND ? IN ('', account) UNION "
        "SELECT folder FROM archive_folders WHERE ? IN ('', account) ORDER BY folder",
        (account, account, account))
    return [r[0] for r in rows]
