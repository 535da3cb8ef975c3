"""`mailtix explain`: the ingest decisions for one mail, read-only. It classifies, threads,
routes and decides on the autoresponse with the same functions `mailtix run` uses."""

from __future__ import annotations

from typing import Any

from mailtix.config.model import Config
from mailtix.errors import UsageError
from mailtix.ingest import classify, returned_mail, thread
from mailtix.mail import autoreply
from mailtix.mail.parse import parse
from mailtix.mail.rules import route
from mailtix.store import Store, tickets
from mailtix.store.autoresponses import History


def explain(config: Config, store: Store, raw: bytes, account_name: str | None) -> dict[str, Any]:
    if account_name:
        account = config.account(account_name)
    else:
        fetching = [a for a in config.accounts.values() if a.fetch is not None]
        if not fetching:
            raise UsageError("no account fetches mail", hint="use --account NAME")
        account = fetching[0]
    p = parse(raw)
    conn = store.conn
    flags = classify(conn, account, p)
    returned, report = returned_mail(conn, raw, p, flags)
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
    status: str | None = None
    ticket_id: int | None = None
    if not account.tickets.enabled:
        out["ticket"] = "none: tickets are off for this account"
    elif p.malformed and not p.from_addr and not p.subject:
        out["ticket"] = "none: quarantined as malformed"
    else:
        ticket_id, how = thread(conn, config, p, flags.bounce, returned)
        if ticket_id is not None:
            row = tickets.get(conn, ticket_id)
            out["ticket"] = f"{row['number']} (by {how})"
            status = row["status"]
            if status in ("closed", "waiting-customer") and not (flags.auto_submitted
                                                                 or flags.bounce):
                status = "open"  # ingest reopens it before deciding
        else:
            routing = route(account.rules, p)
            out["ticket"] = "a new ticket"
            out["queue"] = routing.queue or account.tickets.queue or "-"
            if routing.matched:
                out["rules"] = ", ".join(f"rules[{i}]" for i in routing.matched)
            status = routing.status or ("spam" if flags.spam else "new")
    state = conn.execute("SELECT first_run_at FROM account_state WHERE account = ?",
                         (account.name,)).fetchone()
    decision = autoreply.decide(
        config, account, p, flags, ticket_status=status, new_ticket=ticket_id is None,
        first_run_at=state[0] if state else None, history=History(conn))
    out["autoresponse"] = str(decision)
    return out
