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
