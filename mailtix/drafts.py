"""Mail an agent writes in an editor, as mutt does (header lines on top, the quoted mail
below), and forwards of a ticket's mail. No typer here: the CLI runs the editor."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mailtix.config.model import Config
from mailtix.errors import NotFound, UsageError
from mailtix.store import Store, messages, tickets

EDITABLE = ("To", "Cc", "Subject")
_HEADER = re.compile(r"([A-Za-z][A-Za-z-]*):[ \t]?(.*)")


@dataclass
class Edited:
    to: list[str]
    cc: list[str]
    subject: str
    text: str


def reply_text(to: list[str], cc: list[str], subject: str, last: Any) -> str:
    """The file the editor opens: To/Cc/Subject, a blank line, room to write, the quote."""
    who = last["from_name"] or last["from_addr"] or "you"
    when = last["date"] or last["created_at"] or ""
    quoted = "\n".join(f"> {line}" if line else ">"
                       for line in (last["body_text"] or "").rstrip().splitlines())
    return (f"To: {', '.join(to)}\nCc: {', '.join(cc)}\nSubject: {subject}\n\n\n\n"
            f"On {when[:16].replace('T', ' ')}, {who} wrote:\n{quoted}\n")


def read_back(edited: str, original: str) -> Edited | None:
    """The agent's draft; None when it is empty or was not changed at all (mutt's
    abort_unmodified), so nothing is sent."""
    if not edited.strip() or edited == original:
        return None
    head, sep, body = edited.replace("\r\n", "\n").partition("\n\n")
    if not sep:
        head, body = edited, ""
    fields: dict[str, str] = {}
    last = ""
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and last:  # a folded header line continues the field
            fields[last] += " " + line.strip()
            continue
        m = _HEADER.fullmatch(line)
        name = m.group(1).title() if m else ""
        if name not in EDITABLE:
            raise UsageError(f"the draft's header block has {line.strip()[:60]!r}; only "
                             f"{', '.join(EDITABLE)} lines are read (then one empty line)")
        last = name
        fields[name] = m.group(2).strip() if m else ""
    if not body.strip():
        return None
    from mailtix.mail.compose import addresses

    return Edited(to=addresses([fields.get("To", "")]), cc=addresses([fields.get("Cc", "")]),
                  subject=fields.get("Subject", ""), text=body.strip("\n") + "\n")


def forward(config: Config, store: Store, number: str, *, to: list[str], note: str,
            inline: bool, agent: str, from_: str | None = None,
            message_row: int | None = None) -> dict[str, Any]:
    """Forward the ticket's latest incoming mail (or `message_row`): attached as
    message/rfc822 by default, so the receiver gets it whole; `inline` quotes its text and
    re-attaches its files."""
    from mailtix.desk import find
    from mailtix.mail.compose import Draft, Part, addresses, sender_for, signature
    from mailtix.mail.parse import parse
    from mailtix.outgoing import queue

    recipients = addresses(to)
    if not recipients:
        raise UsageError("forward needs --to ADDRESS")
    ticket_id = find(store, number)
    t = tickets.get(store.conn, ticket_id)
    sql = ("SELECT * FROM messages WHERE ticket_id = ? AND direction = 'in' AND raw_sha256 "
           "IS NOT NULL" + (" AND id = ?" if message_row is not None else "")
           + " ORDER BY id DESC LIMIT 1")
    args = (ticket_id, message_row) if message_row is not None else (ticket_id,)
    row = store.conn.execute(sql, args).fetchone()
    raw = messages.get_raw(store.conn, row["raw_sha256"]) if row is not None else None
    if raw is None:
        raise NotFound(f"ticket {t['number']} has no stored incoming mail to forward")
    account = sender_for(config, from_ or (t["account"] if t["account"] in config.accounts
                                             else None))
    tag = config.general.subject_tag.replace("{number}", t["number"])
    subject = row["subject"] or t["subject"]
    if tag.lower() not in subject.lower():
        subject = f"{subject} {tag}"
    text = note.rstrip("\n") + "\n" if note.strip() else ""
    parts = []
    if inline:
        p = parse(raw, payloads=True)
        sender = f"{row['from_name']} <{row['from_addr']}>" if row["from_name"] \
            else row["from_addr"]
        head = [f"From: {sender}", f"Date: {row['date'] or ''}", f"Subject: {row['subject']}",
                f"To: {row['to_addrs']}"] + ([f"Cc: {row['cc_addrs']}"] if row["cc_addrs"] else [])
        text += ("\n---------- Forwarded message ----------\n" + "\n".join(head) + "\n\n"
                 + (p.body_text or "").rstrip() + "\n")
        parts = [Part(a.filename or f"part-{a.index}", a.content_type or
                      "application/octet-stream", a.data or b"") for a in p.attachments]
    else:
        from mailtix.mail.parse import safe_filename

        name = safe_filename(row["subject"] or "message")[:60] or "message"
        parts = [Part(f"{name}.eml", "message/rfc822", raw)]
    draft = Draft(account=account, to=recipients, subject=f"Fwd: {subject}",
                  text=text or "\n", parts=parts, signature=signature(config, account,
                                                                       t["project"]))
    with store.tx() as conn:
        queued = queue(conn, draft, kind="forward", ticket_id=ticket_id, author=agent)
        tickets.event(conn, "forward", ticket_id=ticket_id, agent=agent,
                      detail=f"message {row['id']} to {', '.join(recipients)} "
                             f"({'inline' if inline else 'attached'})")
    return {"ticket": t["number"], "outbox_id": queued.outbox_id,
            "message_id": queued.message_id, "to": recipients, "from": account.email,
            "forwarded": row["id"], "inline": inline}
