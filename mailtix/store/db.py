"""Opening the store: pragmas, permissions, migrations, transactions."""

from __future__ import annotations

import errno
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


BUSY_TIMEOUT = 30.0  # seconds to wait for another process's write before giving up
STORE_FILE = "mailtix.sqlite3"

# Primary result codes (sqlite3.h): the extended code's low byte.
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26


def store_error(exc: BaseException, path: Path | str | None = None) -> StoreError:
    """One line that says what happened to the store and what to do; the one translation of
    sqlite3's errors (and a full disk under it), used wherever they surface."""
    where = f" {path}" if path else ""
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    text = str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(f"no space left on the disk (writing {exc.filename or path}); this "
                          "step was not saved",
                          hint="free space there (df -h), then run again: mail stays on the "
                               "server until it is stored")
    if code in (_BUSY, _LOCKED) or "locked" in text:
        return StoreError(f"the store{where} is locked by another process (waited "
                          f"{BUSY_TIMEOUT:g} s); this step was not saved",
                          hint="try again when the other mailtix command has finished; "
                               "`fuser` on the store file shows who holds it")
    if code == _FULL or "disk is full" in text:
        return StoreError(f"the disk holding the store{where} is full; this step was not "
                          "saved",
                          hint="free space there (df -h), then run again: mail stays on the "
                               "server until it is stored")
    if code in (_CORRUPT, _NOTADB) or "malformed" in text or "not a database" in text:
        return StoreError(f"the store{where} is damaged ({text})",
                          hint="run `mailtix store check`; restore the file from a backup, "
                               "or move it away to start afresh (mail still on the server is "
                               "fetched again)")
    if code in (_READONLY, _CANTOPEN, _IOERR):
        return StoreError(f"the store{where} cannot be written ({text})",
                          hint="check the permissions and free space of the data dir "
                               "(`mailtix config path`)")
    return StoreError(f"store error{where}: {text}", hint="run `mailtix store check`")


def connect(data_dir: Path) -> sqlite3.Connection:
    private_dir(data_dir)
    path = data_dir / STORE_FILE
    new = not path.exists()
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        raise store_error(exc, path) from None
    if new:
        os.chmod(path, 0o600)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise store_error(exc, path) from None
    return conn


def check(data_dir: Path) -> dict[str, object]:
    """PRAGMA integrity_check on the store file, opened read-only and without migrating, plus
    the free space left where it lives: what `mailtix store check` reports."""
    import shutil

    path = data_dir / STORE_FILE
    if not path.exists():
        raise StoreError(f"no store at {path}", hint="`mailtix config path` shows the data dir")
    free = shutil.disk_usage(data_dir).free
    problems: list[str] = []
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
        try:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF in (_BUSY, _LOCKED):
            raise store_error(exc, path) from None
        problems = [str(exc)]
    problems = [p for p in problems if p != "ok"]
    return {"store": str(path), "ok": not problems, "problems": problems,
            "size_bytes": path.stat().st_size, "free_bytes": free}


def info(data_dir: Path) -> dict[str, object]:
    """Backend, where, size (with the write-ahead log) and schema version, read-only."""
    path = data_dir / STORE_FILE
    if not path.exists():
        raise StoreError(f"no store at {path}", hint="`mailtix config path` shows the data dir")
    size = sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal"))
               if p.exists())
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
    try:
        version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
    except sqlite3.Error as exc:
        raise store_error(exc, path) from None
    finally:
        conn.close()
    return {"backend": "sqlite", "store": str(path), "size_bytes": size,
            "schema_version": int(version), "schema_known": len(MIGRATIONS),
            "server_version": sqlite3.sqlite_version}


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
        conn.execute("COMMIT")
    except BaseException:
        # a failed COMMIT (full disk) may have rolled back already; never hide its error
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


__all__ = ["Path", "check", "connect", "info", "migrate", "now", "store_error", "transaction"]
