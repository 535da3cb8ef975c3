"""`mailtix archive`: mirror employees' mailboxes into the store, separate from tickets.

Folders are mirrored by UIDVALIDITY/UID like the ticket fetch; raw bytes go to the same
content-addressed table (stored once however many folders hold them). A message is deleted on
the server only when it is older than delete_after_days AND the server's bytes hash to the
stored copy AND the stored copy still hashes to its key: the legal copy must be complete first.
"""

from __future__ import annotations

import fnmatch
import hashlib
import imaplib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailtix import secrets
from mailtix.config.model import Account, Config
from mailtix.errors import UsageError
from mailtix.fsutil import fit_name
from mailtix.mail import clients
from mailtix.mail.imap_ops import check, expunge, refresh_capabilities, uid_set
from mailtix.mail.parse import parse
from mailtix.store import Store, messages
from mailtix.store.db import now

if TYPE_CHECKING:
    from mailtix.runner import AccountResult

CHUNK = 100
_HEAD = re.compile(rb"UID (\d+)|FLAGS \(([^)]*)\)|INTERNALDATE \"([^\"]+)\"")


@dataclass
class FolderResult:
    folder: str
    archived: int = 0
    deleted: int = 0
    would_delete: int = 0
    unverified: list[int] = field(default_factory=list)


def selected(names: list[str], patterns: tuple[str, ...], exclude: tuple[str, ...]) -> list[str]:
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)
            and not any(fnmatch.fnmatchcase(n, p) for p in exclude)]


def run(config: Config, store: Store, only: str | None = None, dry_run: bool = False,
        progress: Callable[[str, int], None] | None = None,
        failed: list[AccountResult] | None = None) -> dict[str, list[FolderResult]]:
    """Archive each selected account. A server fault (a connection lost in the middle of a
    FETCH) is recorded against its account as `mailtix run` records it, and appended to
    `failed`; the other accounts go on."""
    from mailtix.runner import AccountResult, _guarded  # the run's one account fault boundary

    out: dict[str, list[FolderResult]] = {}
    names = [only] if only else sorted(config.accounts)
    for name in names:
        account = config.account(name)
        if not account.archive.enabled and not only:
            continue
        if account.fetch is None or account.fetch.protocol != "imap":
            raise UsageError(f"account {name!r}: archiving needs an IMAP fetch server")
        result = AccountResult(name)
        folders = _guarded(config, store, account, result, "archive",
                           lambda acct=account: archive_account(store, acct, dry_run, progress))
        if folders is None:
            if failed is not None:
                failed.append(result)
        else:
            out[name] = folders
    return out


def archive_account(store: Store, account: Account, dry_run: bool = False,
                    progress: Callable[[str, int], None] | None = None) -> list[FolderResult]:
    assert account.fetch is not None
    server = account.fetch
    box = clients.open_imap(server, secrets.lookup(account, "fetch", server), folder=None)
    results = []
    try:
        refresh_capabilities(box.client)
        names = [f.name for f in box.folder.list() if "\\Noselect" not in f.flags]
        for folder in selected(names, account.archive.folders, account.archive.exclude):
            result = FolderResult(folder)
            _mirror(store, account, box, folder, result, progress)
            if account.archive.delete_after_days > 0:
                _expire(store, account, box, folder, result, dry_run)
            results.append(result)
    finally:
        try:
            box.logout()
        except Exception:  # the archive is committed already
            pass
    return results


