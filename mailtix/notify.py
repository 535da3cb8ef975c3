"""Group accounts: a short notice to every member when a new ticket arrives, queued through
the outbox in the ingest's own transaction (a crash cannot notify twice)."""

from __future__ import annotations

import sqlite3

from mailtix.config.model import Account, Config
from mailtix.mail.detect import Flags
from mailtix.mail.parse import Parsed
from mailtix.store import outbox, tickets

PREVIEW_LINES = 12


def recipients(config: Config, account: Account, sender: str) -> list[str]:
    """Each member's address (an agent's email, or a member given as an address), never the
    sender of the mail itself."""
    out = []
    for member in account.group:
        agent = config.agents.get(member)
        addr = (agent.email if agent else member if "@" in member else "").lower()
        if addr and addr != sender.lower():
            out.append(addr)
    return list(dict.fromkeys(out))


def notify_group(conn: sqlite3.Connection, config: Config, account: Account, ticket_id: int,
                 p: Parsed, flags: Flags) -> list[int]:
    """Queue one notice per member; none for machine mail (auto-replies, bounces) or spam.
    A fault (a member's address SMTP would not take) is rolled back to a savepoint and
    recorded on the ticket: the mail itself stays stored and the run goes on."""
    conn.execute("SAVEPOINT notify_group")
    try:
        ids = _notify(conn, config, account, ticket_id, p, flags)
    except Exception as exc:  # noqa: BLE001 - a notice must never cost the mail or the run
        conn.execute("ROLLBACK TO notify_group")
        conn.execute("RELEASE notify_group")
        tickets.event(conn, "notification failed", ticket_id=ticket_id, account=account.name,
                      detail=f"{type(exc).__name__}: {exc}"[:500])
        return []
    conn.execute("RELEASE notify_group")
    return ids


def _notify(conn: sqlite3.Connection, config: Config, account: Account, ticket_id: int,
            p: Parsed, flags: Flags) -> list[int]:
    from mailtix.mail.compose import Draft, compose

    if not account.notify_group or not account.group:
        return []
    t = tickets.get(conn, ticket_id)
    if flags.auto_submitted or flags.bounce or flags.spam or t["status"] == "spam":
        return []
    sender = account if account.smtp is not None and account.active else config.default_sender()
    to = recipients(config, account, p.from_addr or "")
    if not to:
        return []
    if sender is None or sender.smtp is None:
        tickets.event(conn, "notification skipped", ticket_id=ticket_id, account=account.name,
                      detail="no account with SMTP settings to send it")
        return []
    preview = "\n".join((p.body_text or "").strip().splitlines()[:PREVIEW_LINES])
    text = (f"New ticket {t['number']} on {account.name} <{account.email}>\n\n"
            f"From:     {p.from_name + ' ' if p.from_name else ''}<{p.from_addr}>\n"
            f"Subject:  {p.subject}\nQueue:    {t['queue'] or '-'}\n"
            f"Assignee: {t['assignee'] or '-'}\n\n{preview}\n\n"
            f"mailtix ticket show {t['number']}\n")
    ids = []
    for addr in to:
        # Only the member gets it (no archive BCC); Auto-Submitted keeps other systems'
        # autoresponders quiet (RFC 3834 5).
        c = compose(Draft(account=sender, to=[addr],
                          subject=f"New ticket {t['number']}: {p.subject or '(no subject)'}",
                          text=text, headers={"Auto-Submitted": "auto-generated",
                                              "X-Auto-Response-Suppress": "All"}))
        ids.append(outbox.enqueue(conn, message_id=c.message_id, account=sender.name,
                                  kind="notification", mail_from=sender.email, rcpts=[addr],
                                  raw=c.raw, ticket_id=ticket_id, sent_copy=False))
    tickets.event(conn, "group notified", ticket_id=ticket_id, account=account.name,
                  detail=", ".join(to))
    return ids
