"""`mailtix explain`: the ingest decisions for one mail, read-only."""

from __future__ import annotations

from typing import Any

from mailtix.config.model import Config
from mailtix.errors import UsageError
from mailtix.ingest import returned_mail, thread
from mailtix.mail.autoreply import refusal
from mailtix.mail.detect import detect
from mailtix.mail.parse import parse
from mailtix.mail.rules import route
from mailtix.store import Store, tickets


def explain(config: Config, store: Store, raw: bytes, account_name: str | None) -> dict[str, Any]:
    if account_name:
        account = config.account(account_name)
    else:
        fetching = [a for a in config.accounts.values() if a.fetch is not None]
        if not fetching:
            raise UsageError("no account fetches mail", hint="use --account NAME")
        account = fetching[0]
    p = parse(raw)
    flags = detect(p, account.spam_header)
    returned, report = returned_mail(store.conn, raw, p, flags)
    ticket_id, how = thread(store.conn, config, p, flags.bounce, returned)
    out: dict[str, Any] = {"account": account.name, "from": p.from_addr, "subject": p.subject,
                           "message_id": p.message_id or "-",
                           "flags": [k for k, v in vars(flags).items() if v] or ["none"]}
    if p.malformed:
        out["malformed"] = p.parse_error
    if returned is not None:
        what = ("bounce" if report.failed or not report.recipients else "delay report"
                ) if report is not None else "reply"
        out["returns"] = (f"{what} of outbox {returned['id']}"
                          + (f" (document {returned['doc_ref']})" if returned["doc_ref"] else ""))
    if not account.tickets.enabled:
        out["ticket"] = "none: tickets are off for this account"
    elif ticket_id is not None:
        out["ticket"] = f"{tickets.get(store.conn, ticket_id)['number']} (by {how})"
    else:
        routing = route(account.rules, p)
        out["ticket"] = "a new ticket"
        out["queue"] = routing.queue or account.tickets.queue or "-"
        if routing.matched:
            out["rules"] = ", ".join(f"rules[{i}]" for i in routing.matched)
    state = store.conn.execute("SELECT first_run_at FROM account_state WHERE account = ?",
                               (account.name,)).fetchone()
    first_run = state[0] if state else None
    why = refusal(config, account, p, flags, new_ticket=ticket_id is None,
                  first_run_at=first_run, conn=store.conn)
    out["autoresponse"] = f"no: {why}" if why else "yes"
    return out