def _mirror(store: Store, account: Account, box, folder: str, result: FolderResult,
            progress: Callable[[str, int], None] | None) -> None:
    host = account.fetch.host if account.fetch else ""
    status = box.folder.status(folder, ["UIDVALIDITY", "UIDNEXT"])
    uidvalidity, uidnext = int(status["UIDVALIDITY"]), int(status["UIDNEXT"])
    row = store.conn.execute("SELECT uidvalidity, last_uid FROM archive_folders WHERE account = ?"
                             " AND folder = ?", (account.name, folder)).fetchone()
    last = row[1] if row and row[0] == uidvalidity else 0
    if row and row[0] == uidvalidity and uidnext - 1 <= last:
        return
    box.folder.set(folder, readonly=True)
    client = box.client
    data = check(client.uid("SEARCH", f"UID {last + 1}:*"), "UID SEARCH", host)
    uids = sorted(u for u in (int(x) for x in b" ".join(data).split()) if u > last)
    for i in range(0, len(uids), CHUNK):
        chunk = uids[i:i + CHUNK]
        resp = check(client.uid("FETCH", uid_set(chunk), "(UID FLAGS INTERNALDATE BODY.PEEK[])"),
                     "UID FETCH", host)
        items = []
        for item in resp:
            if not isinstance(item, tuple):
                continue
            uid = flags = internal = None
            for m in _HEAD.finditer(item[0]):
                uid = int(m.group(1)) if m.group(1) else uid
                flags = m.group(2).decode() if m.group(2) is not None else flags
                internal = m.group(3) if m.group(3) else internal
            if uid is not None:
                items.append((uid, flags or "", _internal(internal), item[1]))
        with store.tx() as conn:
            for uid, flags, internal, raw in items:
                p = parse(raw)
                digest = messages.put_raw(conn, raw)
                cur = conn.execute(
                    "INSERT OR IGNORE INTO archive_messages(account, folder, uidvalidity, uid, "
                    "sha256, size, flags, internal_date, date, from_addr, to_addrs, subject, "
                    "message_id, archived_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (account.name, folder, uidvalidity, uid, digest, len(raw), flags, internal,
                     p.date, p.from_addr, ", ".join(a for _, a in p.to), p.subject,
                     p.message_id, now()))
                if cur.rowcount:
                    addrs = " ".join([p.from_addr, *(a for _, a in p.to)])
                    conn.execute("INSERT INTO archive_fts(rowid, subject, body_text, addrs) "
                                 "VALUES (?,?,?,?)", (cur.lastrowid, p.subject, p.body_text,
                                                      addrs))
                    result.archived += 1
            conn.execute("INSERT INTO archive_folders(account, folder, uidvalidity, last_uid, "
                         "updated_at) VALUES (?,?,?,?,?) ON CONFLICT(account, folder) DO UPDATE "
                         "SET uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, "
                         "updated_at = excluded.updated_at",
                         (account.name, folder, uidvalidity, max(chunk), now()))
        if progress:
            progress(folder, len(chunk))


def _internal(value: bytes | None) -> str | None:
    if not value:
        return None
    parsed = imaplib.Internaldate2tuple(b'INTERNALDATE "' + value + b'"')
    if parsed is None:
        return None
    return datetime.fromtimestamp(time.mktime(parsed), UTC).isoformat(timespec="seconds")


def _expire(store: Store, account: Account, box, folder: str, result: FolderResult,
            dry_run: bool) -> None:
    host = account.fetch.host if account.fetch else ""
    status = box.folder.status(folder, ["UIDVALIDITY"])
    cutoff = (datetime.now(UTC) - timedelta(days=account.archive.delete_after_days)
              ).isoformat(timespec="seconds")
    rows = store.conn.execute(
        "SELECT id, uid, sha256 FROM archive_messages WHERE account = ? AND folder = ? AND "
        "uidvalidity = ? AND deleted_at IS NULL AND internal_date < ? ORDER BY uid",
        (account.name, folder, int(status["UIDVALIDITY"]), cutoff)).fetchall()
    if not rows:
        return
    if dry_run:
        result.would_delete = len(rows)
        return
    box.folder.set(folder)
    client = box.client
    verified: list[tuple[int, int]] = []
    by_uid = {r["uid"]: r for r in rows}
    for i in range(0, len(rows), CHUNK):
        chunk = [r["uid"] for r in rows[i:i + CHUNK]]
        resp = check(client.uid("FETCH", uid_set(chunk), "(UID BODY.PEEK[])"), "UID FETCH", host)
        for item in resp:
            if not isinstance(item, tuple):
                continue
            m = re.search(rb"UID (\d+)", item[0])
            if not m or int(m.group(1)) not in by_uid:
                continue
            row = by_uid[int(m.group(1))]
            stored = messages.get_raw(store.conn, row["sha256"])
            if (stored is not None and hashlib.sha256(item[1]).hexdigest() == row["sha256"]
                    and hashlib.sha256(stored).hexdigest() == row["sha256"]):
                verified.append((row["id"], row["uid"]))
            else:
                result.unverified.append(row["uid"])
    if not verified:
        return
    uids = [uid for _id, uid in verified]
    check(client.uid("STORE", uid_set(uids), "+FLAGS.SILENT", r"(\Deleted)"), "UID STORE", host)
    if not expunge(client, uids, host):
        return  # flagged, and expunged by a later run once no one else's mail is flagged
    with store.tx() as conn:
        conn.executemany("UPDATE archive_messages SET deleted_at = ? WHERE id = ?",
                         [(now(), mid) for mid, _uid in verified])
    result.deleted = len(verified)


