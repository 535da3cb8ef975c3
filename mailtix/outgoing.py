"""Every outgoing mail takes one path: compose → outbox (with its ticket message) → delivery."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from mailtix.config.model import Account, Config
from mailtix.mail.compose import Draft, bare, compose
from mailtix.store import messages, outbox, tickets
from mailtix.store.db import now


@dataclass
class Queued:
    outbox_id: int
    message_id: str
    raw: bytes
    rcpts: list[str]


def queue(conn: sqlite3.Connection, draft: Draft, *, kind: str, ticket_id: int | None = None,
          author: str = "", doc_ref: str = "", batch_id: str = "", batch_key: str = ""
          ) -> Queued:
    """Compose and store in the caller's transaction: the ticket message and the outbox row."""
    c = compose(draft)
    mid, rcpts, raw = c.message_id, c.rcpts, c.raw
    row = None
    if ticket_id is not None:
        row = messages.insert(
            conn, ticket_id=ticket_id, account=draft.account.name, direction="out",
            message_id=mid, in_reply_to=draft.in_reply_to,
            refs=" ".join(draft.references), from_addr=draft.account.email,
            from_name=draft.account.display_name,
            to_addrs=", ".join(bare(a) for a in draft.to),
            cc_addrs=", ".join(bare(a) for a in draft.cc), date=now(), subject=c.subject,
            body_text=c.text, raw_sha256=messages.put_raw(conn, raw), size=len(raw),
            author=author, auto_submitted=int("Auto-Submitted" in draft.headers))
        tickets.activity(conn, ticket_id, reopen=False)
    box_id = outbox.enqueue(
        conn, message_id=mid, account=draft.account.name, kind=kind,
        mail_from=draft.account.email, rcpts=rcpts, raw=raw, ticket_id=ticket_id,
        message_row=row, doc_ref=doc_ref, batch_id=batch_id, batch_key=batch_key,
        sent_copy=bool(draft.account.sent_folder))
    return Queued(box_id, mid, raw, rcpts)


def variables(ticket: sqlite3.Row | dict[str, Any] | None, config: Config, account: Account,
              message: dict[str, Any] | None = None, contact: dict[str, Any] | None = None,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The names templates see: ticket, message, contact, account, plus --var values."""
    out: dict[str, Any] = {
        "account": {"name": account.name, "email": account.email,
                    "display_name": account.display_name},
        "message": message or {"subject": "", "from": "", "from_name": "", "date": ""},
        "contact": contact or {"email": "", "name": ""},
    }
    if ticket is not None:
        t = dict(ticket)
        t["tag"] = config.general.subject_tag.replace("{number}", str(t["number"]))
        out["ticket"] = t
    out.update(extra or {})
    return out
