"""An IMAP account's folders as a source: keys are (folder, UIDVALIDITY, UID), new mail is
`UID n+1:*`, read with BODY.PEEK in chunks bounded by count and bytes, and the server actions
(seen, move, delete) are done with UID commands only, after intake has committed the mail.

A no-op costs one STATUS per folder (`status`); intake decides from the store whether a
folder needs more. For a large backlog a pool of parse workers parses chunk N while chunk N+1
is fetched: parsing is most of an ingest's CPU time. The store side (last UID, owed actions,
parking refused ones) is `mailtix.intake.fetch_imap`; this module stores nothing.
"""

from __future__ import annotations

import imaplib
import logging
import os
import re
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING

from imap_tools.errors import UnexpectedCommandStatusError

from mailtix import secrets
from mailtix.errors import NetworkError
from mailtix.mail import imap_ops
from mailtix.mail.imap_ops import check, uid_set
from mailtix.record import Record
from mailtix.sources import Action, Item, Key, SourceError

if TYPE_CHECKING:
    from mailtix.mail.parse import Parsed

CHUNK_COUNT = 200
PARALLEL_MIN = 400  # below this a worker pool's start-up costs more than it saves
PARSE_WORKERS = 2
CHUNK_BYTES = 16 * 1024 * 1024
_UID = re.compile(rb"UID (\d+)")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
log = logging.getLogger("mailtix.fetch")


class Fetched(Record):
    """One new message of a chunk, read and parsed."""

    key: Key
    raw: bytes
    parsed: object  # mail.parse.Parsed (not imported: a no-op run parses nothing)


def imap_date(d: date) -> str:
    return f"{d.day}-{_MONTHS[d.month - 1]}-{d.year}"


