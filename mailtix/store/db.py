"""Opening the store: pragmas, permissions, migrations, transactions."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from mailtix.errors import StoreError
from mailtix.fsutil import private_dir
from mailtix.store.schema import MIGRATIONS


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def connect(data_dir: Path) -> sqlite3.Connection:
    private_dir(data_dir)
    path = data_dir / "mailtix.sqlite3"
    new = not path.exists()
    try:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the store {path}: {exc}") from None
    if new:
        os.chmod(path, 0o600)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"the store {path} cannot be used: {exc}",
                         hint="restore it from a backup, or move it away to start afresh "
                              "(mail still on the server is fetched again)") from None
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the missing migrations, each in its own write transaction.

    The version is read inside BEGIN IMMEDIATE: two commands opening a new store at once
    would otherwise both read 0 and the second would apply migration 1 again. An up-to-date
    store is recognised without the write lock (a `status` must not wait for a run)."""
    try:
        current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    except sqlite3.OperationalError:  # a new store: no table yet
        current = None
    if current == len(MIGRATIONS):
        return current
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                         "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            current = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
            if current > len(MIGRATIONS):
                raise StoreError(f"the store has schema {current}, newer than this mailtix "
                                 f"knows ({len(MIGRATIONS)})", hint="upgrade mailtix")
            if current == len(MIGRATIONS):
                conn.execute("COMMIT")
                return current
            version = current + 1
            # executescript would COMMIT on its own; run statement by statement instead.
            for statement in _statements(MIGRATIONS[version - 1]):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, now()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _statements(script: str) -> Iterator[str]:
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf.strip()
            buf = ""
    if buf.strip():
        yield buf.strip()


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT; a crash or exception inside leaves nothing behind."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


__all__ = ["Path", "connect", "migrate", "now", "transaction"]
