"""PostgreSQL behind the sqlite3 interface the store's functions are written against.

The store's SQL is written once, in the subset both engines accept; this adapter bridges the
rest: `?` placeholders, `INSERT OR IGNORE`, `BEGIN IMMEDIATE`, `lastrowid`, rows addressable by
name and index, case-insensitive LIKE, and psycopg's errors raised as sqlite3's so the callers'
one error boundary (store_error) keeps working. psycopg is imported only here, and only when a
PostgreSQL URL is configured: the SQLite path pays nothing for it."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Loader

from mailtix.errors import StoreError
from mailtix.store.url import redact

# Tables whose INSERTs hand back the new row's id (sqlite3's cursor.lastrowid).
_ID_TABLES = frozenset({"contacts", "tickets", "messages", "message_sources", "attachments",
                        "pending_actions", "events", "outbox", "autoresponses",
                        "archive_messages", "outbox_events"})

_STRING = re.compile(r"('(?:[^']|'')*')")
_INSERT = re.compile(r"^\s*INSERT\s+(OR\s+IGNORE\s+)?INTO\s+(\w+)", re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)
_DATETIME_NOW = (re.compile(r"\bdatetime\('now'\)", re.I),
                 "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')")
_SUBSTITUTIONS = [
    (re.compile(r"\bgroup_concat\(", re.I), "string_agg("),
    (re.compile(r"\bNOT\s+LIKE\b", re.I), "NOT ILIKE"),  # SQLite's LIKE ignores ASCII case
    (re.compile(r"(?<!NOT )\bLIKE\b", re.I), "ILIKE"),
    (re.compile(r"\bIFNULL\(", re.I), "COALESCE("),
]


@lru_cache(maxsize=1024)
def translate(sql: str) -> tuple[str, bool]:
    """SQLite-flavoured SQL as PostgreSQL wants it; and whether it returns the new row's id."""
    stripped = sql.strip()
    upper = stripped[:20].upper()
    if upper.startswith("BEGIN"):
        return "BEGIN", False
    # psycopg reads % as a placeholder everywhere, string literals included
    sql = _DATETIME_NOW[0].sub(_DATETIME_NOW[1], sql)
    pieces = _STRING.split(sql.replace("%", "%%"))
    for i in range(0, len(pieces), 2):  # outside string literals only
        piece = pieces[i].replace("?", "%s")
        for pattern, repl in _SUBSTITUTIONS:
            piece = pattern.sub(repl, piece)
        pieces[i] = piece
    out = "".join(pieces)
    insert = _INSERT.match(out)
    wants_id = False
    if insert:
        ignore, table = insert.group(1), insert.group(2)
        if ignore:
            out = out[:insert.start(1)] + out[insert.end(1):]
        tail = ""
        returning = _RETURNING.search(out)
        if returning:
            out, tail = out[:returning.start()], " " + out[returning.start():]
        out = out.rstrip().rstrip(";")
        if ignore:
            out += " ON CONFLICT DO NOTHING"
        if not tail and table.lower() in _ID_TABLES:
            tail, wants_id = " RETURNING id", True
        out += tail
    return out, wants_id


class Row:
    """sqlite3.Row's contract: by index, by column name, keys(), dict(row), unpacking."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return tuple(self._values) == tuple(other._values) and self.keys() == other.keys()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._values))

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=True))!r})"


def _row_factory(cursor: psycopg.Cursor) -> Any:
    desc = cursor.description
    index: dict[str, int] = {}
    for i, d in enumerate(desc or []):
        index.setdefault(d.name, i)  # a repeated name means its first column, as in sqlite3

    def make(values: Sequence[Any]) -> Row:
        return Row(values, index)

    return make


class _NumericLoader(Loader):
    """SUM() and friends come back as numeric: give Python the int (or float) SQLite gives."""

    def load(self, data: Any) -> int | float:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


def _params(params: Any) -> Any:
    # bool is an int to SQLite; PostgreSQL's INTEGER columns refuse a boolean
    if isinstance(params, dict):
        return {k: int(v) if isinstance(v, bool) else v for k, v in params.items()}
    return tuple(int(v) if isinstance(v, bool) else v for v in params)


def _sqlite_error(exc: psycopg.Error) -> sqlite3.Error:
    """psycopg's error as the sqlite3 class its callers already handle."""
    message = f"{(exc.diag.message_primary or str(exc)).strip()}"
    if isinstance(exc, psycopg.IntegrityError):
        return sqlite3.IntegrityError(message)
    if isinstance(exc, psycopg.OperationalError):
        return sqlite3.OperationalError(message)
    return sqlite3.DatabaseError(message)


class Cursor:
    def __init__(self, cur: psycopg.Cursor, wants_id: bool) -> None:
        self._cur = cur
        self.lastrowid: int | None = None
        self.rowcount = cur.rowcount
        if wants_id:
            row = cur.fetchone()
            self.lastrowid = row[0] if row else None

    def fetchone(self) -> Row | None:
        return self._cur.fetchone() if self._cur.description else None

    def fetchall(self) -> list[Row]:
        return self._cur.fetchall() if self._cur.description else []

    def fetchmany(self, size: int = 1) -> list[Row]:
        return self._cur.fetchmany(size) if self._cur.description else []

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())

    @property
    def description(self) -> Any:
        return self._cur.description


class Connection:
    """What the store's functions use of sqlite3.Connection, on a psycopg connection in
    autocommit mode: transactions are the explicit BEGIN … COMMIT the store already issues."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection, url: str, password: str | None) -> None:
        self.raw = conn
        self.url = url
        self.password = password  # for another connection (a worker thread); never shown

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def execute(self, sql: str, params: Any = ()) -> Cursor:
        text, wants_id = translate(sql)
        try:
            cur = self.raw.execute(text, _params(params) if params else None, prepare=False)
        except psycopg.Error as exc:
            raise _sqlite_error(exc) from exc
        return Cursor(cur, wants_id)

    def executemany(self, sql: str, seq: Iterable[Any]) -> Cursor:
        text, _ = translate(sql)
        if text.endswith(" RETURNING id"):
            text = text[: -len(" RETURNING id")]
        cur = self.raw.cursor()
        try:
            cur.executemany(text, [_params(p) for p in seq])
        except psycopg.Error as exc:
            raise _sqlite_error(exc) from exc
        return Cursor(cur, False)

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(url: str, password: str | None) -> Connection:
    try:
        conn = psycopg.connect(url, password=password, autocommit=True,
                               row_factory=_row_factory, connect_timeout=15)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to the PostgreSQL store {redact(url)}: "
                         f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}",
                         hint="check [store] url, MAILTIX_STORE_PASSWORD (or the keyring "
                              "entry) and that the server accepts this host") from None
    conn.adapters.register_loader("numeric", _NumericLoader)
    return Connection(conn, url, password)


__all__ = ["Connection", "Row", "connect", "redact", "translate"]
