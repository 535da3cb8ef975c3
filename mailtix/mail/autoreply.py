"""Autoresponder decisions (RFC 3834 and what the peers learned): never answer machines,
lists, ourselves or old mail, and at most once per sender and interval."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from mailtix.config.model import Account, Config
from mailtix.mail.detect import Flags, is_noreply
from mailtix.mail.parse import Parsed

SUPPRESS = {"all", "autoreply", "oof"}


def refusal(config: Config, account: Account, p: Parsed, flags: Flags, *, new_ticket: bool,
            first_run_at: str | None, conn: sqlite3.Connection | None = None) -> str:
    """Why not to answer, or '' when an autoresponse may go out."""
    h = p.header
    ar = account.autoresponder
    if not ar.enabled:
        return "the autoresponder is off for this account"
    auto = h("auto-submitted").strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto}"
    precedence = h("precedence").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    for name in ("list-id", "list-unsubscribe", "list-post", "x-autoreply", "x-autorespond",
                 "x-autoresponse"):
        if name in p.headers:
            return f"{name} header"
    suppress = {v.strip().lower() for v in h("x-auto-response-suppress").split(",")}
    if suppress & SUPPRESS:
        return f"X-Auto-Response-Suppress: {h('x-auto-response-suppress')}"
    if "return-path" in p.headers and h("return-path").strip() in ("", "<>"):
        return "empty Return-Path (a bounce or system mail)"
    if flags.bounce:
        return "a bounce"
    if flags.spam:
        return "flagged as spam"
    target = reply_address(p)
    if not target:
        return "no sender address"
    if is_noreply(target):
        return f"{target} is a no-reply or system address"
    if target in config.own_addresses():
        return f"{target} is one of our own addresses"
    if not new_ticket and not ar.on_followups:
        return "a follow-up on an existing ticket (on_followups = false)"
    if first_run_at and p.date and p.date < first_run_at:
        return "older than the account's first run"
    if conn is not None:
        now = datetime.now(UTC)
        since = (now - timedelta(seconds=ar.interval)).isoformat(timespec="seconds")
        if conn.execute("SELECT 1 FROM autoresponses WHERE account = ? AND sender = ? AND at > ?",
                        (account.name, target, since)).fetchone():
            return f"{target} was answered within the interval ({ar.interval} s)"
        hour = (now - timedelta(hours=1)).isoformat(timespec="seconds")
        sent = conn.execute("SELECT COUNT(*) FROM autoresponses WHERE sender = ? AND at > ?",
                            (target, hour)).fetchone()[0]
        if sent >= config.general.autoresponder_hourly_cap:
            return f"{target} had {sent} autoresponses in the last hour (the cap)"
    return ""


def reply_address(p: Parsed) -> str:
    if p.reply_to:
        return p.reply_to[0][1]
    return p.from_addr
