"""The autoresponder's one decision (RFC 3834 and what the peers learned): never answer
machines, lists, spam, ourselves or old mail, and at most once per sender and interval.

`decide` is the only place that says yes or no: `mailtix run` (ingest.autorespond) and
`mailtix explain` both call it with the same facts, so they cannot tell different stories.
It reads no store itself; what the store knows comes in through a `History`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from mailtix.config.model import Account, Config
from mailtix.mail.detect import Flags, is_noreply, is_read_receipt, precedence, report_type
from mailtix.mail.parse import Parsed

SUPPRESS = {"all", "autoreply", "oof"}
LIST_HEADERS = ("list-id", "list-unsubscribe", "list-post", "mailing-list", "x-mailing-list",
                "x-autoreply", "x-autorespond", "x-autoresponse")


class History(Protocol):
    """What the store remembers (store.autoresponses.History implements it)."""

    def sender_blocked(self, address: str) -> bool: ...

    def answered_since(self, account: str, address: str, since: str) -> bool: ...

    def answers_since(self, address: str, since: str) -> int: ...


@dataclass(frozen=True)
class Decision:
    answer: bool
    reason: str = ""  # why not; '' when the answer goes out
    target: str = ""  # where it would go

    def __str__(self) -> str:
        return "yes" if self.answer else f"no: {self.reason}"


def decide(config: Config, account: Account, p: Parsed, flags: Flags, *,
           ticket_status: str | None, new_ticket: bool, first_run_at: str | None,
           history: History | None, now: datetime | None = None) -> Decision:
    """Whether to answer one incoming mail. `ticket_status` is the status of the ticket the
    mail lands on (None: no ticket); `first_run_at` None means the account has not run yet,
    so its first run starts now."""
    target = reply_address(p)
    why = _refusal(config, account, p, flags, target, ticket_status, new_ticket)
    if not why:
        why = _age_and_history(config, account, p, target, first_run_at, history,
                               now or datetime.now(UTC))
    return Decision(not why, why, target)


def _refusal(config: Config, account: Account, p: Parsed, flags: Flags, target: str,
             ticket_status: str | None, new_ticket: bool) -> str:
    h = p.header
    ar = account.autoresponder
    if not ar.enabled:
        return "the autoresponder is off for this account"
    if ticket_status is None:
        return ("tickets are off for this account" if not account.tickets.enabled
                else "the mail is on no ticket")
    if account.smtp is None:
        return "the account has no SMTP settings"
    auto = h("auto-submitted").strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto}"
    prec = precedence(p)
    if prec in ("bulk", "junk", "list", "auto_reply"):
        name = "Precedence" if h("precedence") else "X-Precedence"
        return f"{name}: {prec}"
    for name in LIST_HEADERS:
        if name in p.headers:
            return f"{name} header"
    suppress = {v.strip().lower() for v in h("x-auto-response-suppress").split(",")}
    if suppress & SUPPRESS:
        return f"X-Auto-Response-Suppress: {h('x-auto-response-suppress')}"
    if p.headers_incomplete:
        # The fields past the cap are unread: Auto-Submitted or List-Id may be among them.
        return "the header block was too long to read whole (a loop guard may be unread)"
    if "return-path" in p.headers and h("return-path").strip() in ("", "<>"):
        return "empty Return-Path (a bounce or system mail)"
    own = config.own_addresses()
    looped = _loop(p, own)
    if looped:
        return f"X-Loop: {looped} (our own mail came back)"
    if flags.bounce:
        return "a bounce"
    if is_read_receipt(p):
        return "a read receipt (disposition notification)"
    if report_type(p):
        return f"a {report_type(p)} report"
    if flags.spam:
        return "flagged as spam"
    if ticket_status == "spam":
        return "the ticket's status is spam (routing rule)"
    if flags.auto_submitted:
        return "flagged as an automatic reply"
    if flags.list:
        return "flagged as mailing-list mail"
    if not target:
        return "no sender address"
    for address in dict.fromkeys((p.from_addr, target)):
        if address and is_noreply(address):
            return f"{address} is a no-reply or system address"
        if config.address_key(address) in own:
            return f"{address} is one of our own addresses"
    if not new_ticket and not ar.on_followups:
        return "a follow-up on an existing ticket (on_followups = false)"
    return ""


def _age_and_history(config: Config, account: Account, p: Parsed, target: str,
                     first_run_at: str | None, history: History | None, now: datetime) -> str:
    ar = account.autoresponder
    horizon = first_run_at or now.isoformat(timespec="seconds")
    if p.date and p.date < horizon:
        return "older than the account's first run"
    if history is None:
        return ""
    for address in dict.fromkeys(a.lower() for a in (p.from_addr, target) if a):
        if history.sender_blocked(address):
            return f"{address} is blocked as a spam sender"
    since = (now - timedelta(seconds=ar.interval)).isoformat(timespec="seconds")
    if history.answered_since(account.name, target, since):
        return f"{target} was answered within the interval ({ar.interval} s)"
    hour = (now - timedelta(hours=1)).isoformat(timespec="seconds")
    sent = history.answers_since(target, hour)
    if sent >= config.general.autoresponder_hourly_cap:
        return f"{target} had {sent} autoresponses in the last hour (the cap)"
    return ""


def _loop(p: Parsed, own: set[str]) -> str:
    """One of our addresses in an X-Loop header: mail we sent, returned by some robot."""
    for value in p.headers.get("x-loop", []):
        text = value.lower()
        for address in own:
            if address and address.lower() in text:
                return address
    return ""


def reply_address(p: Parsed) -> str:
    if p.reply_to:
        return p.reply_to[0][1]
    return p.from_addr
