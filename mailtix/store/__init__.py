"""The ticket store: the only package that writes SQL. SQLite in the data dir by default;
PostgreSQL when a URL is configured ([store] url or $MAILTIX_STORE_URL)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from mailtix.record import Record
from mailtix.store import db

URL_ENV = "MAILTIX_STORE_URL"
PASSWORD_ENV = "MAILTIX_STORE_PASSWORD"


def configured_url(url: str | None = None) -> str:
    """$MAILTIX_STORE_URL over [store] url; empty means SQLite in the data dir."""
    return os.environ.get(URL_ENV) or url or ""


def password(password_cmd: str | None = None) -> str | None:
    """The PostgreSQL password from the usual secret sources, never from the config file:
    $MAILTIX_STORE_PASSWORD, [store] password_cmd, the keyring (user "store:postgresql").
    None leaves it to libpq (~/.pgpass, $PGPASSWORD, peer or certificate auth)."""
    from mailtix import secrets

    found = os.environ.get(PASSWORD_ENV)
    if not found and password_cmd:
        found = secrets._from_command("store", password_cmd)
    if not found:
        found = secrets._from_keyring("store", "postgresql")
    if found:  # known to the output's redaction, like the accounts' passwords
        secrets._cache[("store", "postgresql")] = found
    return found


class Store(Record, mutable=True):
    conn: sqlite3.Connection  # or store.pg.Connection, which offers the same subset
    data_dir: Path
    url: str = ""

    @classmethod
    def open(cls, data_dir: Path, url: str | None = None,
             password_cmd: str | None = None) -> Store:
        target = configured_url(url)
        if not target:
            return cls(db.connect(data_dir), data_dir)
        from mailtix.store import pgdb

        return cls(pgdb.connect(target, password(password_cmd)), data_dir, target)

    def another(self) -> Store:
        """A second connection to the same store, for another thread."""
        if not self.url:
            return Store(db.connect(self.data_dir), self.data_dir)
        from mailtix.store import pgdb

        return Store(pgdb.connect(self.url, self.conn.password), self.data_dir, self.url)

    @contextmanager
    def account_lock(self, account: str) -> Iterator[bool]:
        """True while this process may fetch the account. SQLite: always (the data dir's run
        lock keeps other runs out). PostgreSQL: a session advisory lock per account, so hosts
        sharing the store never fetch one account at once; it is released with the
        connection if the host dies."""
        if not self.url:
            yield True
            return
        key = int.from_bytes(hashlib.sha256(b"fetch:" + account.encode()).digest()[:8],
                             "big", signed=True)
        mine = bool(self.conn.execute("SELECT pg_try_advisory_lock(?)", (key,)).fetchone()[0])
        try:
            yield mine
        finally:
            if mine:
                self.conn.execute("SELECT pg_advisory_unlock(?)", (key,))

    @property
    def backend(self) -> str:
        return "postgresql" if self.url else "sqlite"

    def tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return db.transaction(self.conn)

    def close(self) -> None:
        self.conn.close()


def dialect(conn: object) -> str:
    """Which engine a connection talks to, for the few queries written twice (search)."""
    return getattr(conn, "dialect", "sqlite")


__all__ = ["Store", "configured_url", "dialect", "password"]
