"""Sending documents: one by one (`send`) or from a manifest (`send-batch`), resumable.

A batch row is keyed (batch id + doc_ref or row number) by a unique index on the outbox, so a
re-run after a crash, Ctrl-C or an SMTP outage queues nothing twice and sends only what was
not sent. Rows are read, queued and sent one at a time: memory stays flat however long the
manifest is.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailtix import templates
from mailtix.config.model import Account, Config
from mailtix.errors import MailtixError, UsageError
from mailtix.mail.compose import Draft, addresses, signature
from mailtix.outgoing import queue, variables
from mailtix.store import Store, outbox

RESERVED = ("to", "cc", "bcc", "attachments", "doc_ref")
KEEP_RENDERED = 10_000  # rows whose validation render is reused (memory stays bounded)
LOCK_WAIT = 60.0  # a run's delivery is short; another batch is not waited for this long


class ManifestError(MailtixError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the manifest; nothing was sent:\n"
                         + "\n".join(problems[:200]),
                         hint="fix the rows named above and run the same command again")


@dataclass
class Row:
    number: int  # 1-based data row (the header line is row 0 in a CSV)
    to: list[str]
    cc: list[str]
    bcc: list[str]
    attachments: list[Path]
    doc_ref: str
    vars: dict[str, str]

    @property
    def key(self) -> str:
        return self.doc_ref or f"row{self.number}"


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.replace(";", ",").split(",") if v.strip()] if value else []


def read_manifest(path: Path) -> Iterator[Row]:
    """Rows of a CSV (header line) or JSON-lines manifest; paths relative to its folder."""
    base = path.parent
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ManifestError([f"row {n}: not JSON: {exc}"]) from None
                if not isinstance(data, dict):
                    raise ManifestError([f"row {n}: expected an object"])
                yield _row(n, data, base)
        return
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for n, data in enumerate(csv.DictReader(fh), 1):
            yield _row(n, data, base)


def _row(n: int, data: dict[str, Any], base: Path) -> Row:
    def listed(key: str) -> list[str]:
        value = data.get(key) or []
        return [str(v) for v in value] if isinstance(value, list) else _split(str(value))

    files = [Path(p) if Path(p).is_absolute() else base / p for p in listed("attachments")]
    extra = {k: "" if v is None else str(v) for k, v in data.items()
             if k and k not in RESERVED}
    return Row(n, listed("to"), listed("cc"), listed("bcc"), files,
               str(data.get("doc_ref") or "").strip(), extra)


def validate(config: Config, path: Path, template: str, account: Account | None = None,
             keep: dict[int, templates.Rendered] | None = None) -> tuple[int, str]:
    """Check every row before anything is sent; returns (rows, manifest sha256). Rendered
    rows go into `keep` (up to KEEP_RENDERED), so sending does not render them again."""
    src = templates.load(config.path, template)
    problems: list[str] = []
    keys: dict[str, int] = {}
    digest = hashlib.sha256()
    count = 0
    try:
        rows = read_manifest(path)
        for row in rows:
            count += 1
            digest.update(json.dumps([row.to, row.cc, row.bcc, [str(a) for a in row.attachments],
                                      row.doc_ref, row.vars], sort_keys=True).encode())
            where = f"row {row.number}"
            if not row.to:
                problems.append(f"{where}: 'to' is empty")
            for field_name, values in (("to", row.to), ("cc", row.cc), ("bcc", row.bcc)):
                try:
                    addresses(values)
                except UsageError as exc:
                    problems.append(f"{where}: {field_name}: {exc}")
            for file in row.attachments:
                if not file.is_file():
                    problems.append(f"{where}: attachment not found: {file}")
                else:
                    try:
                        with open(file, "rb") as fh:
                            fh.read(1)
                    except OSError as exc:
                        problems.append(f"{where}: attachment not readable: {file}: "
                                        f"{exc.strerror}")
            if row.key in keys:
                problems.append(f"{where}: duplicate of row {keys[row.key]} "
                                f"({'doc_ref ' + row.doc_ref if row.doc_ref else 'same row'})")
            keys[row.key] = row.number
            try:
                rendered = templates.render(src, _vars(config, account, row))
            except MailtixError as exc:
                problems.append(f"{where}: {exc}")
            else:
                if keep is not None and len(keep) < KEEP_RENDERED:
                    keep[row.number] = rendered
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"cannot read the manifest {path}: {exc}") from None
    if count == 0:
        problems.append("the manifest has no rows")
    if problems:
        raise ManifestError(problems)
    return count, digest.hexdigest()


def _vars(config: Config, account: Account | None, row: Row) -> dict[str, Any]:
    extra = {**row.vars, "doc_ref": row.doc_ref, "to": ", ".join(row.to)}
    if account is None:
        return extra
    return variables(None, config, account, extra=extra)


def draft_for(config: Config, account: Account, template: str | templates.Source, row: Row,
              rendered: templates.Rendered | None = None) -> Draft:
    if rendered is None:
        src = template if isinstance(template, templates.Source) else templates.load(
            config.path, template)
        rendered = templates.render(src, _vars(config, account, row))
    return Draft(account=account, to=row.to, cc=row.cc, bcc=row.bcc, subject=rendered.subject,
                 text=rendered.text, html=rendered.html, attachments=row.attachments,
                 signature=signature(config, account))


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
    from mailtix.lock import Locked, outbox_lock

    renders: dict[int, templates.Rendered] = {}
    total, digest = validate(config, manifest, template, account, renders)
    source = templates.load(config.path, template)  # read once, not per row
    batch = batch_id or f"{manifest.stem}-{digest[:12]}"
    result = BatchResult(batch, total)
    pacer = Pacer(rate)
    with ExitStack() as held:
        if not dry_run:  # one process hands rows to SMTP at a time (see lock.py)
            try:
                held.enter_context(outbox_lock(store.data_dir, wait=LOCK_WAIT))
            except Locked as exc:
                raise MailtixError(f"another process is sending mail ({exc.holder}); nothing "
                                   "was sent", hint="run the same command again when it has "
                                   "finished") from None
        session = None if dry_run else Session(config, store)
        done = 0
        try:
            for row in read_manifest(manifest):
                if limit is not None and done >= limit:
                    break
                if stop():
                    result.interrupted = True
                    break
                existing = store.conn.execute(
                    "SELECT * FROM outbox WHERE batch_id = ? AND batch_key = ?",
                    (batch, row.key)).fetchone()
                if dry_run:
                    msg = draft_for(config, account, source, row, renders.pop(row.number, None))
                    result.dry_run.append({"row": row.number, "key": row.key, "to": row.to,
                                           "subject": msg.subject, "queued_before": bool(existing)})
                    done += 1
                    continue
                assert session is not None
                if existing is not None and existing["state"] in ("sent", "cancelled"):
                    result.skipped.append(row.key)
                    if progress:
                        progress(row.key, "skipped")
                    continue
                raw = None
                pacer.wait(account.name)
                if existing is None:
                    # Queued straight as 'sending': one transaction instead of two. A crash
                    # before the server answers leaves it 'sending', so a re-run sends it again
                    # with the same Message-ID, as for any interrupted delivery.
                    with store.tx() as conn:
                        queued = queue(conn, draft_for(config, account, source, row,
                                                       renders.pop(row.number, None)),
                                       kind="document", doc_ref=row.doc_ref, batch_id=batch,
                                       batch_key=row.key)
                        outbox.mark_sending(conn, queued.outbox_id)
                    existing, raw = outbox.get(store.conn, queued.outbox_id), queued.raw
                elif existing["state"] == "sending":
                    with store.tx() as conn:
                        outbox.recover_interrupted(conn)
                    existing = outbox.get(store.conn, existing["id"])
                new_state = session.send(existing, raw)
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
            if session is not None:
                session.close()
    return result


def send_one(config: Config, store: Store, account: Account, draft: Draft, *, doc_ref: str,
             queue_only: bool) -> dict[str, Any]:
    from mailtix.delivery import deliver

    with store.tx() as conn:
        queued = queue(conn, draft, kind="document", doc_ref=doc_ref)
    out: dict[str, Any] = {"outbox_id": queued.outbox_id, "message_id": queued.message_id,
                           "from": account.email, "rcpts": queued.rcpts, "doc_ref": doc_ref,
                           "state": "queued"}
    if not queue_only:
        report = deliver(config, store, [queued.outbox_id])
        if report.busy:
            out["note"] = (f"another process is sending ({report.busy}); this mail is queued "
                           "and goes out with the next `mailtix run`")
        row = outbox.get(store.conn, queued.outbox_id)
        out["state"] = row["state"]
        out["error"] = row["last_error"]
        out["sent_copy"] = row["sent_copy"]
    return out


def documents(store: Store, doc_ref: str = "", limit: int = 200) -> list[dict[str, Any]]:
    sql = ("SELECT o.id, o.doc_ref, o.message_id, o.rcpts, o.state, o.sent_at, o.batch_id, "
           "o.last_error, t.number AS ticket FROM outbox o LEFT JOIN tickets t ON "
           "t.doc_ref = o.doc_ref AND o.doc_ref != '' WHERE o.kind = 'document'")
    args: list[Any] = []
    if doc_ref:
        sql += " AND o.doc_ref = ?"
        args.append(doc_ref)
    rows = store.conn.execute(sql + " ORDER BY o.id DESC LIMIT ?", (*args, limit))
    return [dict(r) | {"rcpts": json.loads(r["rcpts"])} for r in rows]
