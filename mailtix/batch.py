"""`mailtix send-batch`: a manifest's rows queued and sent one by one over one connection.

Exactly once per document: a row with a `doc_ref` is skipped when that doc_ref already went
to (or is queued for) one of its recipients, whatever batch or file it came from. Rows are
also keyed by batch id (the manifest's content, not its path) + doc_ref or row number, by a
unique index on the outbox, so a re-run after a crash, Ctrl-C or an SMTP outage queues
nothing twice. A row changed since it was queued is noticed: the corrected row replaces the
unsent one. Memory stays flat however long the manifest is.
"""

from __future__ import annotations

import json
import re
import sqlite3
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
from mailtix.documents import draft_for
from mailtix.errors import MailtixError
from mailtix.mail.addresses import envelope, parse_address_list
from mailtix.manifest import Layout, Row, read_manifest, validate
from mailtix.outgoing import queue
from mailtix.store import Store, outbox, tickets

LOCK_WAIT = 60.0  # a run's delivery is short; another batch is not waited for this long
SERVER_BUSY = re.compile(r"(?<!\d)421(?!\d)")  # RFC 5321 4.2.3: service not available
PAUSE_SLICE = 0.1  # how often a --rate pause looks for Ctrl-C


@dataclass
class BatchResult:
    batch_id: str
    total: int
    sent: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # with reason, date, Message-ID
    failed: dict[str, str] = field(default_factory=dict)
    # rows sent to some recipients and refused for good by others (a 550 for a cc)
    refused: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    retry: dict[str, str] = field(default_factory=dict)
    replaced: list[str] = field(default_factory=list)  # changed rows sent in corrected form
    resent: list[str] = field(default_factory=list)  # sent again on purpose (--resend)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False
    dry_run: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Plan:
    """What to do with one manifest row, decided against the store."""

    action: str  # skip, send (the stored row), new (queue the row)
    existing: Any = None  # the stored outbox row this decision is about
    reason: str = ""
    retire: int | None = None  # unsent stored row replaced by the corrected one
    resend: bool = False
    key: str = ""  # batch key of a new row


class Pacer:
    """At most `per_minute` sends per account, spaced evenly."""

    def __init__(self, per_minute: float | None) -> None:
        self.gap = 60.0 / per_minute if per_minute else 0.0
        self.last: dict[str, float] = {}

    def wait(self, account: str, stop: Callable[[], bool] = lambda: False) -> bool:
        """Sleep until the account's next slot; False when `stop` turned true meanwhile
        (Ctrl-C in a long pause must not wait for the next mail to go out)."""
        if not self.gap:
            return not stop()
        now = time.monotonic()
        due = self.last.get(account, now - self.gap) + self.gap
        while (left := due - time.monotonic()) > 0:
            if stop():
                return False
            time.sleep(min(left, PAUSE_SLICE))
        if stop():
            return False
        self.last[account] = time.monotonic()
        return True


def when(row: Any) -> str:
    return str(row["sent_at"] or row["created_at"] or "")[:16].replace("T", " ")


def earlier_send(conn: sqlite3.Connection, doc_ref: str, to: list[str]) -> Any:
    """The stored mail that already carries this document to one of these recipients."""
    if not doc_ref:
        return None
    # As compose writes the envelope (IDNA domain, lower case), which is what was stored.
    wanted = {envelope(addr).lower()
              for value in to for _name, addr in parse_address_list(value) if addr}
    for prior in outbox.document_sends(conn, doc_ref):
        if wanted & {r.lower() for r in json.loads(prior["rcpts"])}:
            return prior
    return None


def document_sent(store: Store, doc_ref: str, to: list[str]) -> dict[str, Any] | None:
    """For `mailtix send`: the earlier mail of this document to one of these recipients."""
    prior = earlier_send(store.conn, doc_ref, to)
    if prior is None:
        return None
    return {"doc_ref": doc_ref, "reason": describe(prior, doc_ref), "sent_at": prior["sent_at"],
            "message_id": prior["message_id"], "earlier_state": prior["state"]}


def record_resend(store: Store, account: Account, doc_ref: str, to: list[str],
                  message_id: str, prior: dict[str, Any]) -> None:
    with store.tx() as tx:
        tickets.event(tx, "resent", account=account.name,
                      detail=f"{doc_ref} to {', '.join(to)}: {message_id}, sent again on "
                             f"purpose (before: {prior['message_id']})")


def describe(prior: Any, doc_ref: str = "") -> str:
    what = f"doc_ref {doc_ref} " if doc_ref else ""
    where = f" in batch {prior['batch_id']}" if doc_ref and prior["batch_id"] else ""
    if prior["state"] == "sent":
        return f"{what}already sent on {when(prior)} as {prior['message_id']}{where}"
    return (f"{what}already queued on {when(prior)} as {prior['message_id']}{where} "
            f"({prior['state']}; `mailtix run` delivers it)")