def listing(store: Store, account: str | None = None, folder: str | None = None,
            limit: int = 100) -> list[dict[str, Any]]:
    clauses, args = ["1 = 1"], []
    if account:
        clauses.append("account = ?")
        args.append(account)
    if folder:
        clauses.append("folder = ?")
        args.append(folder)
    rows = store.conn.execute(
        "SELECT id, account, folder, uid, internal_date, from_addr, subject, size, deleted_at "
        f"FROM archive_messages WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",
        (*args, limit))
    return [dict(r) for r in rows]


def search(store: Store, query: str, limit: int = 50) -> list[dict[str, Any]]:
    from mailtix.store.queries import archive_search

    return archive_search(store.conn, query, limit)


def verify(store: Store, account: str | None = None) -> dict[str, Any]:
    """Re-hash every stored copy (of one account's archive, or all): `bad` lists the digests
    whose bytes are missing or differ."""
    bad = []
    total = 0
    sql, args = "SELECT DISTINCT sha256 FROM archive_messages", ()
    if account:
        sql, args = sql + " WHERE account = ?", (account,)
    for row in store.conn.execute(sql, args).fetchall():
        total += 1
        data = messages.get_raw(store.conn, row[0])
        if data is None or hashlib.sha256(data).hexdigest() != row[0]:
            bad.append(row[0])
    return {"checked": total, "bad": bad}


def verify_and_repair(config: Config, store: Store, only: str | None = None,
                      failed: list[AccountResult] | None = None) -> dict[str, Any]:
    """Verify the stored copies and fetch each damaged one again from the server while the
    server still has it (same folder, same UIDVALIDITY, bytes hashing to the recorded digest).
    `damaged` lists what could not be repaired: the legal copy is incomplete, say so. An
    account in `failed` is not asked (its server failed this run); one that fails now is
    recorded like a failed mirror and appended."""
    from mailtix.runner import AccountResult, _guarded

    down = {a.account for a in failed or []}
    result = verify(store, only)
    repaired: list[str] = []
    if result["bad"]:
        marks = ",".join("?" * len(result["bad"]))
        rows = store.conn.execute(
            f"SELECT account, folder, uidvalidity, uid, sha256 FROM archive_messages WHERE "
            f"sha256 IN ({marks}) AND deleted_at IS NULL ORDER BY account, folder, uid",
            result["bad"]).fetchall()
        by_account: dict[str, list] = {}
        for r in rows:
            acct = config.accounts.get(r["account"])
            if (acct is not None and acct.fetch is not None and acct.fetch.protocol == "imap"
                    and (only is None or r["account"] == only)):
                by_account.setdefault(r["account"], []).append(r)
        for name, wanted in by_account.items():
            if name in down:
                continue
            account, outcome = config.account(name), AccountResult(name)
            fixed = _guarded(config, store, account, outcome, "archive repair",
                             lambda a=account, w=wanted: _refetch(store, a, w))
            if fixed is None and failed is not None:
                failed.append(outcome)
            repaired += fixed or []
    damaged = [d for d in result["bad"] if d not in set(repaired)]
    return {"checked": result["checked"], "repaired": sorted(set(repaired)), "damaged": damaged}


def _refetch(store: Store, account: Account, rows: list) -> list[str]:
    assert account.fetch is not None
    host = account.fetch.host
    box = clients.open_imap(account.fetch, secrets.lookup(account, "fetch", account.fetch),
                            folder=None)
    fixed: list[str] = []
    try:
        by_folder: dict[tuple[str, int], dict[int, str]] = {}
        for r in rows:
            by_folder.setdefault((r["folder"], r["uidvalidity"]), {})[r["uid"]] = r["sha256"]
        for (folder, uidvalidity), uids in by_folder.items():
            status = box.folder.status(folder, ["UIDVALIDITY"])
            if int(status["UIDVALIDITY"]) != uidvalidity:
                continue  # renumbered: these UIDs name other mail now
            box.folder.set(folder, readonly=True)
            todo = sorted(u for u, d in uids.items() if d not in fixed)
            if not todo:
                continue
            resp = check(box.client.uid("FETCH", uid_set(todo), "(UID BODY.PEEK[])"),
                         "UID FETCH", host)
            for item in resp:
                m = re.search(rb"UID (\d+)", item[0]) if isinstance(item, tuple) else None
                digest = uids.get(int(m.group(1))) if m else None
                if digest and hashlib.sha256(item[1]).hexdigest() == digest:
                    with store.tx() as conn:
                        if not conn.execute("UPDATE raw_messages SET size = ?, data = ? WHERE "
                                            "sha256 = ?", (len(item[1]), item[1], digest)
                                            ).rowcount:
                            messages.put_raw(conn, item[1])
                    fixed.append(digest)
    finally:
        try:
            box.logout()
        except Exception:  # the repairs are committed already
            pass
    return fixed


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAILDIR_FLAGS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S",
                  "\\Deleted": "T"}


