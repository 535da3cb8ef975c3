"""What comes back for a mail we sent: bounces, delay reports, replies and out-of-office
answers, matched to its outbox row so the document (or ticket reply) shows them. ingest calls
these inside the transaction that stores the returned mail; kept apart from documents.py so
ingest does not load templates and composing to read a bounce."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mailtix.store import outbox

if TYPE_CHECKING:
    from mailtix.mail.dsn import Report
    from mailtix.mail.parse import Parsed


BOUNCE_WINDOW = timedelta(days=7)  # how old a mail a bounce without its Message-ID may be about


def returned_row(conn: sqlite3.Connection, p: Parsed, report: Report | None
                 ) -> sqlite3.Row | None:
    """The outbox row a returned mail is about: by the Message-IDs it quotes (the report's
    copy of our mail, In-Reply-To, References), failing that by the report's recipient, our
    address and the time the copy says it was sent."""
    ids = [*p.references, p.in_reply_to]
    if report is not None:
        ids += [*p.enclosed_ids, report.original_message_id]
    for mid in reversed([i for i in ids if i]):
        row = outbox.by_message_id(conn, mid)
        if row is not None:
            return row
    if report is None:
        return None
    if report.original_date:
        at = datetime.fromisoformat(report.original_date)
        since, until = at - timedelta(hours=1), at + timedelta(days=3)
    else:
        until = datetime.fromisoformat(p.date) if p.date else datetime.now(UTC)
        since = until - BOUNCE_WINDOW
    for rcpt in report.recipients:
        for row in outbox.sent_to(conn, rcpt.address, since.isoformat(timespec="seconds"),
                                  until.isoformat(timespec="seconds")):
            if not report.original_from or report.original_from == row["mail_from"].lower():
                return row
    return None


def document_ticket(conn: sqlite3.Connection, row: sqlite3.Row) -> int | None:
    """The ticket of an outbox row's mail (its document's), following merges."""
    from mailtix.store import tickets

    if row["ticket_id"] is not None:
        return tickets.resolve(conn, int(row["ticket_id"]))
    if row["doc_ref"]:
        found = conn.execute("SELECT id FROM tickets WHERE doc_ref = ? ORDER BY id LIMIT 1",
                             (row["doc_ref"],)).fetchone()
        if found is not None:
            return tickets.resolve(conn, int(found[0]))
    return None


def link_ticket(conn: sqlite3.Connection, doc_ref: str, ticket_id: int) -> None:
    """A document's mails point at its ticket, so a merge (which moves outbox rows) takes
    the document along."""
    conn.execute("UPDATE outbox SET ticket_id = ? WHERE doc_ref = ? AND ticket_id IS NULL",
                 (ticket_id, doc_ref))


def record_returned(conn: sqlite3.Connection, row: sqlite3.Row, p: Parsed,
                    report: Report | None, auto: bool, message_row: int) -> str:
    """Note what came back on the row: a bounce marks its recipient bounced, a delay report
    or a reply (also an out-of-office one) is recorded without changing any state."""
    row_id = int(row["id"])
    if report is None:
        if not row["doc_ref"]:  # a reply to a ticket reply is the ticket's business alone
            return ""
        kind = "auto-reply" if auto else "reply"
        outbox.add_event(conn, row_id, kind, rcpt=p.from_addr, message_row=message_row)
        return kind
    known = {r["rcpt"].lower() for r in outbox.rcpts(conn, row_id)}
    kind = "delay"
    for r in report.recipients:
        if r.bounced:
            kind = "bounce"
            if r.address in known:
                outbox.set_rcpt(conn, row_id, r.address, "bounced", r.status, r.diagnostic)
        outbox.add_event(conn, row_id, "bounce" if r.bounced else "delay", rcpt=r.address,
                         status=r.status, diagnostic=r.diagnostic, message_row=message_row)
    if not report.recipients:  # a bounce that names no one still returned this mail
        kind = "bounce"
        outbox.add_event(conn, row_id, "bounce", diagnostic=p.subject, message_row=message_row)
    return kind
