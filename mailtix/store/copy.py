"""`mailtix store migrate --to postgresql://…`: the SQLite store copied into an empty
PostgreSQL database in one transaction, verified before it is committed.

Tables are found in the SQLite file, not listed here, so a table a later migration adds is
copied too; their order follows the foreign keys (a row's parents first), and a table that
points to itself (a ticket merged into another) gets those links once all its rows are in."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

from mailtix.errors import StoreError
from mailtix.store import pg, pgdb
from mailtix.store.url import redact

BATCH = 2000
# What a store holds; any row in one of these means the target is in use.
_CONTENT = ("tickets", "messages", "raw_messages", "outbox", "contacts", "archive_messages",
            "account_state", "events")


def _tables(src: sqlite3.Connection) -> list[str]:
    names = [r[0] for r in src.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name")]
    fts = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE sql LIKE "
                                     "'CREATE VIRTUAL TABLE%'")}
    # FTS5's own shadow tables (messages_fts_data, …) are rebuilt from the copied index rows
    names = [n for n in names if n != "schema_version"
             and not any(n.startswith(f + "_") for f in fts)]
    parents = {n: {r[2] for r in src.execute(f"PRAGMA foreign_key_list({n})")} - {n}
               for n in names}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and parents[n] <= set(ordered)]
        if not ready:
            raise StoreError("the store's tables refer to each other in a circle; cannot "
                             "order the copy")
        ordered += ready
    return ordered + sorted(fts)


def _columns(src: sqlite3.Connection, dst: pg.Connection, table: str) -> list[str]:
    theirs = {r[0]: r[1] for r in dst.execute(
        "SELECT column_name, is_generated FROM information_schema.columns "
        "WHERE table_name = ?", (table,))}
    identity_always = {r[0] for r in dst.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND "
        "identity_generation = 'ALWAYS'", (table,))}
    if table.endswith("_fts"):
        ours = ["rowid", "subject", "body_text", "addrs"]
    else:
        ours = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
    missing = [c for c in ours if c not in theirs]
    if missing:
        raise StoreError(f"the PostgreSQL schema has no column {table}.{missing[0]}",
                         hint="upgrade mailtix on every host to the same version")
    return [c for c in ours if theirs[c] != "ALWAYS" and c not in identity_always]


def _self_refs(src: sqlite3.Connection, table: str) -> list[str]:
    if table.endswith("_fts"):
        return []
    return [r[3] for r in src.execute(f"PRAGMA foreign_key_list({table})") if r[2] == table]


def is_empty(dst: pg.Connection) -> bool:
    for table in _CONTENT:
        exists = dst.execute("SELECT to_regclass(?) IS NOT NULL", (table,)).fetchone()[0]
        if exists and dst.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]:
            return False
    return True


def copy(src: sqlite3.Connection, url: str, password: str | None) -> dict[str, Any]:
    """Copy every row; verify counts and every raw message's SHA-256; commit only then."""
    dst = pgdb.connect(url, password)
    try:
        if not is_empty(dst):
            raise StoreError(f"the PostgreSQL store {redact(url)} already holds data; "
                             "nothing was copied",
                             hint="migrate into a new, empty database")
        counts: dict[str, int] = {}
        dst.execute("BEGIN")
        try:
            for table in _tables(src):
                counts[table] = _copy_table(src, dst, table)
            _reset_identities(dst, list(counts))
            _verify(src, dst, counts)
            dst.execute("COMMIT")
        except BaseException:
            dst.execute("ROLLBACK")
            raise
        raws = counts.get("raw_messages", 0)
        return {"target": redact(url), "tables": counts, "rows": sum(counts.values()),
                "raw_messages_verified": raws, "schema_version": pgdb.version(dst)}
    finally:
        dst.close()


def _copy_table(src: sqlite3.Connection, dst: pg.Connection, table: str) -> int:
    cols = _columns(src, dst, table)
    later = _self_refs(src, table)
    order = "rowid" if table.endswith("_fts") or table == "outbox_rcpts" else "1"
    cur = src.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}")
    insert = (f"INSERT INTO {table}({', '.join(cols)}) "
              f"VALUES ({', '.join(['%s'] * len(cols))})")
    fixups: list[tuple[Any, ...]] = []
    n = 0
    with dst.raw.cursor() as out:
        while rows := cur.fetchmany(BATCH):
            values = []
            for row in rows:
                row = list(row)
                if later:
                    fixups.append((*(row[cols.index(c)] for c in later), row[cols.index("id")]))
                    for c in later:
                        row[cols.index(c)] = None
                values.append(row)
            out.executemany(insert, values)
            n += len(rows)
        for fix in fixups:
            if any(v is not None for v in fix[:-1]):
                sets = ", ".join(f"{c} = %s" for c in later)
                out.execute(f"UPDATE {table} SET {sets} WHERE id = %s", fix)
    return n


def _reset_identities(dst: pg.Connection, tables: list[str]) -> None:
    """Copied ids were given explicitly: the next new row must not collide with them."""
    for table in tables:
        if not dst.execute("SELECT 1 FROM information_schema.columns WHERE table_name = ? AND "
                           "column_name = 'id' AND is_identity = 'YES'", (table,)).fetchone():
            continue
        seq = dst.execute("SELECT pg_get_serial_sequence(?, 'id')", (table,)).fetchone()
        if seq and seq[0]:
            dst.execute(f"SELECT setval(?, (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), "
                        "false)", (seq[0],))


def _verify(src: sqlite3.Connection, dst: pg.Connection, counts: dict[str, int]) -> None:
    for table, n in counts.items():
        there = dst.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        if there != n:
            raise StoreError(f"copy check failed: {table} has {there} rows in PostgreSQL, "
                             f"{n} in SQLite; nothing was committed")
    theirs: dict[str, str] = {}
    with dst.raw.cursor(name="mailtix_verify") as cur:  # server-side: not all bytes at once
        cur.execute("SELECT sha256, data FROM raw_messages")
        for key, data in cur:
            theirs[key] = hashlib.sha256(bytes(data)).hexdigest()
    ours = {r[0]: hashlib.sha256(r[1]).hexdigest()
            for r in src.execute("SELECT sha256, data FROM raw_messages")}
    if ours != theirs:
        bad = next(k for k in ours if theirs.get(k) != ours[k])
        raise StoreError(f"copy check failed: raw message {bad} differs in PostgreSQL; "
                         "nothing was committed")


__all__ = ["copy", "is_empty"]
