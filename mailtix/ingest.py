"""One fetched message into the store: dedupe, parse, thread, route. Called inside the
transaction that also advances the folder state, so a message is stored exactly once."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailtix.config.model import Account, Config
from mailtix.errors import MailtixError
from mailtix.mail.detect import Flags, detect
from mailtix.mail.parse import Parsed, parse
from mailtix.mail.rules import route
from mailtix.store import messages, outbox, tickets
from mailtix.store.messages import Source

log = logging.getLogger("mailtix.ingest")

if TYPE_CHECKING:
    from mailtix.mail.dsn import Report


@dataclass
class Outcome:
    message_row: int
    ticket_id: int | None
    ticket_number: str = ""
    new_ticket: bool = False
    duplicate: bool = False
    threaded_by: str = ""
    flags: Flags | None = None
    malformed: bool = False  # counts only: keeping the parse would grow memory with the run


def classify(conn: sqlite3.Connection, account: Account, p: Parsed) -> Flags:
    """detect()'s flags, plus spam for a sender an agent blocked: the one classification
    that run and explain both use."""
    from mailtix.store.autoresponses import History

    flags = detect(p, account.spam_header)
    if p.from_addr and History(conn).sender_blocked(p.from_addr):
        flags = Flags(flags.bounce, flags.auto_submitted, flags.list, spam=True)
    return flags


def thread(conn: sqlite3.Connection, config: Config, p: Parsed, bounce: bool = False,
           returned: sqlite3.Row | None = None) -> tuple[int | None, str]:
    """In-Reply-To/References against every stored Message-ID, then an existing subject tag;
    a bounce also by the Message-ID of the mail it returns. `returned`: the outbox row this
    mail answers or returns (a document mail has no ticket message of its own)."""
    ids = [i for i in (*p.references, p.in_reply_to) if i]
    if ids:
        found = messages.tickets_for_ids(conn, ids)
        if found:
            return tickets.resolve(conn, found[0]), "headers"
    for mid in reversed(ids if returned is None else []):
        row = outbox.by_message_id(conn, mid)
        if row is not None and row["doc_ref"]:
            returned = row
            break
    if returned is not None:
        from mailtix.returned import document_ticket

        # A reply to (or bounce of) a document mail lands on that document's ticket.
        ticket_id = document_ticket(conn, returned)
        if ticket_id is not None:
            doc = returned["doc_ref"]
            return ticket_id, f"document {doc}" if doc else "returned message"
    if bounce and p.enclosed_ids:
        found = messages.tickets_for_ids(conn, p.enclosed_ids)
        if found:
            return tickets.resolve(conn, found[0]), "returned message"
    m = tickets.tag_pattern(config.general.subject_tag).search(p.subject)
    if m:
        row = tickets.by_number(conn, m.group(1))
        if row is not None:
            return int(row["id"]), "subject tag"
    return None, ""


def returned_mail(conn: sqlite3.Connection, raw: bytes, p: Parsed, flags: Flags
                  ) -> tuple[sqlite3.Row | None, Report | None]:
    """The outbox row a bounce, delay report or reply is about, and the bounce's report."""
    report = None
    if flags.bounce:
        from mailtix.mail.dsn import parse_report

        report = parse_report(raw)
    elif not (p.in_reply_to or p.references):
        return None, None
    from mailtix.returned import returned_row

    return returned_row(conn, p, report), report


