"""Messages with their raw bytes, sources, attachments and the full-text index."""

from __future__ import annotations

import sqlite3

from mailtix.record import Record
from mailtix.store.db import now


class Source(Record):
    """Where a message was fetched from: the idempotency key of invariant 2."""

    account: str
    folder: str
    uidvalidity: int = 0
    uid: int = 0
    uidl: str = ""


def put_raw(conn: sqlite3.Connection, raw: bytes) -> str:
    import hashlib  # here: a run with nothing new stores nothing

    digest = hashlib.sha256(raw).hexdigest()
    conn.execute("INSERT OR IGNORE INTO raw_messages(sha256, size, data) VALUES (?, ?, ?)",
                 (digest, len(raw), raw))
    return digest


def get_raw(conn: sqlite3.Connection, digest: str) -> bytes | None:
    row = conn.execute("SELECT data FROM raw_messages WHERE sha256 = ?", (digest,)).fetchone()
    return bytes(row[0]) if row else None


def source_known(conn: sqlite3.Connection, src: Source) -> bool:
    if src.uidl:
        sql, args = ("SELECT 1 FROM message_sources WHERE account = ? AND uidl = ?",
                     (src.account, src.uidl))
    else:
        sql = ("SELECT 1 FROM message_sources WHERE account = ? AND folder = ? AND "
               "uidvalidity = ? AND uid = ? AND uidl = ''")
        args = (src.account, src.folder, src.uidvalidity, src.uid)
    return conn.execute(sql, args).fetchone() is not None


def add_source(conn: sqlite3.Connection, message_row: int, src: Source) -> None:
    conn.execute("INSERT OR IGNORE INTO message_sources(message_id, account, folder, uidvalidity,"
                 " uid, uidl, fetched_at) VALUES (?,?,?,?,?,?,?)",
                 (message_row, src.account, src.folder, src.uidvalidity, src.uid, src.uidl, now()))


def find_duplicate(conn: sqlite3.Connection, message_id: str, content_sha: str, raw_sha: str
                   ) -> sqlite3.Row | None:
    """Same Message-ID and same content (trace headers aside), or the very same bytes.

    Mail without a Message-ID is matched by its content hash alone: the same mail delivered
    to two of our mailboxes differs only in the trace headers the hash leaves out, while two
    different mails differ at least in Date or body."""
    if message_id:
        row = conn.execute("SELECT id, ticket_id FROM messages WHERE message_id = ? AND "
                           "content_sha256 = ? AND direction = 'in' LIMIT 1",
                           (message_id, content_sha)).fetchone()
    elif content_sha:
        row = conn.execute("SELECT id, ticket_id FROM messages WHERE message_id = '' AND "
                           "content_sha256 = ? AND direction = 'in' LIMIT 1",
                           (content_sha,)).fetchone()
    else:
        row = None
    if row:
        return row
    return conn.execute("SELECT id, ticket_id FROM messages WHERE raw_sha256 = ? AND "
                        "direction = 'in' LIMIT 1", (raw_sha,)).fetchone()


def tickets_for_ids(conn: sqlite3.Connection, ids: list[str]) -> list[int]:
    """Tickets holding any of these Message-IDs, in or out; the latest referenced first."""
    found: list[int] = []
    for mid in reversed(ids):
        for row in conn.execute("SELECT ticket_id FROM messages WHERE message_id = ? AND "
                                "ticket_id IS NOT NULL ORDER BY id LIMIT 1", (mid,)):
            found.append(int(row[0]))
    return found


def insert(conn: sqlite3.Connection, **row: object) -> int:
    row.setdefault("created_at", now())
    cols = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    cur = conn.execute(f"INSERT INTO messages({cols}) VALUES ({marks})", tuple(row.values()))
    message_row = int(cur.lastrowid or 0)
    addrs = " ".join(str(row.get(k, "")) for k in ("from_addr", "from_name", "to_addrs",
                                                   "cc_addrs"))
    conn.execute("INSERT INTO messages_fts(rowid, subject, body_text, addrs) VALUES (?,?,?,?)",
                 (message_row, row.get("subject", ""), row.get("body_text", ""), addrs))
    return message_row


def add_attachments(conn: sqlite3.Connection, message_row: int, items: list) -> None:
    conn.executemany(
        "INSERT INTO attachments(message_id, filename, content_type, size, sha256, content_id,"
        " inline) VALUES (?,?,?,?,?,?,?)",
        [(message_row, a.filename, a.content_type, a.size, a.sha256, a.content_id, int(a.inline))
         for a in items])


def document_for_ids(conn: sqlite3.Connection, ids: list[str]) -> str:
    """The doc_ref of a document mail we sent with one of these Message-IDs, or ''."""
    for mid in reversed(ids):
        row = conn.execute("SELECT doc_ref FROM outbox WHERE message_id = ? AND doc_ref != ''",
                           (mid,)).fetchone()
        if row:
            return str(row[0])
    return ""
