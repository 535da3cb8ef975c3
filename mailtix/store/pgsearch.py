"""Full-text search on PostgreSQL: German and English stems (and the words as written, for
addresses and names), ranked with ts_rank and highlighted with ts_headline the way FTS5's
bm25() and snippet() do it on SQLite."""

from __future__ import annotations

import re
from typing import Any

# tsquery syntax characters: user input is words, never operators
_SYNTAX = re.compile(r"[':&|!()<>*\\]")
_HEADLINE = ("StartSel=[, StopSel=], MaxWords=12, MinWords=4, MaxFragments=1, "
             "FragmentDelimiter=\" … \"")


def tsquery(query: str) -> tuple[str, list[str]]:
    """SQL for the query (every word must match, in any of the three configurations; words
    longer than two letters also as a prefix, like FTS5's term*) and its parameters."""
    parts, args = [], []
    for word in query.split():
        term = _SYNTAX.sub(" ", word).strip()
        if not term:
            continue
        text = "'" + term + "'" + (":*" if len(term) > 2 else "")
        parts.append("(to_tsquery('german', ?) || to_tsquery('english', ?) "
                     "|| to_tsquery('simple', ?))")
        args += [text, text, text]
    if not parts:
        return "to_tsquery('simple', '')", []
    return " && ".join(parts), args


def search_sql(where: str) -> str:
    return (
        "WITH q AS (SELECT {query} AS q) "
        "SELECT t.number, t.subject, t.status, t.queue, t.assignee, m.id AS message, "
        f"ts_headline('german', f.subject || ' ' || f.body_text, q.q, '{_HEADLINE}') "
        "AS snippet, -ts_rank(f.tsv, q.q) AS rank "
        "FROM q, messages_fts f JOIN messages m ON m.id = f.rowid "
        "JOIN tickets t ON t.id = m.ticket_id "
        f"WHERE f.tsv @@ q.q AND {where} ORDER BY rank, m.id LIMIT ? OFFSET ?")


def search(conn: Any, query: str, where: str, args: list[Any], limit: int,
           offset: int) -> Any:
    sql, qargs = tsquery(query)
    return conn.execute(search_sql(where).replace("{query}", sql),
                        (*qargs, *args, limit, offset))


def archive_search(conn: Any, query: str, limit: int) -> Any:
    sql, qargs = tsquery(query)
    return conn.execute(
        f"WITH q AS (SELECT {sql} AS q) "
        "SELECT a.id, a.account, a.folder, a.internal_date, a.from_addr, a.subject, "
        f"ts_headline('german', f.subject || ' ' || f.body_text, q.q, '{_HEADLINE}') "
        "AS snippet FROM q, archive_fts f JOIN archive_messages a ON a.id = f.rowid "
        "WHERE f.tsv @@ q.q ORDER BY ts_rank(f.tsv, q.q) DESC, a.id LIMIT ?", (*qargs, limit))


__all__ = ["archive_search", "search", "tsquery"]
