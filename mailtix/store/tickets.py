"""Tickets, their numbers, contacts, watchers, tags and history."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime

from mailtix.store.db import now


def next_number(conn: sqlite3.Connection, when: datetime | None = None) -> str:
    """Date plus a daily counter (202611220001); the counter row makes numbers never reused."""
    day = (when or datetime.now(UTC)).strftime("%Y%m%d")
    row = conn.execute("INSERT INTO ticket_counter(day, last) VALUES (?, 1) "
                       "ON CONFLICT(day) DO UPDATE SET last = ticket_counter.last + 1 "
                       "RETURNING last",
                       (day,)).fetchone()
    return f"{day}{row[0]:04d}"


def create(conn: sqlite3.Connection, *, subject: str, account: str, contact_id: int | None,
           queue: str = "", project: str = "", assignee: str = "", status: str = "new",
           priority: str = "normal", doc_ref: str = "", type: str = "") -> tuple[int, str]:
    number = next_number(conn)
    ts = now()
    cur = conn.execute(
        "INSERT INTO tickets(number, subject, status, priority, queue, project, assignee, account,"
        " contact_id, doc_ref, type, created_at, updated_at, last_activity_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (number, subject, status, priority, queue, project, assignee, account, contact_id,
         doc_ref, type, ts, ts, ts))
    ticket_id = int(cur.lastrowid or 0)
    event(conn, "created", ticket_id=ticket_id, account=account,
          detail=f"queue={queue} status={status}")
    return ticket_id, number


def resolve(conn: sqlite3.Connection, ticket_id: int) -> int:
    """Follow merges: a ticket merged into another redirects there."""
    seen = set()
    while ticket_id not in seen:
        seen.add(ticket_id)
        row = conn.execute("SELECT merged_into FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
        if row is None or row[0] is None:
            return ticket_id
        ticket_id = row[0]
    return ticket_id


def by_number(conn: sqlite3.Connection, number: str) -> sqlite3.Row | None:
    row = conn.execute("SELECT id FROM tickets WHERE number = ?", (number,)).fetchone()
    if row is None:
        return None
    return get(conn, resolve(conn, row[0]))


def get(conn: sqlite3.Connection, ticket_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM tickets WHERE id = ?", (ticket_id,)).fetchone()


def activity(conn: sqlite3.Connection, ticket_id: int, *, reopen: bool, agent: str = "") -> None:
    ts = now()
    conn.execute("UPDATE tickets SET last_activity_at = ?, updated_at = ? WHERE id = ?",
                 (ts, ts, ticket_id))
    if reopen:
        row = conn.execute("SELECT status FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
        if row and row[0] in ("closed", "waiting-customer", "deleted"):
            # A trashed ticket comes back too: its new mail must not vanish with it.
            set_field(conn, ticket_id, "status", "open", agent=agent or "mailtix",
                      why="customer replied")
            conn.execute("UPDATE tickets SET deleted_at = NULL WHERE id = ?", (ticket_id,))


FIELDS = ("status", "priority", "queue", "project", "assignee", "subject", "doc_ref", "type")


def set_field(conn: sqlite3.Connection, ticket_id: int, name: str, value: str, *,
              agent: str = "", why: str = "") -> bool:
    if name not in FIELDS:
        raise ValueError(name)
    old = conn.execute(f"SELECT {name} FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
    if old is None or old[0] == value:
        return False
    conn.execute(f"UPDATE tickets SET {name} = ?, updated_at = ? WHERE id = ?",
                 (value, now(), ticket_id))
    detail = f"{name}: {old[0] or '-'} -> {value or '-'}" + (f" ({why})" if why else "")
    event(conn, name, ticket_id=ticket_id, agent=agent, detail=detail)
    return True


def add_tags(conn: sqlite3.Connection, ticket_id: int, tags: list[str] | tuple[str, ...]) -> None:
    conn.executemany("INSERT OR IGNORE INTO tags(ticket_id, tag) VALUES (?, ?)",
                     [(ticket_id, t) for t in tags if t])


def add_watchers(conn: sqlite3.Connection, ticket_id: int, agents: tuple[str, ...]) -> None:
    conn.executemany("INSERT OR IGNORE INTO watchers(ticket_id, agent) VALUES (?, ?)",
                     [(ticket_id, a) for a in agents])


def contact(conn: sqlite3.Connection, email: str, name: str = "") -> int:
    row = conn.execute(
        "INSERT INTO contacts(email, name, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT(email) DO UPDATE SET name = CASE WHEN contacts.name = '' "
        "THEN excluded.name ELSE contacts.name END RETURNING id",
        (email.lower(), name, now())).fetchone()
    return int(row[0])


def link_contact(conn: sqlite3.Connection, ticket_id: int, contact_id: int, role: str) -> None:
    conn.execute("INSERT OR IGNORE INTO ticket_contacts(ticket_id, contact_id, role) "
                 "VALUES (?, ?, ?)", (ticket_id, contact_id, role))


def event(conn: sqlite3.Connection, kind: str, *, ticket_id: int | None = None,
          account: str = "", agent: str = "", detail: str = "") -> None:
    conn.execute("INSERT INTO events(at, account, ticket_id, agent, kind, detail) "
                 "VALUES (?,?,?,?,?,?)", (now(), account, ticket_id, agent, kind, detail))


def tag_pattern(fmt: str) -> re.Pattern[str]:
    """The configured subject tag as a regex capturing the number."""
    before, _, after = fmt.partition("{number}")
    return re.compile(re.escape(before) + r"\s*(\d{12,})\s*" + re.escape(after), re.I)
