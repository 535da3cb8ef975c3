"""Fetch new mail of one POP3 account, remembering UIDLs; DELE only after the commit."""

from __future__ import annotations

import poplib
from collections.abc import Callable
from datetime import datetime

from mailtix.config.model import Account, Config
from mailtix.ingest import Outcome, store_message
from mailtix.mail.parse import parse
from mailtix.store import Store, fetchstate
from mailtix.store.messages import Source, source_known

CHUNK = 50


def retr(client: poplib.POP3, number: int) -> bytes:
    _resp, lines, _octets = client.retr(number)
    return b"\r\n".join(lines) + b"\r\n"


def fetch_account(config: Config, account: Account, store: Store, client: poplib.POP3,
                  on_chunk: Callable[[str, list[Outcome]], None] | None = None,
                  progress: Callable[[int], None] | None = None) -> list[Outcome]:
    listing = []
    for line in client.uidl()[1]:
        number, _, uidl = line.decode(errors="replace").partition(" ")
        listing.append((int(number), uidl.strip()))
    seen = fetchstate.pop3_seen(store.conn, account.name)
    new = [(n, u) for n, u in listing if u not in seen]
    outcomes: list[Outcome] = []
    for i in range(0, len(new), CHUNK):
        chunk = new[i:i + CHUNK]
        items = [(n, u, raw, parse(raw)) for n, u in chunk for raw in (retr(client, n),)]
        done: list[Outcome] = []
        with store.tx() as conn:
            for _number, uidl, raw, p in items:
                src = Source(account.name, "INBOX", uidl=uidl)
                if _before_since(account, p.date) or source_known(conn, src):
                    continue
                done.append(store_message(conn, config, account, src, raw, p))
            fetchstate.mark_pop3_seen(conn, account.name, [u for _n, u, _r, _p in items])
        if on_chunk is not None:
            on_chunk("committed", done)
        outcomes += done
        if progress is not None:
            progress(len(chunk))
    if account.post_fetch == "delete":
        # Everything stored, this run or an earlier one that crashed before its DELE.
        for number, uidl in listing:
            if source_known(store.conn, Source(account.name, "INBOX", uidl=uidl)):
                client.dele(number)
    return outcomes


def _before_since(account: Account, iso: str | None) -> bool:
    if account.since is None or iso is None:
        return False
    return datetime.fromisoformat(iso).date() < account.since