def maildir_info(flags: str) -> str:
    """IMAP flags as a Maildir info suffix: `:2,` and the letters in ASCII order."""
    letters = sorted({_MAILDIR_FLAGS[f] for f in flags.split() if f in _MAILDIR_FLAGS})
    return ":2," + "".join(letters)


def maildir_folder(folder: str, account: str | None) -> str:
    """Maildir++ (Dovecot, Courier, mutt, Python's mailbox): INBOX is the top, every other
    folder `.Level1.Level2`; with several accounts each one is a top-level folder."""
    if account is None and folder.upper() == "INBOX":
        return ""
    # The name comes from the server: one path component, no control characters, <= 255 bytes.
    parts = [_CONTROL.sub("_", p) for p in re.split(r"[/.]", folder) if p] or ["_"]
    if account is not None:
        parts = [_CONTROL.sub("_", account.replace(".", "_").replace("/", "_")), *parts]
    return fit_name("." + ".".join(parts))


def export(store: Store, *, mbox_file: Path | None, maildir: Path | None,
           folder: str | None = None, since: str | None = None, until: str | None = None,
           account: str | None = None, force: bool = False) -> int:
    """Byte-exact export for an auditor: files 0600, folders 0700, never through a planted
    symlink nor over an existing file unless force. A Maildir keeps the folders and each
    message's flags (in cur/, `:2,S` for \\Seen)."""
    from mailtix.fsutil import SafeDir, write_mbox

    if (mbox_file is None) == (maildir is None):
        raise UsageError("give exactly one of --mbox FILE or --maildir DIR")
    clauses, args = ["1 = 1"], []
    for sql, value in (("account = ?", account), ("folder = ?", folder),
                       ("internal_date >= ?", since), ("internal_date < ?", until)):
        if value:
            clauses.append(sql)
            args.append(value)
    rows = store.conn.execute(
        f"SELECT id, account, folder, sha256, flags, internal_date FROM archive_messages "
        f"WHERE {' AND '.join(clauses)} ORDER BY internal_date, id", args).fetchall()
    if mbox_file is not None:
        with SafeDir(mbox_file.parent, create=False, force=force) as parent:
            parent.check_free([mbox_file.name])
            with parent.create(mbox_file.name) as fh:
                return write_mbox(fh, (raw for r in rows
                                       if (raw := messages.get_raw(store.conn, r["sha256"]))
                                       is not None))
    assert maildir is not None
    several = len({r["account"] for r in rows}) > 1
    count = 0
    with SafeDir(maildir, force=force) as top:
        if not force and not top.is_empty():
            raise UsageError(f"{maildir} exists and is not empty",
                             hint="give --force to add to it, or choose a new folder")
        boxes: dict[str, Any] = {}
        try:
            # the top is INBOX in Maildir++ and must be a Maildir even when INBOX is not exported
            boxes.update({"/" + sub: top.subdir(sub) for sub in ("tmp", "new", "cur")})
            boxes[""] = top
            for r in rows:
                raw = messages.get_raw(store.conn, r["sha256"])
                if raw is None:
                    continue
                name = maildir_folder(r["folder"], r["account"] if several else None)
                if name not in boxes:
                    box = top.subdir(name) if name else top
                    if name:
                        box.write("maildirfolder", b"")
                    for sub in ("tmp", "new", "cur"):
                        boxes.setdefault(name + "/" + sub, box.subdir(sub))
                    boxes[name] = box
                stamp = _stamp(r["internal_date"])
                boxes[name + "/cur"].write(f"{stamp}.M{r['id']}.mailtix"
                                           f"{maildir_info(r['flags'] or '')}", raw)
                count += 1
        finally:
            for box in boxes.values():
                if box is not top:
                    box.close()
    return count


def _stamp(internal_date: str | None) -> int:
    try:
        return int(datetime.fromisoformat(internal_date or "").timestamp())
    except ValueError:
        return 0
