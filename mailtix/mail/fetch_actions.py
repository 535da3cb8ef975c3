"""The post-fetch server actions (seen, move, delete) of one IMAP session.

An action is recorded in the same transaction that stores the message, and done on the server
afterwards (invariant 1). An action the server refuses must never hold up the fetch: it is
tried once per run, and after MAX_ATTEMPTS runs it is parked, shown by `mailtix status` and
`mailtix log`, until `mailtix actions retry` or `mailtix actions drop`.
"""

from __future__ import annotations

import imaplib
import logging
import sqlite3

from imap_tools.errors import UnexpectedCommandStatusError

from mailtix.config.model import Account
from mailtix.errors import NetworkError
from mailtix.mail import imap_ops
from mailtix.store import Store, fetchstate, tickets

MAX_ATTEMPTS = 3
WAITING = ("flagged \\Deleted; not expunged while other messages in the folder are flagged "
           "\\Deleted too (the server has no UIDPLUS)")
log = logging.getLogger("mailtix.fetch")


class ServerActions:
    def __init__(self, store: Store, account: Account, mailbox) -> None:
        self.store, self.account, self.mailbox = store, account, mailbox
        self.host = account.fetch.host if account.fetch else ""
        self.failed: set[tuple] = set()  # refused in this session: not tried again until the next
        self._separator: str | None = None
        self._folders: set[str] = set()  # move targets known to exist

    def apply(self, folder: str, uidvalidity: int) -> None:
        """Do what is pending for the selected folder."""
        rows = fetchstate.actions(self.store.conn, self.account.name, folder)
        if not rows:
            return
        stale = [r["id"] for r in rows if r["uidvalidity"] != uidvalidity]
        if stale:  # the UIDs name other messages now (or none); the mail was stored anyway
            with self.store.tx() as conn:
                fetchstate.done_actions(conn, stale)
        groups: dict[tuple, list[sqlite3.Row]] = {}
        for r in rows:
            if r["uidvalidity"] == uidvalidity:
                groups.setdefault((folder, r["action"], r["target"], r["state"]), []).append(r)
        for key, group in groups.items():
            if key in self.failed:
                continue
            self._apply_group(key, group)

    def _apply_group(self, key: tuple, group: list[sqlite3.Row]) -> None:
        _folder, action, target, state = key
        ids = [r["id"] for r in group]
        uids = sorted(int(r["uid"]) for r in group)
        try:
            finished = self._do(action, target, state, uids)
        except (NetworkError, UnexpectedCommandStatusError, imaplib.IMAP4.error) as exc:
            if isinstance(exc, imaplib.IMAP4.abort):
                raise  # the connection is gone: the account's failure, not the action's
            self._refused(key, ids, str(exc))
            return
        with self.store.tx() as conn:
            if finished:
                fetchstate.done_actions(conn, ids)
            elif state != "waiting":
                fetchstate.actions_waiting(conn, ids, WAITING)

    def _do(self, action: str, target: str, state: str, uids: list[int]) -> bool:
        client = self.mailbox.client
        if state == "waiting":  # copied or flagged already: only the expunge is left
            return imap_ops.expunge(client, uids, self.host)
        uidset = imap_ops.uid_set(uids)
        if action == "seen":
            imap_ops.check(client.uid("STORE", uidset, "+FLAGS.SILENT", r"(\Seen)"),
                           "UID STORE", self.host)
            return True
        if action == "delete":
            imap_ops.check(client.uid("STORE", uidset, "+FLAGS.SILENT", r"(\Deleted)"),
                           "UID STORE", self.host)
            return imap_ops.expunge(client, uids, self.host)
        if action == "move":
            name = self.server_folder(self.move_target(target))
            if name not in self._folders:
                imap_ops.ensure_folder(self.mailbox, name, self.host)
                self._folders.add(name)
            return imap_ops.move(client, uids, name, self.host)
        raise NetworkError(f"unknown server action {action!r}")

    def move_target(self, stored: str) -> str:
        """The folder named by the config now: a target fixed in the config applies also to
        moves recorded before the fix."""
        if self.account.post_fetch == "move" and self.account.move_to:
            return self.account.move_to
        return stored

    def server_folder(self, name: str) -> str:
        if self._separator is None:
            self._separator = imap_ops.separator(self.mailbox.client, self.host)
        return imap_ops.server_name(name, self._separator)

    def _refused(self, key: tuple, ids: list[int], error: str) -> None:
        _folder, action, target, _state = key
        self.failed.add(key)
        what = f"{action} to {target!r}" if action == "move" else action
        with self.store.tx() as conn:
            parked = fetchstate.actions_failed(conn, ids, error, MAX_ATTEMPTS)
            if parked:
                tickets.event(conn, "server action parked", account=self.account.name,
                              detail=f"{_folder}: {what} of {parked} message(s): {error}"[:500])
        if parked:
            log.warning("account %s: %s of %d message(s) in %s parked after %d failed runs: "
                        "%s (fix it, then `mailtix actions retry %s`, or `mailtix actions "
                        "drop %s`)", self.account.name, what, parked, _folder, MAX_ATTEMPTS,
                        error, self.account.name, self.account.name)
        else:
            log.warning("account %s: %s in %s failed, tried again next run: %s",
                        self.account.name, what, _folder, error)
