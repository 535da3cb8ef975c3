"""Working tickets: the core behind `mailtix ticket …` (no typer, no rich here)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailtix.config.model import PRIORITIES, STATUSES, Account, Config
from mailtix.errors import NotFound, UsageError
from mailtix.fsutil import SafeDir, unique_names, write_mbox
from mailtix.store import Store, actions, messages, queries, tickets


def agent_name(explicit: str | None) -> str:
    return explicit or os.environ.get("MAILTIX_AGENT") or os.environ.get("USER") or "unknown"


_PASTED = re.compile(r"\[?[^\[\]\d#]*#?\s*(\d+)\s*\]?")


def find(store: Store, number: str) -> int:
    """A full number, a pasted subject tag ([Ticket#202611220001]), or a unique suffix."""
    text = number.strip()
    m = _PASTED.fullmatch(text) or re.search(r"#\s*(\d{4,})", text)
    digits = m.group(1) if m else text.lstrip("#")
    row = tickets.by_number(store.conn, digits)
    if row is not None:
        return int(row["id"])
    if digits.isdigit():
        rows = actions.by_suffix(store.conn, digits)
        if len(rows) == 1:
            return int(rows[0]["id"])
        if rows:
            shown = ", ".join(r["number"] for r in rows[:5]) + (" …" if len(rows) > 5 else "")
            raise UsageError(f"{number!r} ends {len(rows)} ticket numbers ({shown})",
                             hint="give more digits")
    raise NotFound(f"no ticket {number}")


def show(store: Store, number: str) -> dict[str, Any]:
    return queries.ticket_detail(store.conn, find(store, number))


def raw(store: Store, number: str, message_row: int) -> bytes:
    ticket_id = find(store, number)
    row = store.conn.execute("SELECT raw_sha256 FROM messages WHERE id = ? AND ticket_id = ?",
                             (message_row, ticket_id)).fetchone()
    data = messages.get_raw(store.conn, row[0]) if row and row[0] else None
    if data is None:
        raise NotFound(f"ticket {number} has no stored message {message_row}")
    return data


def note(store: Store, number: str, text: str, agent: str) -> int:
    if not text.strip():
        raise UsageError("an empty note")
    ticket_id = find(store, number)
    with store.tx() as conn:
        row = messages.insert(conn, ticket_id=ticket_id, direction="note", body_text=text,
                              author=agent, subject="note")
        tickets.activity(conn, ticket_id, reopen=False)
        tickets.event(conn, "note", ticket_id=ticket_id, agent=agent, detail=f"message {row}")
    return row


def set_field(config: Config, store: Store, number: str, name: str, value: str,
              agent: str) -> bool:
    if name == "status" and value not in STATUSES:
        raise UsageError(f"unknown status {value!r}; one of {', '.join(STATUSES)}")
    if name == "assignee" and value and config.agents and value not in config.agents:
        raise UsageError(f"unknown agent {value!r}; known: {', '.join(sorted(config.agents))}")
    if name == "queue" and value and config.queues and value not in config.queues:
        raise UsageError(f"unknown queue {value!r}; known: {', '.join(sorted(config.queues))}")
    if name == "priority" and value not in PRIORITIES:
        raise UsageError(f"priority is one of {', '.join(PRIORITIES)}")
    if name == "type" and value and value not in config.general.ticket_types:
        known = ", ".join(config.general.ticket_types) or "none: set [general] ticket_types"
        raise UsageError(f"unknown ticket type {value!r}; known: {known}")
    ticket_id = find(store, number)
    with store.tx() as conn:
        return tickets.set_field(conn, ticket_id, name, value, agent=agent)


@dataclass
class ReplyPlan:
    """What a reply would be: recipients, subject, threading, and the mail it answers."""

    ticket_id: int
    number: str
    project: str
    account: Account
    to: list[str]
    cc: list[str]
    subject: str
    in_reply_to: str
    references: list[str]
    last: Any  # the messages row answered


def plan_reply(config: Config, store: Store, number: str, *, cc: list[str], reply_all: bool,
               from_: str | None = None) -> ReplyPlan:
    """The reply to the ticket's latest incoming mail, From the address it came in on."""
    from mailtix.mail.compose import bare, sender_for

    ticket_id = find(store, number)
    t = tickets.get(store.conn, ticket_id)
    last = store.conn.execute(
        "SELECT * FROM messages WHERE ticket_id = ? AND direction = 'in' ORDER BY id DESC "
        "LIMIT 1", (ticket_id,)).fetchone()
    if last is None:
        raise UsageError(f"ticket {number} has no incoming mail to reply to")
    account = sender_for(config, from_ or (t["account"] if t["account"] in config.accounts
                                             else None))
    to = [_reply_to(store, last) or last["from_addr"]]
    own = config.own_addresses()
    extra_cc = list(cc)
    if reply_all:
        for addr in (last["to_addrs"] + "," + last["cc_addrs"]).split(","):
            addr = addr.strip()
            if addr and config.address_key(addr) not in own and bare(addr) != bare(to[0]):
                extra_cc.append(addr)
    tag = config.general.subject_tag.replace("{number}", t["number"])
    subject = t["subject"]
    if tag.lower() not in subject.lower():
        subject = f"{subject} {tag}"
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    refs = (last["refs"].split() if last["refs"] else [])
    return ReplyPlan(ticket_id, t["number"], t["project"], account, to, extra_cc, subject,
                     last["message_id"],
                     [*refs, last["message_id"]] if last["message_id"] else refs, last)


def machine_addresses(addresses: list[str]) -> list[str]:
    """The mailer-daemon and no-reply addresses among these: nobody reads a reply there."""
    from mailtix.mail.compose import bare
    from mailtix.mail.detect import is_noreply

    return [a for a in addresses if is_noreply(bare(a))]


def reply(config: Config, store: Store, number: str, *, text: str, html: str | None,
          attachments: list, cc: list[str], reply_all: bool, status: str | None, agent: str,
          from_: str | None = None, to: list[str] | None = None, subject: str | None = None,
          force: bool = False) -> dict[str, Any]:
    """Queue a reply. `to` (and then `cc` exactly) and `subject` replace the planned ones,
    as an agent edited them. `status` None means [general] status_after_reply."""
    from mailtix.mail.compose import Draft, signature
    from mailtix.outgoing import queue

    if status is None:
        status = config.general.status_after_reply
    if status and status not in STATUSES:
        raise UsageError(f"unknown status {status!r}")
    plan = plan_reply(config, store, number, cc=cc, reply_all=reply_all and to is None,
                      from_=from_)
    if to is not None:
        plan.to, plan.cc = list(to), list(cc)
    if not plan.to:
        raise UsageError("the reply has no recipient (To is empty); nothing queued")
    machines = machine_addresses(plan.to + plan.cc)
    if machines and not force:
        raise UsageError(f"{', '.join(machines)} is a mailer-daemon or no-reply address; "
                         "nothing queued", hint="nobody reads replies there; --force sends anyway")
    draft = Draft(account=plan.account, to=plan.to, cc=plan.cc,
                  subject=subject or plan.subject, text=text, html=html,
                  attachments=attachments, in_reply_to=plan.in_reply_to,
                  references=plan.references,
                  signature=signature(config, plan.account, plan.project))
    ticket_id = plan.ticket_id
    with store.tx() as conn:
        queued = queue(conn, draft, kind="reply", ticket_id=ticket_id, author=agent)
        tickets.event(conn, "reply", ticket_id=ticket_id, agent=agent,
                      detail=f"{queued.message_id} to {', '.join(queued.rcpts)}")
        if status:
            tickets.set_field(conn, ticket_id, "status", status, agent=agent)
    return {"ticket": plan.number, "outbox_id": queued.outbox_id,
            "message_id": queued.message_id, "to": plan.to, "cc": plan.cc,
            "from": plan.account.email, "status": status or None}


def _reply_to(store: Store, row) -> str:
    from mailtix.mail.parse import parse

    raw = messages.get_raw(store.conn, row["raw_sha256"]) if row["raw_sha256"] else None
    if raw is None:
        return ""
    p = parse(raw)
    return p.reply_to[0][1] if p.reply_to else ""


def link(store: Store, number: str, doc_ref: str, agent: str) -> dict[str, Any]:
    """Link a ticket to a document by hand: the document's mails (sent and to come) and the
    answers to them land on this ticket."""
    from mailtix.returned import link_ticket

    doc_ref = doc_ref.strip()
    if not doc_ref:
        raise UsageError("an empty --doc-ref")
    ticket_id = find(store, number)
    with store.tx() as conn:
        tickets.set_field(conn, ticket_id, "doc_ref", doc_ref, agent=agent, why="linked by hand")
        link_ticket(conn, doc_ref, ticket_id)
        mails = conn.execute("SELECT COUNT(*) FROM outbox WHERE doc_ref = ? AND ticket_id = ?",
                             (doc_ref, ticket_id)).fetchone()[0]
    return {"ticket": tickets.get(store.conn, ticket_id)["number"], "doc_ref": doc_ref,
            "mails": mails}


def edit_contact(store: Store, email: str, *, name: str | None, company: str | None,
                 agent: str) -> dict[str, Any]:
    changes = {k: v.strip() for k, v in (("name", name), ("company", company)) if v is not None}
    if not changes:
        raise UsageError("nothing to change: give --name and/or --company")
    from mailtix.mail.compose import bare

    with store.tx() as conn:
        row = actions.edit_contact(conn, bare(email) or email.strip().lower(), changes, agent)
    if row is None:
        raise NotFound(f"no contact {email}")
    return row


def tag(store: Store, number: str, changes: list[str], agent: str) -> list[str]:
    """+name adds, -name removes (a bare name adds); returns the tags now on the ticket."""
    ticket_id = find(store, number)
    with store.tx() as conn:
        for change in changes:
            name = change.lstrip("+-").strip()
            if not name:
                raise UsageError(f"empty tag in {change!r}")
            if change.startswith("-"):
                if conn.execute("DELETE FROM tags WHERE ticket_id = ? AND tag = ?",
                                (ticket_id, name)).rowcount:
                    tickets.event(conn, "tag", ticket_id=ticket_id, agent=agent,
                                  detail=f"-{name}")
            elif conn.execute("INSERT OR IGNORE INTO tags(ticket_id, tag) VALUES (?, ?)",
                              (ticket_id, name)).rowcount:
                tickets.event(conn, "tag", ticket_id=ticket_id, agent=agent, detail=f"+{name}")
    return [r[0] for r in store.conn.execute(
        "SELECT tag FROM tags WHERE ticket_id = ? ORDER BY tag", (ticket_id,))]


def spam(config: Config, store: Store, number: str, agent: str, *, block_sender: bool,
         junk: bool) -> dict[str, Any]:
    """Status spam; optionally future mail from the sender is spam too, and the server copies
    move to the account's Junk folder."""
    ticket_id = find(store, number)
    t = tickets.get(store.conn, ticket_id)
    sender = store.conn.execute("SELECT email FROM contacts WHERE id = ?",
                                (t["contact_id"],)).fetchone()
    out: dict[str, Any] = {"ticket": t["number"], "sender_rule": None, "moved": 0}
    with store.tx() as conn:
        tickets.set_field(conn, ticket_id, "status", "spam", agent=agent)
        if block_sender and sender:
            from mailtix.store.db import now

            conn.execute("INSERT OR IGNORE INTO sender_rules(email, action, agent, created_at) "
                         "VALUES (?, 'spam', ?, ?)", (sender[0], agent, now()))
            tickets.event(conn, "sender rule", ticket_id=ticket_id, agent=agent,
                          detail=f"{sender[0]}: spam")
            out["sender_rule"] = sender[0]
    if junk:
        from mailtix.mailbox_actions import to_junk

        out["moved"] = to_junk(config, store, ticket_id)
    return out


def merge(store: Store, target: str, source: str, agent: str) -> dict[str, Any]:
    """Move B's messages, contacts, watchers, tags and history into A; B redirects to A."""
    a, b = find(store, target), find(store, source)
    if a == b:
        raise UsageError("a ticket cannot be merged into itself")
    with store.tx() as conn:
        moved = conn.execute("UPDATE messages SET ticket_id = ? WHERE ticket_id = ?",
                             (a, b)).rowcount
        for table, cols in (("ticket_contacts", "contact_id, role"), ("watchers", "agent"),
                            ("tags", "tag")):
            conn.execute(f"INSERT OR IGNORE INTO {table}(ticket_id, {cols}) "
                         f"SELECT ?, {cols} FROM {table} WHERE ticket_id = ?", (a, b))
            conn.execute(f"DELETE FROM {table} WHERE ticket_id = ?", (b,))
        conn.execute("UPDATE events SET ticket_id = ? WHERE ticket_id = ?", (a, b))
        conn.execute("UPDATE outbox SET ticket_id = ? WHERE ticket_id = ?", (a, b))
        numbers = {r[0]: r[1] for r in conn.execute(
            "SELECT id, number FROM tickets WHERE id IN (?, ?)", (a, b))}
        conn.execute("UPDATE tickets SET merged_into = ?, status = 'closed', updated_at = "
                     "datetime('now') WHERE id = ?", (a, b))
        tickets.activity(conn, a, reopen=False)
        tickets.event(conn, "merged", ticket_id=a, agent=agent,
                      detail=f"{numbers[b]} merged into {numbers[a]} ({moved} messages)")
    return {"into": numbers[a], "merged": numbers[b], "messages": moved}


def export(store: Store, number: str, *, eml_dir: Path | None = None,
           mbox_file: Path | None = None, force: bool = False) -> int:
    """Write the ticket's messages byte-exact: one .eml each into a folder, or one mbox file.
    Nothing is appended to or written through an existing file (see fsutil.SafeDir)."""
    if (eml_dir is None) == (mbox_file is None):
        raise UsageError("give exactly one of --eml DIR or --mbox FILE")
    ticket_id = find(store, number)
    rows = store.conn.execute("SELECT id, raw_sha256 FROM messages WHERE ticket_id = ? AND "
                              "raw_sha256 IS NOT NULL ORDER BY id", (ticket_id,)).fetchall()
    raws = [messages.get_raw(store.conn, r["raw_sha256"]) or b"" for r in rows]
    if mbox_file is not None:
        with SafeDir(mbox_file.parent, create=False, force=force) as folder:
            folder.check_free([mbox_file.name])
            with folder.create(mbox_file.name) as fh:
                write_mbox(fh, raws)
        return len(rows)
    assert eml_dir is not None
    prefix = tickets.get(store.conn, ticket_id)["number"]
    names = [f"{prefix}-{r['id']:06d}.eml" for r in rows]
    with SafeDir(eml_dir, force=force) as folder:
        folder.check_free(names)
        for name, raw in zip(names, raws, strict=True):
            folder.write(name, raw)
    return len(rows)


def save_attachments(store: Store, number: str, target: Path, force: bool = False
                     ) -> list[str]:
    """Save every attachment into `target`: names made safe, cut to 255 bytes with their
    extension kept, unique within the ticket; an existing file is replaced only with force."""
    from mailtix.mail.parse import parse, safe_filename

    ticket_id = find(store, number)
    found: list[tuple[str, bytes]] = []
    for r in store.conn.execute("SELECT id, raw_sha256 FROM messages WHERE ticket_id = ? AND "
                                "raw_sha256 IS NOT NULL ORDER BY id", (ticket_id,)):
        raw = messages.get_raw(store.conn, r["raw_sha256"])
        if raw is None:
            continue
        for a in parse(raw, payloads=True).attachments:
            found.append((safe_filename(a.filename) or f"part-{a.index}", a.data or b""))
    names = unique_names([name for name, _ in found])
    with SafeDir(target, force=force) as folder:
        folder.check_free(names)
        for name, (_, data) in zip(names, found, strict=True):
            folder.write(name, data)
    return names
