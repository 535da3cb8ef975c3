"""Small helpers shared by tests that look into the store."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def db() -> sqlite3.Connection:
    conn = sqlite3.connect(Path(os.environ["MAILTIX_DATA"]) / "mailtix.sqlite3")
    conn.row_factory = sqlite3.Row
    return conn


def count(sql: str, *args) -> int:
    with db() as conn:
        return int(conn.execute(sql, args).fetchone()[0])


def server_uids(dovecot, user: str, folder: str = "INBOX", criteria: str = "ALL") -> list[int]:
    client = dovecot.imap_client(user)
    try:
        client.select(folder, readonly=True)
        typ, data = client.uid("SEARCH", criteria)
        return [int(x) for x in data[0].split()]
    finally:
        client.logout()


def server_flags(dovecot, user: str, folder: str = "INBOX") -> dict[int, str]:
    client = dovecot.imap_client(user)
    try:
        client.select(folder, readonly=True)
        typ, data = client.uid("FETCH", "1:*", "(UID FLAGS)")
        out = {}
        for line in data:
            if isinstance(line, bytes):
                text = line.decode()
                uid = int(text.split("UID ")[1].split()[0].rstrip(")"))
                out[uid] = text.split("FLAGS (")[1].split(")")[0]
        return out
    finally:
        client.logout()


def server_bodies(dovecot, user: str, folder: str = "INBOX") -> dict[int, bytes]:
    client = dovecot.imap_client(user)
    try:
        client.select(folder, readonly=True)
        typ, data = client.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
        out = {}
        for item in data:
            if isinstance(item, tuple):
                uid = int(item[0].split(b"UID ")[1].split()[0])
                out[uid] = item[1]
        return out
    finally:
        client.logout()
