"""Documents: the draft of each row, `mailtix send` and `mailtix documents`. Reading and
checking manifests is in manifest.py, sending a whole manifest in batch.py."""

from __future__ import annotations

import json
from typing import Any

from mailtix import templates
from mailtix.config.model import Account, Config
from mailtix.mail.compose import Draft, signature
from mailtix.manifest import ManifestError, Row, read_manifest, refuse_line_breaks, row_variables
from mailtix.outgoing import queue
from mailtix.store import Store, outbox

__all__ = ["ManifestError", "Row", "draft_for", "documents", "read_manifest", "send_one"]


def _vars(config: Config, account: Account | None, row: Row) -> dict[str, Any]:
    return row_variables(config, account, row)


def draft_for(config: Config, account: Account, template: str | templates.Source, row: Row,
              rendered: templates.Rendered | None = None) -> Draft:
    for name, values in (("to", row.to), ("cc", row.cc), ("bcc", row.bcc)):
        refuse_line_breaks(name, values)
    if rendered is None:
        src = template if isinstance(template, templates.Source) else templates.load(
            config.path, template)
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
