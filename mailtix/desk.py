"""Working tickets: the core behind `mailtix ticket …` (no typer, no rich here)."""

from __future__ import annotations

import os
from typing import Any

from mailtix.config.model import STATUSES, Config
from mailtix.errors import NotFound, UsageError
from mailtix.store import Store, messages, queries, tickets


def agent_name(explicit: str | None) -> str:
    return explicit or os.environ.get("MAILTIX_AGENT") or os.environ.get("USER") or "unknown"


def find(store: Store, number: str) -> int:
    row = tickets.by_number(store.conn, number.strip().lstrip("#"))
    if row is None:
        raise NotFound(f"no ticket {number}")
    return int(row["id"])


def show(store: Store, number: str) -> dict[str, Any]:
    return queries.ticket_detail(store.conn, find(store, number))


def raw(store: Store, number: str, message_row: int) -> bytes:
    ticket_id = find(store, number)
    row = store.conn.execute("SELECT raw_sha256 FROM messages WHERE id = ? AND ticket_id = ?",
                             (message_row, ticket_id)).fetchone()
    data = messages.get_raw(store.conn, row[0]) if row and row[0] else None
    if data is None:
        raise NotFound(f"ticket {number} has no stored message {message_row}")
    return data


def note(store: Store, number: str, text: str, agent: str) -> int:
    if not text.strip():
        raise UsageError("an empty note")
    ticket_id = find(store, number)
    with store.tx() as conn:
        row = messages.insert(conn, ticket_id=ticket_id, direction="note", body_text=text,
                              author=agent, subject="note")
        tickets.activity(conn, ticket_id, reopen=False)
        tickets.event(conn, "note", ticket_id=ticket_id, agent=agent, detail=f"message {row}")
    return row


def set_field(config: Config, store: Store, number: str, name: str, value: str,
              agent: str) -> bool:
    if name == "status" and value not in STATUSES:
        raise UsageError(f"unknown status {value!r}; one of {', '.join(STATUSES)}")
    if name == "assignee" and value and config.agents and value not in config.agents:
        raise UsageError(f"unknown agent {value!r}; known: {', '.join(sorted(config.agents))}")
    if name == "queue" and value and config.queues and value not in config.queues:
        raise UsageError(f"unknown queue {value!r}; known: {', '.join(sorted(config.queues))}")
    if name == "priority" and value not in ("low", "normal", "high", "urgent"):
        raise UsageError("priority is one of low, normal, high, urgent")
    ticket_id = find(store, number)
    with store.tx() as conn:
        return tickets.set_field(conn, ticket_id, name, value, agent=agent)


def reply(config: Config, store: Store, number: str, *, text: str, html: str | None,
          attachments: list, cc: list[str], reply_all: bool, status: str | None, agent: str,
          from_: str | None = None) -> dict[str, Any]:
    """Queue a reply to the ticket's latest incoming mail, From the address it came in on."""
    from mailtix.mail.compose import Draft, bare, sender_for, signature
    from mailtix.outgoing import queue

    if status is not None and status not in STATUSES:
        raise UsageError(f"unknown status {status!r}")
    ticket_id = find(store, number)
    t = tickets.get(store.conn, ticket_id)
    last = store.conn.execute(
        "SELECT * FROM messages WHERE ticket_id = ? AND direction = 'in' ORDER BY id DESC "
        "LIMIT 1", (ticket_id,)).fetchone()
    if last is None:
        raise UsageError(f"ticket {number} has no incoming mail to reply to")
    account = sender_for(config, from_ or (t["account"] if t["account"] in config.accounts
                                             else None))
    parsed_reply_to = _reply_to(store, last)
    to = [parsed_reply_to or last["from_addr"]]
    own = config.own_addresses()
    extra_cc = list(cc)
    if reply_all:
        for addr in (last["to_addrs"] + "," + last["cc_addrs"]).split(","):
            addr = addr.strip()
            if addr and addr.lower() not in own and bare(addr) != bare(to[0]):
                extra_cc.append(addr)
    tag = config.general.subject_tag.replace("{number}", t["number"])
    subject = t["subject"]
    if tag.lower() not in subject.lower():
        subject = f"{subject} {tag}"
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    refs = (last["refs"].split() if last["refs"] else [])
    draft = Draft(account=account, to=to, cc=extra_cc, subject=subject, text=text, html=html,
                  attachments=attachments, in_reply_to=last["message_id"],
                  references=[*refs, last["message_id"]] if last["message_id"] else refs,
                  signature=signature(config, account, t["project"]))
    with store.tx() as conn:
        queued = queue(conn, draft, kind="reply", ticket_id=ticket_id, author=agent)
        tickets.event(conn, "reply", ticket_id=ticket_id, agent=agent,
                      detail=f"{queued.message_id} to {', '.join(queued.rcpts)}")
        if status:
            tickets.set_field(conn, ticket_id, "status", status, agent=agent)
    return {"ticket": t["number"], "outbox_id": queued.outbox_id,
            "message_id": queued.message_id, "to": to, "cc": extra_cc, "from": account.email}


def _reply_to(store: Store, row) -> str:
    from mailtix.mail.parse import parse

    raw = messages.get_raw(store.conn, row["raw_sha256"]) if row["raw_sha256"] else None
    if raw is None:
        return ""
    p = parse(raw)
    return p.reply_to[0][1] if p.reply_to else ""
