"""`mailtix send-batch`: a manifest's rows queued and sent one by one over one connection.

Resumable: each row is keyed (batch id + doc_ref or row number) by a unique index on the
outbox, so a re-run after a crash, Ctrl-C or an SMTP outage queues nothing twice and sends
only what was not sent. Memory stays flat however long the manifest is.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailtix import templates
from mailtix.config.model import Account, Config
from mailtix.documents import Row, draft_for, read_manifest, validate
from mailtix.errors import MailtixError
from mailtix.outgoing import queue
from mailtix.store import Store, outbox

LOCK_WAIT = 60.0  # a run's delivery is short; another batch is not waited for this long


@dataclass
class BatchResult:
    batch_id: str
    total: int
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # sent in an earlier run
    failed: dict[str, str] = field(default_factory=dict)
    retry: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    dry_run: list[dict[str, Any]] = field(default_factory=list)


class Pacer:
    """At most `per_minute` sends per account, spaced evenly."""

    def __init__(self, per_minute: float | None) -> None:
        self.gap = 60.0 / per_minute if per_minute else 0.0
        self.last: dict[str, float] = {}

    def wait(self, account: str) -> None:
        if not self.gap:
            return
        now = time.monotonic()
        due = self.last.get(account, now - self.gap) + self.gap
        if due > now:
            time.sleep(due - now)
        self.last[account] = time.monotonic()


def send_batch(config: Config, store: Store, account: Account, manifest: Path, template: str,
               *, batch_id: str | None = None, limit: int | None = None,
               rate: float | None = None, dry_run: bool = False,
               stop: Callable[[], bool] = lambda: False,
               progress: Callable[[str, str], None] | None = None) -> BatchResult:
    from mailtix.delivery import Session

    renders: dict[int, templates.Rendered] = {}
    total, digest = validate(config, manifest, template, account, renders)
    source = templates.load(config.path, template,  # read once, not per row
                            config.language_of(account))
    batch = batch_id or f"{manifest.stem}-{digest[:12]}"
    result = BatchResult(batch, total)
    if dry_run:
        return _dry_run(config, store, account, manifest, source, batch, limit, renders, result)
    pacer = Pacer(rate)
    with _sole_sender(store.data_dir):
        session = Session(config, store)
        ahead = _Preparer(config, store.data_dir, account, source, batch, renders)
        rows = read_manifest(manifest)
        pending: deque[tuple[Row, Future]] = deque()

        def prepare_next() -> None:
            row = next(rows, None)
            if row is not None:
                pending.append((row, ahead.submit(row)))

        done = 0
        try:
            prepare_next()
            while pending:
                if limit is not None and done >= limit:
                    break
                if stop():
                    result.interrupted = True
                    break
                row, job = pending.popleft()
                prepare_next()  # queued in the store while this row waits for the server
                existing = job.result()
                if existing["state"] in ("sent", "cancelled"):
                    result.skipped.append(row.key)
                    if progress:
                        progress(row.key, "skipped")
                    continue
                pacer.wait(account.name)
                new_state = session.send(existing, ahead.raw.pop(existing["id"], None))
                done += 1
                error = session.report.errors.get(existing["id"], "")
                if new_state == "sent":
                    result.sent.append(row.key)
                elif new_state == "failed":
                    result.failed[row.key] = error
                else:
                    result.retry[row.key] = error
                if progress:
                    progress(row.key, new_state)
        finally:
            session.close()
            ahead.close([job for _row, job in pending])
    return result


@contextmanager
def _sole_sender(data_dir: Path) -> Iterator[None]:
    """One process hands rows to SMTP at a time (see lock.py)."""
    from mailtix.lock import Locked, outbox_lock

    with ExitStack() as held:
        try:
            held.enter_context(outbox_lock(data_dir, wait=LOCK_WAIT))
        except Locked as exc:
            raise MailtixError(f"another process is sending mail ({exc.holder}); nothing was "
                               "sent", hint="run the same command again when it has finished"
                               ) from None
        yield


class _Preparer:
    """Renders, composes and queues the next row in a second thread (with its own store
    connection) while the main thread waits for the SMTP server, so the row's durable copy
    is written while the previous one is on the wire. Rows are queued before they are sent,
    as always; at most one row is ahead."""

    def __init__(self, config: Config, data_dir: Path, account: Account, source: Any,
                 batch: str, renders: dict[int, templates.Rendered]) -> None:
        self.config, self.data_dir, self.account = config, data_dir, account
        self.source, self.batch, self.renders = source, batch, renders
        self.store: Store | None = None
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="mailtix-batch")
        self.queued_here: set[int] = set()
        self.raw: dict[int, bytes] = {}

    def submit(self, row: Row) -> Future:
        return self.pool.submit(self._prepare, row)

    def _prepare(self, row: Row):
        if self.store is None:
            self.store = Store.open(self.data_dir)
        conn = self.store.conn
        existing = outbox.batch_row(conn, self.batch, row.key)
        if existing is None:
            draft = draft_for(self.config, self.account, self.source, row,
                              self.renders.pop(row.number, None))
            with self.store.tx() as tx:
                queued = queue(tx, draft, kind="document", doc_ref=row.doc_ref,
                               batch_id=self.batch, batch_key=row.key)
            self.queued_here.add(queued.outbox_id)
            self.raw[queued.outbox_id] = queued.raw
            return outbox.get(conn, queued.outbox_id)
        if existing["state"] == "sending":  # left so by a killed run (we hold the lock)
            with self.store.tx() as tx:
                outbox.recover_interrupted(tx, existing["id"])
            return outbox.get(conn, existing["id"])
        return existing

    def close(self, unsent: list[Future]) -> None:
        """A row queued ahead but never attempted (Ctrl-C, --limit) is taken out again, so
        an interrupted batch leaves nothing that a later `mailtix run` would send; running
        the batch again queues it anew."""
        ids = []
        for job in unsent:
            try:
                row = job.result()
            except Exception:  # noqa: BLE001 -- an error of a row nobody will send
                continue
            if row["id"] in self.queued_here:
                ids.append(row["id"])
        self.pool.submit(self._close, ids).result()
        self.pool.shutdown()

    def _close(self, ids: list[int]) -> None:
        if self.store is None:
            return
        with self.store.tx() as tx:
            for row_id in ids:
                outbox.discard_unattempted(tx, row_id)
        self.store.close()


def _dry_run(config: Config, store: Store, account: Account, manifest: Path, source: Any,
             batch: str, limit: int | None, renders: dict[int, templates.Rendered],
             result: BatchResult) -> BatchResult:
    for row in read_manifest(manifest):
        if limit is not None and len(result.dry_run) >= limit:
            break
        existing = outbox.batch_row(store.conn, batch, row.key)
        msg = draft_for(config, account, source, row, renders.pop(row.number, None))
        result.dry_run.append({"row": row.number, "key": row.key, "to": row.to,
                               "subject": msg.subject, "queued_before": bool(existing)})
    return result
