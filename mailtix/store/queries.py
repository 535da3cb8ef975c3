"""Read queries for working tickets: list, search, show. Plain dicts out."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

HIDDEN_BY_DEFAULT = ("closed", "spam", "deleted")


@dataclass
class Filters:
    status: list[str] = field(default_factory=list)
    queue: str = ""
    assignee: str = ""
    account: str = ""
    project: str = ""
    contact: str = ""
    tag: str = ""
    watching: str = ""  # an agent: only tickets they watch (group accounts)
    older_than: str = ""  # ISO time: last activity before it
    newer_than: str = ""
    all: bool = False
    limit: int = 50
    offset: int = 0
    sort: str = "activity"


_SORTS = {"activity": "t.last_activity_at DESC", "created": "t.created_at DESC",
          "number": "t.number DESC", "priority":
          "CASE t.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 "
          "ELSE 3 END, t.last_activity_at DESC"}


def _where(f: Filters) -> tuple[str, list[Any]]:
    clauses, args = ["t.merged_into IS NULL"], []
    if f.status:
        clauses.append(f"t.status IN ({','.join('?' * len(f.status))})")
        args += f.status
    elif not f.all:
        clauses.append(f"t.status NOT IN ({','.join('?' * len(HIDDEN_BY_DEFAULT))})")
        args += HIDDEN_BY_DEFAULT
    for col in ("queue", "assignee", "account", "project"):
        value = getattr(f, col)
        if value:
            clauses.append(f"t.{col} = ?")
            args.append(value)
    if f.contact:
        clauses.append("t.id IN (SELECT tc.ticket_id FROM ticket_contacts tc JOIN contacts c "
                       "ON c.id = tc.contact_id WHERE c.email LIKE ?)")
        args.append(f"%{f.contact}%")
    if f.tag:
        clauses.append("t.id IN (SELECT ticket_id FROM tags WHERE tag = ?)")
        args.append(f.tag)
    if f.watching:
        clauses.append("t.id IN (SELECT ticket_id FROM watchers WHERE agent = ?)")
        args.append(f.watching)
    if f.older_than:
        clauses.append("t.last_activity_at < ?")
        args.append(f.older_than)
    if f.newer_than:
        clauses.append("t.last_activity_at >= ?")
        args.append(f.newer_than)
    return " AND ".join(clauses), args


def list_tickets(conn: sqlite3.Connection, f: Filters) -> list[dict[str, Any]]:
    where, args = _where(f)
    rows = conn.execute(
        "SELECT t.number, t.subject, t.status, t.priority, t.queue, t.assignee, t.account, "
        "t.type, t.unread, t.created_at, t.last_activity_at, c.email AS contact, "
        "(SELECT COUNT(*) FROM messages m WHERE m.ticket_id = t.id) AS messages "
        f"FROM tickets t LEFT JOIN contacts c ON c.id = t.contact_id WHERE {where} "
        f"ORDER BY {_SORTS.get(f.sort, _SORTS['activity'])} LIMIT ? OFFSET ?",
        (*args, f.limit, f.offset))
    return [dict(r) for r in rows]


def search(conn: sqlite3.Connection, query: str, f: Filters) -> list[dict[str, Any]]:
    where, args = _where(f)
    if getattr(conn, "dialect", "sqlite") == "postgresql":
        from mailtix.store import pgsearch

        rows = pgsearch.search(conn, query, where, args, f.limit, f.offset)
    else:
        rows = conn.execute(
            "SELECT t.number, t.subject, t.status, t.queue, t.assignee, m.id AS message, "
            "snippet(messages_fts, -1, '[', ']', ' … ', 12) AS snippet, "
            "bm25(messages_fts) AS rank "
            "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
            "JOIN tickets t ON t.id = m.ticket_id "
            f"WHERE messages_fts MATCH ? AND {where} ORDER BY rank LIMIT ? OFFSET ?",
            (_fts_query(query), *args, f.limit, f.offset))
    seen: set[str] = set()
    out = []
    for r in rows:
        if r["number"] not in seen:
            seen.add(r["number"])
            out.append(dict(r))
    return out


def archive_search(conn: sqlite3.Connection, query: str, limit: int) -> list[dict[str, Any]]:
    """The mailbox archive's full-text search, ranked, with a highlighted snippet."""
    if getattr(conn, "dialect", "sqlite") == "postgresql":
        from mailtix.store import pgsearch

        rows = pgsearch.archive_search(conn, query, limit)
    else:
        rows = conn.execute(
            "SELECT a.id, a.account, a.folder, a.internal_date, a.from_addr, a.subject, "
            "snippet(archive_fts, -1, '[', ']', ' … ', 12) AS snippet FROM archive_fts "
            "JOIN archive_messages a ON a.id = archive_fts.rowid WHERE archive_fts MATCH ? "
            "ORDER BY bm25(archive_fts) LIMIT ?", (_fts_query(query), limit))
    return [dict(r) for r in rows]


