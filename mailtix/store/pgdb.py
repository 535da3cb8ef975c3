"""Opening a PostgreSQL store: connect, migrate, and what `store info` reports of it."""

from __future__ import annotations

from mailtix.errors import StoreError
from mailtix.store import pg
from mailtix.store.db import now
from mailtix.store.pg_schema import PG_MIGRATIONS

# pg_advisory_xact_lock key for schema changes: two hosts starting against a new database
# would otherwise both apply migration 1 ("mailtix" as a number, arbitrary but fixed).
MIGRATE_LOCK = 0x6D61696C746978


def connect(url: str, password: str | None) -> pg.Connection:
    conn = pg.connect(url, password)
    try:
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def version(conn: pg.Connection) -> int:
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not row[0]:
        return 0
    return int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
               .fetchone()[0])


def migrate(conn: pg.Connection) -> int:
    """Apply the missing PostgreSQL migrations, each in its own transaction, serialised by an
    advisory lock; an up-to-date store is recognised without taking it."""
    current = version(conn)
    while current < len(PG_MIGRATIONS):
        conn.execute("BEGIN")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATE_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                         "(version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)")
            current = version(conn)
            if current < len(PG_MIGRATIONS):
                conn.raw.execute(PG_MIGRATIONS[current])  # several statements, no parameters
                conn.execute("INSERT INTO schema_version VALUES (?, ?)", (current + 1, now()))
                current += 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    if current > len(PG_MIGRATIONS):
        raise StoreError(f"the store has schema {current}, newer than this mailtix knows "
                         f"({len(PG_MIGRATIONS)})", hint="upgrade mailtix")
    return current


def info(conn: pg.Connection) -> dict[str, object]:
    size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    server = conn.execute("SHOW server_version").fetchone()[0]
    return {"backend": "postgresql", "store": pg.redact(conn.url), "size_bytes": int(size),
            "schema_version": version(conn), "schema_known": len(PG_MIGRATIONS),
            "server_version": server}


__all__ = ["connect", "info", "migrate", "version"]
