"""Fetch new mail of one IMAP account: UIDs only, BODY.PEEK, commit before any server action.

A no-op run costs one STATUS per folder. New mail is fetched as `UID n+1:*` in chunks bounded
by count and bytes; every chunk is stored in one transaction with the folder's new last UID,
and only then flagged, moved or deleted on the server (invariants 1–3 of DESIGN.md).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from datetime import date
from typing import TYPE_CHECKING, Any

from mailtix import secrets
from mailtix.config.model import Account, Config
from mailtix.mail.fetch_actions import ServerActions
from mailtix.mail.imap_ops import check, expunge, refresh_capabilities, uid_set
from mailtix.store import Store, fetchstate
from mailtix.store.messages import Source, source_known

if TYPE_CHECKING:
    from mailtix.mail.parse import Parsed

# What the commit callback returns (ingest's Outcome): fetch only collects and hands it back,
# so mail/ needs neither the type nor the module above it.
Outcome = Any

CHUNK_COUNT = 200
PARALLEL_MIN = 400  # below this a worker pool's start-up costs more than it saves
PARSE_WORKERS = 2
CHUNK_BYTES = 16 * 1024 * 1024
_UID = re.compile(rb"UID (\d+)")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

Hook = Callable[[str, list[Outcome]], None]
# ingest.store_message(conn, config, account, source, raw, parsed) -> Outcome
Commit = Callable[..., Outcome]
log = logging.getLogger("mailtix.fetch")
__all__ = ["check", "expunge", "fetch_account", "imap_date", "uid_set"]


def imap_date(d: date) -> str:
    return f"{d.day}-{_MONTHS[d.month - 1]}-{d.year}"


def fetch_account(config: Config, account: Account, store: Store, mailbox,
                  on_chunk: Hook | None = None, progress: Callable[[int], None] | None = None,
                  *, commit: Commit) -> list[Outcome]:
    """`commit` is ingest.store_message, handed down by the runner: mail/ stores nothing
    itself and never imports ingest (DESIGN.md's house table)."""
    assert account.fetch is not None
    refresh_capabilities(mailbox.client)
    actions = ServerActions(store, account, mailbox)
    outcomes: list[Outcome] = []
    for folder in account.fetch.folders:
        outcomes += _folder(config, account, store, mailbox, folder, actions, on_chunk,
                            progress, commit)
    return outcomes


def _folder(config: Config, account: Account, store: Store, mailbox, folder: str,
            actions: ServerActions, on_chunk: Hook | None,
            progress: Callable[[int], None] | None, commit: Commit) -> list[Outcome]:
    host = account.fetch.host if account.fetch else ""
    status = mailbox.folder.status(folder, ["UIDVALIDITY", "UIDNEXT"])
    uidvalidity, uidnext = int(status["UIDVALIDITY"]), int(status["UIDNEXT"])
    known = fetchstate.folder(store.conn, account.name, folder)
    pending = fetchstate.actions(store.conn, account.name, folder)
    last_uid = known[1] if known and known[0] == uidvalidity else 0
    if known and known[0] == uidvalidity and uidnext - 1 <= last_uid and not pending:
        return []
    mailbox.folder.set(folder)
    client = mailbox.client
    actions.apply(folder, uidvalidity)
    criteria = [f"UID {last_uid + 1}:*"]
    if account.since:
        criteria.append(f"SINCE {imap_date(account.since)}")
    if account.select == "unseen":
        criteria.append("UNSEEN")
    data = check(client.uid("SEARCH", *criteria), "UID SEARCH", host)
    uids = sorted(u for u in (int(x) for x in b" ".join(data).split()) if u > last_uid)
    outcomes: list[Outcome] = []
    pool = _pool(len(uids))
    try:
        _store_chunks(config, account, store, mailbox, folder, uidvalidity, uids, pool,
                      actions, outcomes, on_chunk, progress, commit)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    # Mail skipped by `since` or `unseen` below UIDNEXT is settled; do not search it again.
    with store.tx() as conn:
        current = fetchstate.folder(conn, account.name, folder)
        top = max(uidnext - 1, current[1] if current and current[0] == uidvalidity else 0)
        fetchstate.set_folder(conn, account.name, folder, uidvalidity, top)
    return outcomes


def _pool(backlog: int):
    """Worker processes for a large backlog: parsing is most of an ingest's CPU time, and
    the main process meanwhile fetches the next chunk and writes the store."""
    workers = min(PARSE_WORKERS, os.cpu_count() or 1)
    if backlog < PARALLEL_MIN or workers < 2:
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the caller may have threads (fork would copy their held locks).
    # The resource tracker starts here, the workers at the first map: neither gets the
    # passwords from the environment (see secrets.withheld).
    with secrets.withheld():
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_start, initargs=(os.getpid(),))


def _worker_start(parent: int) -> None:
    """In each parse worker: exit when the run exits, however it ends (a SIGKILLed run would
    otherwise leave its workers and their resource tracker behind, and cron piles them up)."""
    import threading

    try:
        import ctypes
        import signal

        pr_set_pdeathsig = 1  # linux/prctl.h
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the watch below does it, a little later
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="mailtix-parent-watch").start()


