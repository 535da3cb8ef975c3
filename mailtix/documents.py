"""Documents: manifests (read and validated up front), the draft of each row, `mailtix send`
and `mailtix documents`. Sending a whole manifest is in batch.py."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
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
    src = templates.load(config.path, template, config.language_of(account))
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
            config.path, template, config.language_of(account))
        rendered = templates.render(src, _vars(config, account, row))
    return Draft(account=account, to=row.to, cc=row.cc, bcc=row.bcc, subject=rendered.subject,
                 text=rendered.text, html=rendered.html, attachments=row.attachments,
                 signature=signature(config, account))


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