def store_message(conn: sqlite3.Connection, config: Config, account: Account, src: Source,
                  raw: bytes, parsed: Parsed | None = None) -> Outcome:
    p = parsed if parsed is not None else parse(raw)
    raw_sha = messages.put_raw(conn, raw)
    dup = messages.find_duplicate(conn, p.message_id, p.content_sha256, raw_sha)
    if dup is not None:
        messages.add_source(conn, int(dup["id"]), src)
        tickets.event(conn, "duplicate", account=account.name, ticket_id=dup["ticket_id"],
                      detail=f"{src.folder} uid {src.uid}{src.uidl} is message {dup['id']} again")
        number = ""
        if dup["ticket_id"] is not None:
            row = tickets.get(conn, int(dup["ticket_id"]))
            number = row["number"] if row else ""
        return Outcome(int(dup["id"]), dup["ticket_id"], number, duplicate=True)
    flags = classify(conn, account, p)
    ticket_id, how = (None, "")
    new_ticket = False
    returned, report = returned_mail(conn, raw, p, flags)
    if account.tickets.enabled and not (p.malformed and not p.from_addr and not p.subject):
        ticket_id, how = thread(conn, config, p, flags.bounce, returned)
        if ticket_id is None:
            doc = returned["doc_ref"] if returned is not None else ""
            ticket_id = _new_ticket(conn, config, account, p, flags, doc)
            new_ticket, how = True, f"new (document {doc})" if doc else "new"
            if doc:
                from mailtix.returned import link_ticket

                link_ticket(conn, doc, ticket_id)
        else:
            tickets.activity(conn, ticket_id, reopen=not (flags.auto_submitted or flags.bounce))
            if flags.bounce:
                tickets.add_tags(conn, ticket_id, ["bounce"])
    row = messages.insert(
        conn, ticket_id=ticket_id, account=account.name, direction="in",
        message_id=p.message_id, in_reply_to=p.in_reply_to, refs=" ".join(p.references),
        from_addr=p.from_addr, from_name=p.from_name,
        to_addrs=", ".join(a for _, a in p.to), cc_addrs=", ".join(a for _, a in p.cc),
        date=p.date, subject=p.subject, body_text=p.body_text, body_html=p.body_html,
        raw_sha256=raw_sha, content_sha256=p.content_sha256, size=len(raw),
        auto_submitted=int(flags.auto_submitted), bounce=int(flags.bounce), list=int(flags.list),
        spam=int(flags.spam), malformed=int(p.malformed), parse_error=p.parse_error)
    messages.add_source(conn, row, src)
    if returned is not None:
        from mailtix.returned import record_returned

        record_returned(conn, returned, p, report, flags.auto_submitted, row)
    if p.attachments:
        messages.add_attachments(conn, row, p.attachments)
    number = ""
    if ticket_id is not None:
        _link_contacts(conn, ticket_id, p)
        number = tickets.get(conn, ticket_id)["number"]
        if account.autoresponder.enabled:
            autorespond(conn, config, account, p, flags, ticket_id, new_ticket)
        if new_ticket and account.notify_group:
            from mailtix.notify import notify_group

            notify_group(conn, config, account, ticket_id, p, flags)
    elif p.malformed:
        tickets.event(conn, "quarantined", account=account.name,
                      detail=f"message {row}: {p.parse_error[:200]}")
    return Outcome(row, ticket_id, number, new_ticket, False, how, flags, p.malformed)


def _new_ticket(conn: sqlite3.Connection, config: Config, account: Account, p: Parsed,
                flags: Flags, doc_ref: str = "") -> int:
    routing = route(account.rules, p)
    queue = routing.queue or account.tickets.queue
    assignee = routing.assignee or account.tickets.assignee
    if not assignee and queue in config.queues:
        assignee = config.queues[queue].assignee
    assignee = assignee or account.owner
    status = routing.status or ("spam" if flags.spam else account.new_ticket_status)
    if doc_ref and flags.bounce and not routing.status and status == "new":
        # A bounced document opens its own ticket for someone to act on; it is not a new
        # customer request and does not belong among the agents' new tickets.
        status = "open"
    contact_id = tickets.contact(conn, p.from_addr, p.from_name) if p.from_addr else None
    ticket_id, _number = tickets.create(
        conn, subject=p.subject or "(no subject)", account=account.name, contact_id=contact_id,
        queue=queue, project=account.tickets.project, assignee=assignee, status=status,
        priority=routing.priority or "normal", doc_ref=doc_ref, type=account.new_ticket_type)
    tags = list(routing.tags)
    tags += [name for name, on in (("bounce", flags.bounce), ("auto-reply", flags.auto_submitted),
                                   ("list", flags.list)) if on]
    if tags:
        tickets.add_tags(conn, ticket_id, tags)
    if account.group:
        tickets.add_watchers(conn, ticket_id, account.group)
    return ticket_id