def _watch_parent(parent: int) -> None:
    import time

    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _parsed_chunks(client, chunks: Iterator[list[int]], host: str, pool
                   ) -> Iterator[tuple[list[int], list[tuple[int, bytes, Parsed]]]]:
    """(chunk, [(uid, raw, parsed)]) in order; with a pool, chunk N+1 is fetched while the
    workers parse chunk N. A dead worker breaks the pool: the rest is parsed here."""
    from mailtix.mail.parse import parse

    ahead = None
    for chunk in chunks:
        items = list(_fetch(client, chunk, host))
        jobs = None
        if pool is not None:
            try:
                with secrets.withheld():
                    jobs = pool.map(parse, [raw for _uid, raw in items], chunksize=8)
            except Exception as exc:  # BrokenProcessPool, or no process can be started
                log.warning("parse workers unusable (%s); parsing in the main process",
                            type(exc).__name__)
                pool = None
        if ahead is not None:
            yield _collect(*ahead)
            ahead = None
        if jobs is None:  # parsed here: nothing to overlap with
            yield _collect(chunk, items, None)
        else:
            ahead = (chunk, items, jobs)
    if ahead is not None:
        yield _collect(*ahead)


def _collect(chunk: list[int], items: list[tuple[int, bytes]], jobs
             ) -> tuple[list[int], list[tuple[int, bytes, Parsed]]]:
    from mailtix.mail.parse import parse

    results = None
    if jobs is not None:
        try:
            results = list(jobs)
        except Exception as exc:  # a dead worker: parse here; the mail must not wait for it
            log.warning("a parse worker died (%s); parsing in the main process",
                        type(exc).__name__)
    if results is None:
        results = [parse(raw) for _uid, raw in items]
    return chunk, [(uid, raw, p) for (uid, raw), p in zip(items, results, strict=True)]


def _store_chunks(config: Config, account: Account, store: Store, mailbox, folder: str,
                  uidvalidity: int, uids: list[int], pool, actions: ServerActions,
                  outcomes: list[Outcome], on_chunk: Hook | None,
                  progress: Callable[[int], None] | None, commit: Commit) -> None:
    client = mailbox.client
    host = account.fetch.host if account.fetch else ""
    for chunk, parsed in _parsed_chunks(client, _chunks(client, uids, host), host, pool):
        done: list[Outcome] = []
        with store.tx() as conn:
            for uid, raw, p in parsed:
                src = Source(account.name, folder, uidvalidity, uid)
                if source_known(conn, src):
                    continue
                done.append(commit(conn, config, account, src, raw, p))
                if account.post_fetch != "none":
                    fetchstate.add_action(conn, account.name, folder, account.post_fetch,
                                          uidvalidity=uidvalidity, uid=uid, target=account.move_to)
            fetchstate.set_folder(conn, account.name, folder, uidvalidity, max(chunk))
        if on_chunk is not None:
            on_chunk("committed", done)
        outcomes += done
        if progress is not None:
            progress(len(chunk))
        actions.apply(folder, uidvalidity)


def _chunks(client, uids: list[int], host: str) -> Iterator[list[int]]:
    """Chunks of UIDs bounded by count and by the sizes the server reports."""
    if not uids:
        return
    sizes: dict[int, int] = {}
    for i in range(0, len(uids), 1000):
        part = uids[i:i + 1000]
        data = check(client.uid("FETCH", uid_set(part), "(UID RFC822.SIZE)"), "UID FETCH", host)
        for line in data:
            text = line[0] if isinstance(line, tuple) else line
            if isinstance(text, bytes):
                u, s = _UID.search(text), _SIZE.search(text)
                if u and s:
                    sizes[int(u.group(1))] = int(s.group(1))
    chunk: list[int] = []
    total = 0
    for uid in uids:
        if uid not in sizes:
            continue  # expunged by another client meanwhile
        if chunk and (len(chunk) >= CHUNK_COUNT or total + sizes[uid] > CHUNK_BYTES):
            yield chunk
            chunk, total = [], 0
        chunk.append(uid)
        total += sizes[uid]
    if chunk:
        yield chunk


def _fetch(client, chunk: list[int], host: str) -> Iterator[tuple[int, bytes]]:
    data = check(client.uid("FETCH", uid_set(chunk), "(UID BODY.PEEK[])"), "UID FETCH", host)
    wanted = set(chunk)
    pending: bytes | None = None
    for item in data:
        if isinstance(item, tuple):
            head, body = item[0], item[1]
            m = _UID.search(head)
            if m:
                uid = int(m.group(1))
                if uid in wanted:
                    yield uid, body
            else:
                pending = body  # the server put UID after the literal
        elif isinstance(item, bytes) and pending is not None:
            m = _UID.search(item)
            if m and int(m.group(1)) in wanted:
                yield int(m.group(1)), pending
            pending = None
