"""The SQLite ticket store: the only package that writes SQL."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path

from mailtix.record import Record
from mailtix.store import db


class Store(Record, mutable=True):
    conn: sqlite3.Connection
    data_dir: Path

    @classmethod
    def open(cls, data_dir: Path) -> Store:
        return cls(db.connect(data_dir), data_dir)

    def tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return db.transaction(self.conn)

    def close(self) -> None:
        self.conn.close()


__all__ = ["Store"]