class ImapSource:
    keyspace = ""  # keys are (folder, UIDVALIDITY, UID); no UIDL of this source is stored

    def __init__(self, mailbox, folders: tuple[str, ...] | list[str] = ("INBOX",), *,
                 host: str = "", since: date | None = None, select: str = "all") -> None:
        self.mailbox, self.client = mailbox, mailbox.client
        self.folders = tuple(folders)
        self.host, self.since, self.select_mode = host, since, select
        self.name = f"imap {host}".strip()
        self.errors: dict[tuple[str, str, str], str] = {}  # (folder, action, target) refused
        self.waiting: list[Action] = []  # flagged or copied, the expunge still owed
        self._separator: str | None = None
        self._created: set[str] = set()  # move targets known to exist
        imap_ops.refresh_capabilities(self.client)

    # -- folder names: the one place a configured name becomes the server's --

    def server_folder(self, name: str) -> str:
        """A configured folder name (levels written with '/') in the server's notation."""
        if self._separator is None:
            self._separator = imap_ops.separator(self.client, self.host)
        return imap_ops.server_name(name, self._separator)

    def fetch_folder(self, folder: str) -> str:
        """The server's name of a `fetch.folders` entry, for STATUS and SELECT; keys keep
        the configured name. Levels are written with '/', like move_to; the server may use
        '.'. A name without '/' needs no LIST for the separator: a no-op run stays one round
        trip per folder."""
        return self.server_folder(folder) if "/" in folder else folder

    # -- reading --

    def status(self, folder: str) -> tuple[int, int]:
        """(UIDVALIDITY, UIDNEXT) without selecting the folder."""
        status = self.mailbox.folder.status(self.fetch_folder(folder), ["UIDVALIDITY", "UIDNEXT"])
        return int(status["UIDVALIDITY"]), int(status["UIDNEXT"])

    def select(self, folder: str) -> None:
        self.mailbox.folder.set(self.fetch_folder(folder))

    def new_uids(self, last_uid: int) -> list[int]:
        """UIDs above last_uid in the selected folder (`since` and `unseen` applied)."""
        criteria = [f"UID {last_uid + 1}:*"]
        if self.since:
            criteria.append(f"SINCE {imap_date(self.since)}")
        if self.select_mode == "unseen":
            criteria.append("UNSEEN")
        data = check(self.client.uid("SEARCH", *criteria), "UID SEARCH", self.host)
        return sorted(u for u in (int(x) for x in b" ".join(data).split()) if u > last_uid)

    def chunks(self, folder: str, uidvalidity: int, uids: list[int]
               ) -> Iterator[tuple[list[int], list[Fetched]]]:
        """(chunk of UIDs, [Fetched]) of the selected folder, in UID order."""
        pool = _pool(len(uids))
        try:
            for chunk, parsed in _parsed_chunks(self.client, _chunks(self.client, uids,
                                                                     self.host), self.host, pool):
                yield chunk, [Fetched(Key(folder, uidvalidity, uid), raw, p)
                              for uid, raw, p in parsed]
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    def items(self) -> Iterator[Item]:
        """Every message of every folder, listed by UID and size; a body is fetched (with
        BODY.PEEK) only when read. Intake asks for new UIDs instead (`new_uids`, `chunks`)."""
        for folder in self.folders:
            uidvalidity, _next = self.status(folder)
            self.select(folder)
            for uid, size in _sizes(self.client, self.new_uids(0), self.host).items():
                yield Item(Key(folder, uidvalidity, uid),
                           lambda f=folder, u=uid: self._read(f, u), size)

    def _read(self, folder: str, uid: int) -> bytes:
        if self.mailbox.folder.get() != self.fetch_folder(folder):
            self.select(folder)
        for _uid, raw in _fetch(self.client, [uid], self.host):
            return raw
        raise SourceError(f"{self.name}: {folder} UID {uid} is gone (expunged meanwhile)")

    # -- acting --

    def act(self, actions: list[Action]) -> list[Action]:
        """Do the actions, grouped per folder, action and target, with UID commands only.
        Action "expunge" finishes one left waiting. Returns those done; a group the server
        refuses lands in `errors`, one flagged but not expunged (no UIDPLUS, foreign
        \\Deleted mail) in `waiting`. A dropped connection raises: the account's failure."""
        self.errors, self.waiting = {}, []
        groups: dict[tuple[str, str, str], list[Action]] = {}
        for a in actions:
            groups.setdefault((a.key.folder, a.action, a.target), []).append(a)
        done: list[Action] = []
        for (folder, action, target), group in groups.items():
            if self.mailbox.folder.get() != self.fetch_folder(folder):
                self.select(folder)
            try:
                finished = self._do(action, target, sorted(a.key.uid for a in group))
            except (NetworkError, UnexpectedCommandStatusError, imaplib.IMAP4.error) as exc:
                if isinstance(exc, imaplib.IMAP4.abort):
                    raise
                self.errors[(folder, action, target)] = str(exc)
                continue
            (done if finished else self.waiting).extend(group)
        return done

    def _do(self, action: str, target: str, uids: list[int]) -> bool:
        client = self.client
        if action == "expunge":  # copied or flagged already: only the expunge is left
            return imap_ops.expunge(client, uids, self.host)
        uidset = uid_set(uids)
        if action == "seen":
            check(client.uid("STORE", uidset, "+FLAGS.SILENT", r"(\Seen)"), "UID STORE",
                  self.host)
            return True
        if action == "delete":
            check(client.uid("STORE", uidset, "+FLAGS.SILENT", r"(\Deleted)"), "UID STORE",
                  self.host)
            return imap_ops.expunge(client, uids, self.host)
        if action == "move":
            name = self.server_folder(target)
            if name not in self._created:
                imap_ops.ensure_folder(self.mailbox, name, self.host)
                self._created.add(name)
            return imap_ops.move(client, uids, name, self.host)
        raise NetworkError(f"unknown server action {action!r}")

    def close(self) -> None:
        pass  # the caller logs out: it opened the connection


def _pool(backlog: int):
    """Worker processes for a large backlog: the main process meanwhile fetches the next
    chunk and writes the store."""
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


def _sizes(client, uids: list[int], host: str) -> dict[int, int]:
    """UID -> RFC822.SIZE of those still there (another client may have expunged some)."""
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
    return sizes


def _chunks(client, uids: list[int], host: str) -> Iterator[list[int]]:
    """Chunks of UIDs bounded by count and by the sizes the server reports."""
    if not uids:
        return
    sizes = _sizes(client, uids, host)
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
