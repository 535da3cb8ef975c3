"""Fetch new mail of one IMAP account: UIDs only, BODY.PEEK, commit before any server action.

A no-op run costs one STATUS per folder. New mail is fetched as `UID n+1:*` in chunks bounded
by count and bytes; every chunk is stored in one transaction with the folder's new last UID,
and only then flagged, moved or deleted on the server (invariants 1–3 of DESIGN.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import date
from typing import TYPE_CHECKING

from mailtix.config.model import Account, Config
from mailtix.errors import NetworkError
from mailtix.store import Store, fetchstate
from mailtix.store.messages import Source, source_known

if TYPE_CHECKING:  # parsing and ingest load only when a folder has news (no-op runs stay fast)
    from mailtix.ingest import Outcome
    from mailtix.mail.parse import Parsed

CHUNK_COUNT = 200
PARALLEL_MIN = 400  # below this a worker pool's start-up costs more than it saves
PARSE_WORKERS = 2
CHUNK_BYTES = 16 * 1024 * 1024
_UID = re.compile(rb"UID (\d+)")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

Hook = Callable[[str, "list[Outcome]"], None]


def imap_date(d: date) -> str:
    return f"{d.day}-{_MONTHS[d.month - 1]}-{d.year}"


def check(result: tuple, command: str, host: str) -> list:
    typ, data = result
    if typ != "OK":
        reply = b" ".join(x for x in data if isinstance(x, bytes)).decode(errors="replace")
        raise NetworkError(f"{host}: {command} failed: {reply}", host, command, reply)
    return data


def fetch_account(config: Config, account: Account, store: Store, mailbox,
                  on_chunk: Hook | None = None, progress: Callable[[int], None] | None = None
                  ) -> list[Outcome]:
    assert account.fetch is not None
    outcomes: list[Outcome] = []
    for folder in account.fetch.folders:
        outcomes += _folder(config, account, store, mailbox, folder, on_chunk, progress)
    return outcomes


def _folder(config: Config, account: Account, store: Store, mailbox, folder: str,
            on_chunk: Hook | None, progress: Callable[[int], None] | None) -> list[Outcome]:
    host = account.fetch.host if account.fetch else ""
    status = mailbox.folder.status(folder, ["UIDVALIDITY", "UIDNEXT"])
    uidvalidity, uidnext = int(status["UIDVALIDITY"]), int(status["UIDNEXT"])
    known = fetchstate.folder(store.conn, account.name, folder)
    pending = [a for a in fetchstate.actions(store.conn, account.name) if a["folder"] == folder]
    last_uid = known[1] if known and known[0] == uidvalidity else 0
    if known and known[0] == uidvalidity and uidnext - 1 <= last_uid and not pending:
        return []
    mailbox.folder.set(folder)
    client = mailbox.client
    _apply_pending(store, account, client, mailbox, folder, uidvalidity, pending, host)
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
                      outcomes, on_chunk, progress)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    # Mail skipped by `since` or `unseen` below UIDNEXT is settled; do not search it again.
    with store.tx() as conn:
        current = fetchstate.folder(conn, account.name, folder)
        top = max(uidnext - 1, current[1] if current and current[0] == uidvalidity else 0)
        fetchstate.set_folder(conn, account.name, folder, uidvalidity, top)
    if account.post_fetch in ("delete", "move") and uids:
        expunge(client, uids, host)
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
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def _parsed_chunks(client, chunks: Iterator[list[int]], host: str, pool
                   ) -> Iterator[tuple[list[int], list[tuple[int, bytes, Parsed]]]]:
    """(chunk, [(uid, raw, parsed)]) in order; with a pool, chunk N+1 is fetched while the
    workers parse chunk N."""
    from mailtix.mail.parse import parse

    if pool is None:
        for chunk in chunks:
            yield chunk, [(uid, raw, parse(raw)) for uid, raw in _fetch(client, chunk, host)]
        return
    ahead = None
    for chunk in chunks:
        items = list(_fetch(client, chunk, host))
        jobs = pool.map(parse, [raw for _uid, raw in items], chunksize=8)
        if ahead is not None:
            yield _collect(*ahead)
        ahead = (chunk, items, jobs)
    if ahead is not None:
        yield _collect(*ahead)


def _collect(chunk: list[int], items: list[tuple[int, bytes]], jobs
             ) -> tuple[list[int], list[tuple[int, bytes, Parsed]]]:
    from mailtix.mail.parse import parse

    try:
        results = list(jobs)
    except Exception:  # a dead worker: parse here instead; the mail must not wait for it
        results = [parse(raw) for _uid, raw in items]
    return chunk, [(uid, raw, p) for (uid, raw), p in zip(items, results, strict=True)]


def _store_chunks(config: Config, account: Account, store: Store, mailbox, folder: str,
                  uidvalidity: int, uids: list[int], pool, outcomes: list[Outcome],
                  on_chunk: Hook | None, progress: Callable[[int], None] | None) -> None:
    from mailtix.ingest import store_message

    client = mailbox.client
    host = account.fetch.host if account.fetch else ""
    for chunk, parsed in _parsed_chunks(client, _chunks(client, uids, host), host, pool):
        done: list[Outcome] = []
        with store.tx() as conn:
            for uid, raw, p in parsed:
                src = Source(account.name, folder, uidvalidity, uid)
                if source_known(conn, src):
                    continue
                done.append(store_message(conn, config, account, src, raw, p))
                if account.post_fetch != "none":
                    fetchstate.add_action(conn, account.name, folder, account.post_fetch,
                                          uidvalidity=uidvalidity, uid=uid, target=account.move_to)
            fetchstate.set_folder(conn, account.name, folder, uidvalidity, max(chunk))
        if on_chunk is not None:
            on_chunk("committed", done)
        outcomes += done
        if progress is not None:
            progress(len(chunk))
        pending = [a for a in fetchstate.actions(store.conn, account.name)
                   if a["folder"] == folder]
        _apply_pending(store, account, client, mailbox, folder, uidvalidity, pending, host,
                       expunge=False)


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


def uid_set(uids: list[int]) -> str:
    """Compact UID set: 1:5,8,10:12."""
    out, start, prev = [], None, None
    for u in uids:
        if start is None:
            start = prev = u
        elif u == prev + 1:
            prev = u
        else:
            out.append(f"{start}:{prev}" if start != prev else str(start))
            start = prev = u
    if start is not None:
        out.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(out)


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


def _apply_pending(store: Store, account: Account, client, mailbox, folder: str,
                   uidvalidity: int, pending: list, host: str, expunge: bool = True) -> None:
    if not pending:
        return
    stale = [a["id"] for a in pending if a["uidvalidity"] != uidvalidity]
    by_action: dict[tuple[str, str], list] = {}
    for a in pending:
        if a["uidvalidity"] == uidvalidity:
            by_action.setdefault((a["action"], a["target"]), []).append(a)
    for (action, target), rows in by_action.items():
        uids = sorted(int(a["uid"]) for a in rows)
        uidset = uid_set(uids)
        if action == "seen":
            check(client.uid("STORE", uidset, "+FLAGS.SILENT", r"(\Seen)"), "UID STORE", host)
        elif action == "delete":
            check(client.uid("STORE", uidset, "+FLAGS.SILENT", r"(\Deleted)"), "UID STORE", host)
            if expunge:
                expunge(client, uids, host)
        elif action == "move":
            if not mailbox.folder.exists(target):
                mailbox.folder.create(target)
            mailbox.move([str(u) for u in uids], target)
        with store.tx() as conn:
            fetchstate.done_actions(conn, [a["id"] for a in rows])
    if stale:
        with store.tx() as conn:
            fetchstate.done_actions(conn, stale)


def expunge(client, uids: list[int], host: str) -> None:
    """Expunge once per folder, and only our messages where the server allows (UIDPLUS)."""
    if "UIDPLUS" in client.capabilities:
        check(client._simple_command("UID", "EXPUNGE", uid_set(uids)), "UID EXPUNGE", host)
    else:
        check(client.expunge(), "EXPUNGE", host)