def plan_row(conn: sqlite3.Connection, batch: str, row: Row, resend: bool) -> Plan:
    existing = outbox.batch_row(conn, batch, row.key)
    if existing is not None:
        state = existing["state"]
        changed = bool(existing["row_sha"]) and existing["row_sha"] != row.digest
        if state == "cancelled":
            return Plan("skip", existing, "cancelled earlier in this batch")
        if state in ("queued", "retry", "failed", "sending"):
            if changed and state != "sending":  # a row on the wire when a run died stays
                return Plan("new", existing, f"changed since it was queued on {when(existing)}:"
                            f" the corrected row is sent ({existing['message_id']} cancelled)",
                            retire=existing["id"], key=row.key)
            return Plan("send", existing)
        if resend:  # sent: a new key in this batch, the old row stays on record
            return Plan("new", existing, f"sent again on purpose (before: {when(existing)}, "
                        f"{existing['message_id']})", resend=True,
                        key=f"{row.key}~resent-{time.time_ns()}")
        reason = describe(existing)
        if changed:
            again = (f"--resend-ref {row.doc_ref}" if row.doc_ref else "--resend")
            reason += f"; the row changed since, and is not sent again ({again} would)"
        return Plan("skip", existing, reason)
    prior = earlier_send(conn, row.doc_ref, row.to)
    if prior is not None:
        if not resend:
            return Plan("skip", prior, describe(prior, row.doc_ref))
        return Plan("new", prior, f"sent again on purpose (before: {when(prior)}, "
                    f"{prior['message_id']})", resend=True, key=row.key)
    return Plan("new", key=row.key)


def send_batch(config: Config, store: Store, account: Account, manifest: Path, template: str,
               *, layout: Layout | None = None, batch_id: str | None = None,
               limit: int | None = None, rate: float | None = None, dry_run: bool = False,
               resend: bool = False, resend_refs: frozenset[str] = frozenset(),
               stop: Callable[[], bool] = lambda: False,
               started: Callable[[int], None] | None = None,
               progress: Callable[[str, str], None] | None = None) -> BatchResult:
    from mailtix.delivery import Session

    checked = validate(config, manifest, template, account, layout)
    source = templates.load(config.path, template,  # read once, not per row
                            config.language_of(account))
    # Keyed on what the rows say, not on the file's name or how its path was typed.
    batch = batch_id or f"batch-{checked.digest[:16]}"
    result = BatchResult(batch, checked.rows)
    if checked.without_ref:
        result.warnings.append(
            f"{checked.without_ref} row(s) without doc_ref are keyed by this file's content "
            "and row number only: not protected across files (a re-exported or edited file "
            f"sends them again; resume an edited file with --batch-id {batch})")

    def again(row: Row) -> bool:
        return resend or bool(row.doc_ref and row.doc_ref in resend_refs)

    rows = read_manifest(manifest, layout)
    if dry_run:
        return _dry_run(config, store, account, rows, source, batch, limit, again, result)
    if started:
        started(checked.rows)
    pacer = Pacer(rate)
    with _sole_sender(store.data_dir):
        session = Session(config, store)
        ahead = _Preparer(config, store.data_dir, account, source, batch, again)
        pending: deque[tuple[Row, Future]] = deque()

        def prepare_next() -> None:
            row = next(rows, None)
            if row is not None:
                pending.append((row, ahead.submit(row)))

        done = 0
        try:
            prepare_next()
            while pending:
                if limit is not None and done >= limit or stop():
                    result.interrupted = stop()
                    break
                row, job = pending[0]
                plan, stored = job.result()
                if plan.action == "skip":
                    pending.popleft()
                    prepare_next()
                    result.skipped.append(_skip(row, plan))
                    if progress:
                        progress(row.key, "skipped")
                    continue
                backed_off = account.name in session.down  # no mail goes out: no pause
                if not backed_off and not pacer.wait(account.name, stop) or stop():
                    result.interrupted = True
                    break
                pending.popleft()
                prepare_next()  # queued in the store while this row waits for the server
                new_state = session.send(stored, ahead.raw.pop(stored["id"], None))
                done += 1
                error = session.report.errors.get(stored["id"], "")
                _record(result, row, plan, new_state, error)
                if new_state == "sent" and error:
                    result.refused[row.key] = [
                        {"rcpt": r["rcpt"], "state": r["state"], "reply": r["reply"]}
                        for r in outbox.rcpts(store.conn, stored["id"])
                        if r["state"] in outbox.REFUSED]
                if new_state == "retry" and SERVER_BUSY.search(error):
                    # The server asked us to go away: the account's remaining rows wait
                    # for a later run instead of one refused connection each.
                    session.down.setdefault(account.name, error)
                if progress:
                    progress(row.key, new_state)
        finally:
            session.close()
            ahead.close([job for _row, job in pending])
    return result


