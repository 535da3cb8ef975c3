"""The outbox: every outgoing mail as a row with its final Message-ID and raw bytes."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from datetime import UTC, datetime, timedelta

from mailtix.store import messages
from mailtix.store.db import now

RETRY_MAX = 6 * 3600
ATTEMPTS_MAX = 12
# How long a host's claim on a row it is sending holds. Longer than any one SMTP hand-over
# (timeouts are at most 600 s): a live host never loses its row to another.
CLAIM_TTL = 30 * 60
HOST = f"{socket.gethostname()}:{os.getpid()}"


def enqueue(conn: sqlite3.Connection, *, message_id: str, account: str, kind: str,
            mail_from: str, rcpts: list[str], raw: bytes, ticket_id: int | None = None,
            message_row: int | None = None, doc_ref: str = "", batch_id: str = "",
            batch_key: str = "", sent_copy: bool = False) -> int:
    digest = messages.put_raw(conn, raw)
    cur = conn.execute(
        "INSERT INTO outbox(message_id, account, kind, mail_from, rcpts, raw_sha256, "
        "next_attempt_at, sent_copy, ticket_id, message_row, doc_ref, batch_id, batch_key, "
        "created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (message_id, account, kind, mail_from, json.dumps(rcpts), digest, now(),
         "pending" if sent_copy else "none", ticket_id, message_row, doc_ref, batch_id,
         batch_key, now()))
    row_id = int(cur.lastrowid or 0)
    add_rcpts(conn, row_id, rcpts)
    return row_id


def add_rcpts(conn: sqlite3.Connection, row_id: int, rcpts: list[str]) -> None:
    """One state per recipient (INSERT OR IGNORE: rows queued before this table get theirs on
    their next attempt)."""
    at = now()
    conn.executemany("INSERT OR IGNORE INTO outbox_rcpts(outbox_id, rcpt, updated_at) "
                     "VALUES (?,?,?)", [(row_id, r, at) for r in rcpts])


def due(conn: sqlite3.Connection, ids: list[int] | None = None) -> list[sqlite3.Row]:
    if ids:
        marks = ",".join("?" * len(ids))
        return conn.execute(f"SELECT * FROM outbox WHERE id IN ({marks}) AND state IN "
                            "('queued', 'retry') ORDER BY id", ids).fetchall()
    return conn.execute("SELECT * FROM outbox WHERE state IN ('queued', 'retry') AND "
                        "next_attempt_at <= ? ORDER BY id", (now(),)).fetchall()


def batch_row(conn: sqlite3.Connection, batch_id: str, batch_key: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM outbox WHERE batch_id = ? AND batch_key = ?",
                        (batch_id, batch_key)).fetchone()


def recover_interrupted(conn: sqlite3.Connection, row_id: int | None = None) -> int:
    """Rows left in 'sending' by a crash (all, or the one given): SMTP may or may not have
    accepted them. On a shared PostgreSQL store another host may be sending a row right now:
    only a claim that has run out (its host died), or one of a process of this machine that
    is gone, is taken back."""
    sql = ("UPDATE outbox SET state = 'retry', last_error = 'interrupted during delivery; sent "
           "again with the same Message-ID' WHERE state = 'sending'")
    args: list[object] = []
    if getattr(conn, "dialect", "sqlite") == "postgresql":
        dead = _dead_here(conn)
        sql += (" AND (claimed_until < ?"
                + (f" OR id IN ({','.join('?' * len(dead))})" if dead else "") + ")")
        args += [now(), *dead]
    if row_id is not None:
        sql += " AND id = ?"
        args.append(row_id)
    return conn.execute(sql, args).rowcount


def _dead_here(conn: sqlite3.Connection) -> list[int]:
    """Rows claimed by a process of this machine that no longer runs (killed mid-send)."""
    here = HOST.rsplit(":", 1)[0] + ":"
    dead = []
    for row_id, by in conn.execute("SELECT id, claimed_by FROM outbox WHERE state = 'sending' "
                                   "AND claimed_by != ''").fetchall():
        pid = by[len(here):]
        if by.startswith(here) and pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                dead.append(int(row_id))
            except PermissionError:
                pass  # another user's live process
    return dead


def discard_unattempted(conn: sqlite3.Connection, row_id: int) -> bool:
    """Remove a row that was queued but never handed to a server, with its raw bytes unless
    something else holds them."""
    row = conn.execute("SELECT raw_sha256 FROM outbox WHERE id = ? AND state = 'queued' AND "
                       "attempts = 0", (row_id,)).fetchone()
    if row is None:
        return False
    conn.execute("DELETE FROM outbox_rcpts WHERE outbox_id = ?", (row_id,))
    conn.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
    digest = row[0]
    conn.execute("DELETE FROM raw_messages WHERE sha256 = ? AND NOT EXISTS (SELECT 1 FROM "
                 "outbox WHERE raw_sha256 = ?) AND NOT EXISTS (SELECT 1 FROM messages WHERE "
                 "raw_sha256 = ?) AND NOT EXISTS (SELECT 1 FROM archive_messages WHERE "
                 "sha256 = ?)", (digest, digest, digest, digest))
    return True


def mark_sending(conn: sqlite3.Connection, row_id: int) -> bool:
    """Claim a row for this host until CLAIM_TTL from now; False when it is no longer due
    (another host sent or claimed it since it was listed). On PostgreSQL the row is locked
    with FOR UPDATE SKIP LOCKED: a host that is claiming it right now is stepped around,
    never waited for."""
    lock = " FOR UPDATE SKIP LOCKED" if getattr(conn, "dialect", "") == "postgresql" else ""
    found = conn.execute("SELECT id FROM outbox WHERE id = ? AND state IN ('queued', 'retry')"
                         f"{lock}", (row_id,)).fetchone()
    if found is None:
        return False
    until = (datetime.now(UTC) + timedelta(seconds=CLAIM_TTL)).isoformat(timespec="seconds")
    return conn.execute("UPDATE outbox SET state = 'sending', claimed_until = ?, claimed_by = ? "
                        "WHERE id = ?", (until, HOST, row_id)).rowcount == 1


def mark(conn: sqlite3.Connection, row_id: int, state: str, *, error: str = "",
         reply: str = "") -> None:
    if state == "sent":
        conn.execute("UPDATE outbox SET state = 'sent', sent_at = ?, smtp_reply = ?, "
                     "last_error = ?, attempts = attempts + 1 WHERE id = ?",
                     (now(), reply[:1000], error[:1000], row_id))
    elif state == "retry":
        row = conn.execute("SELECT attempts FROM outbox WHERE id = ?", (row_id,)).fetchone()
        attempts = int(row[0]) + 1
        if attempts >= ATTEMPTS_MAX:
            state, error = "failed", f"gave up after {attempts} attempts: {error}"
        delay = min(60 * 2 ** (attempts - 1), RETRY_MAX)
        at = (datetime.now(UTC) + timedelta(seconds=delay)).isoformat(timespec="seconds")
        conn.execute("UPDATE outbox SET state = ?, attempts = ?, next_attempt_at = ?, "
                     "last_error = ?, smtp_reply = ? WHERE id = ?",
                     (state, attempts, at, error[:1000], reply[:1000], row_id))
    else:
        conn.execute("UPDATE outbox SET state = ?, last_error = ?, smtp_reply = ?, "
                     "attempts = attempts + CASE WHEN ? = 'failed' THEN 1 ELSE 0 END "
                     "WHERE id = ?",
                     (state, error[:1000], reply[:1000], state, row_id))


def pending_copies(conn: sqlite3.Connection, account: str) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM outbox WHERE account = ? AND state = 'sent' AND "
                        "sent_copy = 'pending' ORDER BY id", (account,)).fetchall()


def mark_copy(conn: sqlite3.Connection, row_id: int, ok: bool, error: str = "") -> None:
    conn.execute("UPDATE outbox SET sent_copy = ?, sent_copy_error = ? WHERE id = ?",
                 ("done" if ok else "failed", error[:1000], row_id))


def get(conn: sqlite3.Connection, row_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM outbox WHERE id = ?", (row_id,)).fetchone()


def listing(conn: sqlite3.Connection, state: str = "", limit: int = 100) -> list[sqlite3.Row]:
    """Rows newest first; `state` is as shown: 'partial' for a row some recipients refused."""
    sql = (f"SELECT * FROM (SELECT o.id, o.message_id, o.account, o.kind, o.mail_from, o.rcpts, "
           f"{_SHOWN_STATE} AS state, o.attempts, o.next_attempt_at, o.last_error, o.sent_at, "
           f"o.sent_copy, o.doc_ref, o.created_at, COALESCE({_REFUSED_LIST}, '') AS refused "
           f"FROM outbox o) AS x")
    args: tuple = ()
    if state:
        sql += " WHERE state = ?"
        args = (state,)
    return conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()


# Per-recipient state. 'refused': a 5xx at RCPT; 'failed': the mail failed as a whole (or
# retries ran out) before this recipient accepted it; 'bounced': a delivery report said so.
PENDING = ("queued", "retry")
REFUSED = ("refused", "failed", "bounced")


def pending_rcpts(conn: sqlite3.Connection, row: sqlite3.Row) -> list[str]:
    """The recipients still to be handed to SMTP: a retry goes only to those not accepted."""
    add_rcpts(conn, int(row["id"]), json.loads(row["rcpts"]))
    return [r[0] for r in conn.execute(
        "SELECT rcpt FROM outbox_rcpts WHERE outbox_id = ? AND state IN ('queued', 'retry') "
        "ORDER BY rowid", (row["id"],))]


def set_rcpt(conn: sqlite3.Connection, row_id: int, rcpt: str, state: str, code: str = "",
             reply: str = "") -> None:
    conn.execute("UPDATE outbox_rcpts SET state = ?, code = ?, reply = ?, updated_at = ? "
                 "WHERE outbox_id = ? AND rcpt = ?",
                 (state, code, reply[:1000], now(), row_id, rcpt))


def set_pending(conn: sqlite3.Connection, row_id: int, state: str, code: str = "",
                reply: str = "") -> None:
    """Every recipient not accepted yet gets this state (a failure of the whole mail)."""
    conn.execute("UPDATE outbox_rcpts SET state = ?, code = ?, reply = ?, updated_at = ? "
                 "WHERE outbox_id = ? AND state IN ('queued', 'retry')",
                 (state, code, reply[:1000], now(), row_id))


def requeue_rcpts(conn: sqlite3.Connection, row_id: int) -> None:
    conn.execute("UPDATE outbox_rcpts SET state = 'queued', updated_at = ? WHERE outbox_id = ? "
                 "AND state IN ('retry', 'refused', 'failed')", (now(), row_id))


def settle(conn: sqlite3.Connection, row_id: int, error: str = "", reply: str = "") -> str:
    """The row's state from its recipients': any left to retry keeps the row due (with
    back-off); otherwise it is sent when at least one recipient accepted it, else failed."""
    states = {r[0]: r[1] for r in conn.execute(
        "SELECT state, COUNT(*) FROM outbox_rcpts WHERE outbox_id = ? GROUP BY state",
        (row_id,))}
    if any(states.get(s) for s in PENDING):
        mark(conn, row_id, "retry", error=error, reply=reply)
        if get(conn, row_id)["state"] == "failed":  # retries ran out
            set_pending(conn, row_id, "failed", reply=f"gave up: {error}")
    elif states.get("sent"):
        mark(conn, row_id, "sent", error=error, reply=reply)
    else:
        mark(conn, row_id, "failed", error=error, reply=reply)
    return str(get(conn, row_id)["state"])


def rcpts(conn: sqlite3.Connection, row_id: int) -> list[dict[str, str]]:
    return [dict(r) for r in conn.execute(
        "SELECT rcpt, state, code, reply, updated_at FROM outbox_rcpts WHERE outbox_id = ? "
        "ORDER BY rowid", (row_id,))]


# As shown: 'partial' when some recipients accepted the mail and others refused it for good
# (or it bounced for them), 'bounced' when a report came back for every recipient.
_SHOWN_STATE = (
    "CASE WHEN o.state NOT IN ('sent', 'failed') OR NOT EXISTS (SELECT 1 FROM outbox_rcpts r "
    "WHERE r.outbox_id = o.id AND r.state IN ('refused', 'failed', 'bounced')) THEN o.state "
    "WHEN EXISTS (SELECT 1 FROM outbox_rcpts r WHERE r.outbox_id = o.id AND r.state = 'sent') "
    "THEN 'partial' WHEN o.state = 'sent' THEN 'bounced' ELSE o.state END")
_REFUSED_LIST = (
    "(SELECT group_concat(r.rcpt || ' ' || r.state || CASE WHEN r.code != '' THEN ' ' || "
    "r.code ELSE '' END, '; ') FROM outbox_rcpts r WHERE r.outbox_id = o.id AND r.state IN "
    "('retry', 'refused', 'failed', 'bounced'))")


def shown_state(conn: sqlite3.Connection, row_id: int) -> str:
    row = conn.execute(f"SELECT {_SHOWN_STATE} FROM outbox o WHERE o.id = ?", (row_id,)
                       ).fetchone()
    return str(row[0]) if row else ""


def state_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per state as `outbox list` shows them ('partial': some recipients refused)."""
    return dict(conn.execute(f"SELECT {_SHOWN_STATE} AS s, COUNT(*) FROM outbox o GROUP BY s"))