def _fts_query(query: str) -> str:
    """Words as quoted FTS5 terms (ANDed), so user input is never FTS syntax."""
    terms = [w.replace('"', '""') for w in query.split() if w.strip()]
    return " ".join(f'"{t}"' + ("*" if len(t) > 2 else "") for t in terms) or '""'


def ticket_detail(conn: sqlite3.Connection, ticket_id: int) -> dict[str, Any]:
    t = dict(conn.execute("SELECT t.*, c.email AS contact, c.name AS contact_name FROM tickets t "
                          "LEFT JOIN contacts c ON c.id = t.contact_id WHERE t.id = ?",
                          (ticket_id,)).fetchone())
    t["watchers"] = [r[0] for r in conn.execute(
        "SELECT agent FROM watchers WHERE ticket_id = ? ORDER BY agent", (ticket_id,))]
    t["tags"] = [r[0] for r in conn.execute(
        "SELECT tag FROM tags WHERE ticket_id = ? ORDER BY tag", (ticket_id,))]
    msgs = []
    for m in conn.execute("SELECT id, direction, message_id, from_addr, from_name, to_addrs, "
                          "cc_addrs, date, subject, body_text, author, created_at, bounce, "
                          "auto_submitted, list, spam, malformed FROM messages "
                          "WHERE ticket_id = ? ORDER BY COALESCE(date, created_at), id",
                          (ticket_id,)):
        item = dict(m)
        item["attachments"] = [dict(a) for a in conn.execute(
            "SELECT id, filename, content_type, size, sha256 FROM attachments "
            "WHERE message_id = ? ORDER BY id", (m["id"],))]
        msgs.append(item)
    t["messages"] = msgs
    t["history"] = [dict(e) for e in conn.execute(
        "SELECT at, agent, kind, detail FROM events WHERE ticket_id = ? ORDER BY id",
        (ticket_id,))]
    return t


def events(conn: sqlite3.Connection, *, account: str | None = None, ticket_id: int | None = None,
           since: str | None = None, kind: str | None = None, limit: int = 100
           ) -> list[dict[str, Any]]:
    clauses, args = ["1 = 1"], []
    for sql, value in (("e.account = ?", account), ("e.ticket_id = ?", ticket_id),
                       ("e.at >= ?", since), ("e.kind = ?", kind)):
        if value is not None:
            clauses.append(sql)
            args.append(value)
    rows = conn.execute("SELECT e.at, e.account, t.number AS ticket, e.agent, e.kind, e.detail "
                        "FROM events e LEFT JOIN tickets t ON t.id = e.ticket_id "
                        f"WHERE {' AND '.join(clauses)} ORDER BY e.id DESC LIMIT ?",
                        (*args, limit))
    return [dict(r) for r in rows]


def contacts(conn: sqlite3.Connection, query: str = "", limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT c.email, c.name, c.company, COUNT(DISTINCT tc.ticket_id) AS tickets, "
        "MAX(t.last_activity_at) AS last_activity FROM contacts c "
        "LEFT JOIN ticket_contacts tc ON tc.contact_id = c.id "
        "LEFT JOIN tickets t ON t.id = tc.ticket_id AND t.merged_into IS NULL "
        "WHERE c.email LIKE ? OR c.name LIKE ? GROUP BY c.id "
        "ORDER BY last_activity DESC NULLS LAST LIMIT ?",
        (f"%{query}%", f"%{query}%", limit))
    return [dict(r) for r in rows]


def contact_tickets(conn: sqlite3.Connection, email: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT t.number, t.subject, t.status, tc.role, t.last_activity_at FROM contacts c "
        "JOIN ticket_contacts tc ON tc.contact_id = c.id JOIN tickets t ON t.id = tc.ticket_id "
        "WHERE c.email = ? AND t.merged_into IS NULL ORDER BY t.last_activity_at DESC",
        (email,))
    return [dict(r) for r in rows]
