"""How many rows a list would have without its --limit: the "N of M shown" footers."""

from __future__ import annotations

import sqlite3
from typing import Any


def tickets(conn: sqlite3.Connection, f: Any) -> int:
    from mailtix.store.queries import _where

    where, args = _where(f)
    return int(conn.execute(f"SELECT COUNT(*) FROM tickets t WHERE {where}", args).fetchone()[0])


def contacts(conn: sqlite3.Connection, query: str = "") -> int:
    return int(conn.execute("SELECT COUNT(*) FROM contacts WHERE email LIKE ? OR name LIKE ?",
                            (f"%{query}%", f"%{query}%")).fetchone()[0])


def outbox(conn: sqlite3.Connection, state: str = "", kind: str = "") -> int:
    return _count_equal(conn, "outbox", (("state", state), ("kind", kind)))


def documents(conn: sqlite3.Connection, doc_ref: str = "") -> int:
    sql, args = "SELECT COUNT(*) FROM outbox WHERE kind = 'document'", []
    if doc_ref:
        sql += " AND doc_ref = ?"
        args.append(doc_ref)
    return int(conn.execute(sql, args).fetchone()[0])


def archive(conn: sqlite3.Connection, account: str | None = None,
            folder: str | None = None) -> int:
    return _count_equal(conn, "archive_messages", (("account", account), ("folder", folder)))


def _count_equal(conn: sqlite3.Connection, table: str,
                 filters: tuple[tuple[str, str | None], ...]) -> int:
    """Rows of `table` whose columns equal the filters' values; an empty value filters
    nothing. Table and column names are ours, never the user's."""
    clauses, args = ["1 = 1"], []
    for column, value in filters:
        if value:
            clauses.append(f"{column} = ?")
            args.append(value)
    sql = f"SELECT COUNT(*) FROM {table} WHERE {' AND '.join(clauses)}"
    return int(conn.execute(sql, args).fetchone()[0])


def events(conn: sqlite3.Connection, account: str | None = None, ticket_id: int | None = None,
           since: str | None = None, kind: str | None = None) -> int:
    clauses, args = ["1 = 1"], []
    for sql, value in (("account = ?", account), ("ticket_id = ?", ticket_id),
                       ("at >= ?", since), ("kind = ?", kind)):
        if value is not None:
            clauses.append(sql)
            args.append(value)
    return int(conn.execute(f"SELECT COUNT(*) FROM events WHERE {' AND '.join(clauses)}",
                            args).fetchone()[0])
