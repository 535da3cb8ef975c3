"""`mailtix reprocess`: parse flagged messages again from their raw bytes after a fix."""

from __future__ import annotations

from typing import Any

from mailtix.config.model import Config
from mailtix.mail.parse import parse
from mailtix.store import Store, messages, tickets


def flagged(store: Store) -> list[dict[str, Any]]:
    rows = store.conn.execute(
        "SELECT m.id, t.number, m.subject, m.parse_error, m.account FROM messages m "
        "LEFT JOIN tickets t ON t.id = m.ticket_id WHERE m.malformed = 1 ORDER BY m.id")
    return [{"id": r[0], "ticket": r[1], "subject": r[2], "parse_error": r[3], "account": r[4]}
            for r in rows]


def reprocess_all(config: Config, store: Store) -> dict[str, int]:
    ids = [r["id"] for r in flagged(store)]
    fixed = still = 0
    for mid in ids:
        row = store.conn.execute("SELECT raw_sha256 FROM messages WHERE id = ?",
                                 (mid,)).fetchone()
        raw = messages.get_raw(store.conn, row[0]) if row and row[0] else None
        if raw is None:
            continue
        p = parse(raw)
        with store.tx() as conn:
            conn.execute(
                "UPDATE messages SET subject = ?, body_text = ?, body_html = ?, from_addr = ?, "
                "from_name = ?, date = ?, malformed = ?, parse_error = ? WHERE id = ?",
                (p.subject, p.body_text, p.body_html, p.from_addr, p.from_name, p.date,
                 int(p.malformed), p.parse_error, mid))
            verdict = "flagged" if p.malformed else "clean"
            tickets.event(conn, "reprocessed", detail=f"message {mid}: {verdict}")
        if p.malformed:
            still += 1
        else:
            fixed += 1
    return {"reparsed": fixed + still, "fixed": fixed, "still_malformed": still}