def _skip(row: Row, plan: Plan) -> dict[str, Any]:
    prior = plan.existing
    return {"row": row.number, "key": row.key, "to": row.to, "reason": plan.reason,
            "sent_at": prior["sent_at"] if prior is not None else None,
            "message_id": prior["message_id"] if prior is not None else ""}


def _record(result: BatchResult, row: Row, plan: Plan, new_state: str, error: str) -> None:
    if plan.retire is not None:
        result.replaced.append(row.key)
        result.notes.append(f"row {row.number} ({row.key}): {plan.reason}")
    if plan.resend:
        result.resent.append(row.key)
        result.notes.append(f"row {row.number} ({row.key}): {plan.reason}")
    if new_state == "sent":
        result.sent.append(row.key)
    elif new_state == "claimed":  # a host sharing the PostgreSQL store took the row over
        result.notes.append(f"row {row.number} ({row.key}): sent by another host")
    elif new_state == "failed":
        result.failed[row.key] = error
    else:
        result.retry[row.key] = error


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
    """Decides, renders, composes and queues the next row in a second thread (with its own
    store connection) while the main thread waits for the SMTP server, so the row's durable
    copy is written while the previous one is on the wire. Rows are queued before they are
    sent, as always; at most one row is ahead."""

    def __init__(self, config: Config, data_dir: Path, account: Account, source: Any,
                 batch: str, again: Callable[[Row], bool]) -> None:
        self.config, self.data_dir, self.account = config, data_dir, account
        self.source, self.batch, self.again = source, batch, again
        self.store: Store | None = None
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="mailtix-batch")
        self.queued_here: set[int] = set()
        self.raw: dict[int, bytes] = {}

    def submit(self, row: Row) -> Future:
        return self.pool.submit(self._prepare, row)

    def _prepare(self, row: Row) -> tuple[Plan, Any]:
        if self.store is None:
            self.store = Store.open(self.data_dir, self.config.store.url,
                                    self.config.store.password_cmd)
        conn = self.store.conn
        plan = plan_row(conn, self.batch, row, self.again(row))
        if plan.action == "skip":
            return plan, None
        if plan.action == "send":
            if plan.existing["state"] == "sending":  # left so by a killed run (we hold the lock)
                with self.store.tx() as tx:
                    outbox.recover_interrupted(tx, plan.existing["id"])
            return plan, outbox.get(conn, plan.existing["id"])
        draft = draft_for(self.config, self.account, self.source, row)
        with self.store.tx() as tx:
            if plan.retire is not None:
                outbox.retire_batch_row(tx, plan.retire, "replaced by the corrected manifest row")
            queued = queue(tx, draft, kind="document", doc_ref=row.doc_ref,
                           batch_id=self.batch, batch_key=plan.key)
            outbox.set_row_sha(tx, queued.outbox_id, row.digest)
            if plan.resend:
                tickets.event(tx, "resent", account=self.account.name,
                              detail=f"{row.doc_ref or row.key} to {', '.join(row.to)}: "
                                     f"{queued.message_id}, {plan.reason}")
        self.queued_here.add(queued.outbox_id)
        self.raw[queued.outbox_id] = queued.raw
        return plan, outbox.get(conn, queued.outbox_id)

    def close(self, unsent: list[Future]) -> None:
        """A row queued ahead but never attempted (Ctrl-C, --limit) is taken out again, so
        an interrupted batch leaves nothing that a later `mailtix run` would send; running
        the batch again queues it anew."""
        ids = []
        for job in unsent:
            try:
                _plan, row = job.result()
            except Exception:  # noqa: BLE001 -- an error of a row nobody will send
                continue
            if row is not None and row["id"] in self.queued_here:
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


def _dry_run(config: Config, store: Store, account: Account, rows: Iterator[Row],
             source: Any, batch: str, limit: int | None, again: Callable[[Row], bool],
             result: BatchResult) -> BatchResult:
    would_send = 0
    for row in rows:
        if limit is not None and would_send >= limit:
            break
        plan = plan_row(store.conn, batch, row, again(row))
        item = {"row": row.number, "key": row.key, "to": row.to, "action": plan.action,
                "reason": plan.reason, "queued_before": plan.existing is not None}
        if plan.action == "skip":
            result.skipped.append(_skip(row, plan))
        else:
            would_send += 1
            item["subject"] = draft_for(config, account, source, row).subject
            if plan.action == "new" and plan.existing is not None:
                item["action"] = "replace" if plan.retire is not None else "resend"
            elif plan.action == "send":  # queued by an earlier run of this batch
                item["action"] = "resume"
                item["reason"] = (f"queued on {when(plan.existing)}, "
                                  f"{plan.existing['state']}")
        result.dry_run.append(item)
    return result
