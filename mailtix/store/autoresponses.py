"""What the autoresponder remembers: who was answered when, and who is blocked. Handed to
mail.autoreply.decide as its history, so the decision itself stays free of SQL."""

from __future__ import annotations

import sqlite3

from mailtix.store.db import now


class History:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def sender_blocked(self, address: str) -> bool:
        return self.conn.execute("SELECT 1 FROM sender_rules WHERE email = ? AND action = 'spam'",
                                 (address,)).fetchone() is not None

    def answered_since(self, account: str, address: str, since: str) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM autoresponses WHERE account = ? AND sender = ? AND at > ?",
            (account, address, since)).fetchone() is not None

    def answers_since(self, address: str, since: str) -> int:
        return int(self.conn.execute(
            "SELECT COUNT(*) FROM autoresponses WHERE sender = ? AND at > ?",
            (address, since)).fetchone()[0])


def record(conn: sqlite3.Connection, account: str, address: str, outbox_id: int) -> None:
    conn.execute("INSERT INTO autoresponses(account, sender, at, outbox_id) VALUES (?,?,?,?)",
                 (account, address, now(), outbox_id))