def _link_contacts(conn: sqlite3.Connection, ticket_id: int, p: Parsed) -> None:
    if p.from_addr:
        tickets.link_contact(conn, ticket_id, tickets.contact(conn, p.from_addr, p.from_name),
                             "from")
    for role, pairs in (("to", p.to), ("cc", p.cc)):
        for name, addr in pairs[:50]:
            tickets.link_contact(conn, ticket_id, tickets.contact(conn, addr, name), role)


def autorespond(conn: sqlite3.Connection, config: Config, account: Account, p: Parsed,
                flags: Flags, ticket_id: int, new_ticket: bool) -> int | None:
    """Queue an autoresponse in the ingest's own transaction, so a crash cannot answer twice.
    Whatever goes wrong while deciding or making it (a template that raises, an address SMTP
    would not take) is rolled back to a savepoint and recorded on the ticket: the mail stays
    stored and the run goes on."""
    conn.execute("SAVEPOINT autoresponse")
    try:
        outbox_id = _autorespond(conn, config, account, p, flags, ticket_id, new_ticket)
    except Exception as exc:  # whatever it is, it must not cost the mail or the run
        conn.execute("ROLLBACK TO autoresponse")
        conn.execute("RELEASE autoresponse")
        detail = str(exc) if isinstance(exc, MailtixError) else f"{type(exc).__name__}: {exc}"
        number = tickets.get(conn, ticket_id)["number"]
        log.warning("autoresponse for ticket %s failed: %s", number, detail)
        tickets.event(conn, "autoresponse failed", ticket_id=ticket_id, account=account.name,
                      detail=detail[:500])
        return None
    conn.execute("RELEASE autoresponse")
    return outbox_id


def _autorespond(conn: sqlite3.Connection, config: Config, account: Account, p: Parsed,
                 flags: Flags, ticket_id: int, new_ticket: bool) -> int | None:
    from mailtix.mail import autoreply
    from mailtix.store import fetchstate
    from mailtix.store.autoresponses import History

    ticket = tickets.get(conn, ticket_id)
    decision = autoreply.decide(
        config, account, p, flags, ticket_status=ticket["status"], new_ticket=new_ticket,
        first_run_at=fetchstate.account_row(conn, account.name)["first_run_at"],
        history=History(conn))
    if not decision.answer:
        tickets.event(conn, "autoresponse skipped", ticket_id=ticket_id, account=account.name,
                      detail=decision.reason)
        return None
    return _queue_autoresponse(conn, config, account, p, ticket, decision.target)


def _queue_autoresponse(conn: sqlite3.Connection, config: Config, account: Account, p: Parsed,
                        ticket: sqlite3.Row, target: str) -> int:
    from mailtix import templates
    from mailtix.mail.compose import Draft, signature
    from mailtix.outgoing import queue, variables
    from mailtix.store.autoresponses import record

    rendered = templates.render(
        templates.load(config.path, account.autoresponder.template,
                       config.language_of(account)),
        variables(ticket, config, account,
                  message={"subject": p.subject, "from": p.from_addr,
                           "from_name": p.from_name, "date": p.date or ""},
                  contact={"email": target, "name": p.from_name}))
    draft = Draft(account=account, to=[target], subject=rendered.subject, text=rendered.text,
                  html=rendered.html, in_reply_to=p.message_id,
                  references=[*p.references, p.message_id] if p.message_id else p.references,
                  headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
                  signature=signature(config, account))
    queued = queue(conn, draft, kind="autoresponse", ticket_id=int(ticket["id"]),
                   author="autoresponder")
    record(conn, account.name, target, queued.outbox_id)
    return queued.outbox_id