def add_event(conn: sqlite3.Connection, row_id: int, kind: str, *, rcpt: str = "",
              status: str = "", diagnostic: str = "", message_row: int | None = None) -> None:
    conn.execute("INSERT INTO outbox_events(outbox_id, at, kind, rcpt, status, diagnostic, "
                 "message_row) VALUES (?,?,?,?,?,?,?)",
                 (row_id, now(), kind, rcpt, status, diagnostic[:1000], message_row))


def events(conn: sqlite3.Connection, row_id: int) -> list[dict[str, object]]:
    return [dict(r) for r in conn.execute(
        "SELECT at, kind, rcpt, status, diagnostic, message_row FROM outbox_events WHERE "
        "outbox_id = ? ORDER BY id", (row_id,))]


def by_message_id(conn: sqlite3.Connection, message_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM outbox WHERE message_id = ?", (message_id,)).fetchone()


def sent_to(conn: sqlite3.Connection, rcpt: str, since: str, until: str) -> list[sqlite3.Row]:
    """Rows handed to SMTP for this recipient in a time window, newest first."""
    return conn.execute(
        "SELECT o.* FROM outbox o JOIN outbox_rcpts r ON r.outbox_id = o.id WHERE r.rcpt = ? "
        "AND o.sent_at IS NOT NULL AND o.sent_at >= ? AND o.sent_at <= ? ORDER BY o.sent_at "
        "DESC, o.id DESC", (rcpt, since, until)).fetchall()


# Documents: one document is its doc_ref plus recipient, whatever batch or file it came from.

def document_sends(conn: sqlite3.Connection, doc_ref: str) -> list[sqlite3.Row]:
    """Mails of this doc_ref that went out or are on their way (anything but failed or
    cancelled), oldest first; served by the outbox_doc_ref index."""
    return conn.execute("SELECT id, message_id, rcpts, state, sent_at, created_at, batch_id "
                        "FROM outbox WHERE doc_ref = ? AND doc_ref != '' AND kind = 'document' "
                        "AND state NOT IN ('failed', 'cancelled') ORDER BY id",
                        (doc_ref,)).fetchall()


def set_row_sha(conn: sqlite3.Connection, row_id: int, row_sha: str) -> None:
    conn.execute("UPDATE outbox SET row_sha = ? WHERE id = ?", (row_sha, row_id))


def retire_batch_row(conn: sqlite3.Connection, row_id: int, reason: str) -> bool:
    """A batch row whose manifest row changed before it was sent: cancelled, and its key
    freed for the corrected row (the old Message-ID stays on record)."""
    cur = conn.execute("UPDATE outbox SET state = 'cancelled', last_error = ?, batch_key = "
                       "batch_key || '~replaced-' || id WHERE id = ? AND state IN "
                       "('queued', 'retry', 'failed')", (reason[:1000], row_id))
    return cur.rowcount == 1
