"""Documents: the draft of each row, `mailtix send` and `mailtix documents`. Reading and
checking manifests is in manifest.py, sending a whole manifest in batch.py."""

from __future__ import annotations

import json
from typing import Any

from mailtix import templates
from mailtix.config.model import Account, Config
from mailtix.errors import UsageError
from mailtix.mail.compose import Draft, signature
from mailtix.manifest import ManifestError, Row, read_manifest, refuse_line_breaks, row_variables
from mailtix.outgoing import queue
from mailtix.returned import document_ticket
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
            config.path, template, config.language_of(account))
        rendered = templates.render(src, _vars(config, account, row))
    return Draft(account=account, to=row.to, cc=row.cc, bcc=row.bcc, subject=rendered.subject,
                 text=rendered.text, html=rendered.html, attachments=row.attachments,
                 signature=signature(config, account))


def free_text(config: Config, account: Account, row: Row, subject: str, text: str) -> Draft:
    """A mail without a template (correspondence): the given subject and text, the
    account's signature, the row's recipients and attachments."""
    if not subject.strip():
        raise UsageError("the subject is empty; nothing sent")
    if not text.strip():
        raise UsageError("the body is empty; nothing sent")
    return Draft(account=account, to=row.to, cc=row.cc, bcc=row.bcc, subject=subject.strip(),
                 text=text, attachments=row.attachments, signature=signature(config, account))


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
        out["busy"] = bool(report.busy)
    out["recipients"] = outbox.rcpts(store.conn, queued.outbox_id)
    out["refused"] = [r for r in out["recipients"] if r["state"] in outbox.REFUSED]
    return out


DOC_STATES = ("bounced", "sent", "queued", "failed", "cancelled")
# A recipient refused at RCPT or bounced later makes the document 'bounced': someone has to
# act on it, even when the archive copy went through.
_DOC_STATE = (
    "CASE WHEN EXISTS (SELECT 1 FROM outbox_rcpts r WHERE r.outbox_id = o.id AND r.state IN "
    "('refused', 'bounced')) OR EXISTS (SELECT 1 FROM outbox_events e WHERE e.outbox_id = o.id "
    "AND e.kind = 'bounce') THEN 'bounced' WHEN o.state IN ('queued', 'sending', 'retry') "
    "THEN 'queued' ELSE o.state END")


def documents(store: Store, doc_ref: str = "", limit: int = 200, state: str = "",
              since: str = "") -> list[dict[str, Any]]:
    """Document mails, newest first, each with its recipients' states, what came back
    (bounces, delays, replies) and its ticket (after merges, the merge target)."""
    if state and state not in DOC_STATES:
        raise UsageError(f"unknown document state {state!r}",
                         hint="one of " + ", ".join(DOC_STATES))
    conn = store.conn
    sql = (f"SELECT * FROM (SELECT o.*, {_DOC_STATE} AS doc_state FROM outbox o "
           "WHERE o.kind = 'document') AS d")
    where: list[str] = []
    args: list[Any] = []
    for cond, value in (("doc_ref = ?", doc_ref), ("doc_state = ?", state),
                        ("COALESCE(sent_at, created_at) >= ?", since)):
        if value:
            where.append(cond)
            args.append(value)
    if where:
        sql += " WHERE " + " AND ".join(where)
    out = []
    for r in conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall():
        ticket_id = document_ticket(conn, r)
        number = conn.execute("SELECT number FROM tickets WHERE id = ?",
                              (ticket_id,)).fetchone() if ticket_id else None
        events = outbox.events(conn, int(r["id"]))
        out.append({
            "id": r["id"], "doc_ref": r["doc_ref"], "message_id": r["message_id"],
            "rcpts": json.loads(r["rcpts"]), "state": r["doc_state"],
            "outbox_state": r["state"], "sent_at": r["sent_at"], "batch_id": r["batch_id"],
            "last_error": r["last_error"], "ticket": number[0] if number else None,
            "recipients": outbox.rcpts(conn, int(r["id"])),
            "bounces": [e for e in events if e["kind"] == "bounce"],
            "delays": [e for e in events if e["kind"] == "delay"],
            "replies": [e for e in events if e["kind"] in ("reply", "auto-reply")],
        })
    return out
