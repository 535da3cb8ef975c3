"""`mailtix status`: account health, ticket counts, and whether monitoring should alert."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mailtix.config.model import Config
from mailtix.store import Store


def status(config: Config, store: Store) -> dict[str, Any]:
    conn = store.conn
    now = datetime.now(UTC)
    accounts = []
    alert = []
    for name, acct in sorted(config.accounts.items()):
        row = conn.execute("SELECT * FROM account_state WHERE account = ?", (name,)).fetchone()
        item: dict[str, Any] = {"account": name, "active": acct.active,
                                "fetch": acct.fetch.describe() if acct.fetch else ""}
        if row is not None:
            item.update({k: row[k] for k in ("last_run_at", "last_success_at", "last_error",
                                             "last_error_at", "failing_since", "failures",
                                             "backoff_until", "fetched_total", "last_fetched")})
            if row["failing_since"] and acct.active:
                failing = (now - datetime.fromisoformat(row["failing_since"])).total_seconds()
                item["failing_for_s"] = int(failing)
                if failing >= config.general.alert_after:
                    alert.append(name)
        accounts.append(item)
    by_status = dict(conn.execute("SELECT status, COUNT(*) FROM tickets WHERE merged_into IS NULL "
                                  "GROUP BY status ORDER BY status").fetchall())
    by_queue = dict(conn.execute("SELECT queue, COUNT(*) FROM tickets WHERE merged_into IS NULL "
                                 "AND status NOT IN ('closed', 'spam') GROUP BY queue "
                                 "ORDER BY queue").fetchall())
    from mailtix.store.outbox import state_counts

    outbox = state_counts(conn)  # the store is migrated when opened: the table is there
    quarantined = conn.execute("SELECT COUNT(*) FROM messages WHERE malformed = 1 AND "
                               "ticket_id IS NULL").fetchone()[0]
    return {"accounts": accounts, "tickets_by_status": by_status, "open_by_queue": by_queue,
            "outbox": outbox, "quarantined": quarantined, "alert": alert}
