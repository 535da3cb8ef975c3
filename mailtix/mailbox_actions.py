"""Agent actions that reach the server copy of a ticket's mail: read/unread (\\Seen), move to
a folder, trash and restore. The copies are known from the message_sources rows (account,
folder, UIDVALIDITY, UID); the server is changed first and the store records where each copy
went, so a failed server leaves the ticket as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from mailtix.config.model import DELETED, Account, Config
from mailtix.desk import find
from mailtix.errors import ProtocolError, UsageError
from mailtix.store import Store, actions, tickets


@contextmanager
def _mailbox(account: Account) -> Iterator[Any]:
    import imaplib

    from imap_tools.errors import ImapToolsError

    from mailtix import secrets
    from mailtix.mail import clients

    assert account.fetch is not None
    box = clients.open_imap(account.fetch, secrets.lookup(account, "fetch", account.fetch),
                            folder=None)
    try:
        yield box
    except (ImapToolsError, imaplib.IMAP4.error, OSError) as exc:
        raise ProtocolError(f"{account.fetch.host}: {exc}"[:300], host=account.fetch.host,
                            hint="nothing was recorded for copies the server did not "
                                 "confirm; run the command again") from None
    finally:
        try:
            box.logout()
        except Exception:  # noqa: BLE001 - the work is done; a failed goodbye changes nothing
            pass


def _groups(config: Config, rows: list) -> tuple[dict[str, list], int]:
    """Copies per IMAP account we can still reach; the count of those we cannot (POP3, an
    account gone from the config)."""
    out: dict[str, list] = {}
    unreachable = 0
    for r in rows:
        acct = config.accounts.get(r["account"])
        if acct is None or acct.fetch is None or acct.fetch.protocol != "imap":
            unreachable += 1
            continue
        out.setdefault(r["account"], []).append(r)
    return out, unreachable


def _located(box, account: Account, store: Store, rows: list) -> list:
    """The copies where they lie now. With post_fetch = "move" the fetch moved each copy on
    to move_to after storing it, so one missing from its recorded folder is looked up there
    by Message-ID (and the new place recorded)."""
    from mailtix.mail import imap_ops, server_copy

    if account.post_fetch != "move" or not account.move_to:
        return rows
    out, target = [], None
    for (folder, uidvalidity), group in _each_box(rows).items():
        here = set(server_copy.present(box, folder, uidvalidity, [r["uid"] for r in group]))
        for r in group:
            if r["uid"] in here or not r["message_id"]:
                out.append(r)
                continue
            if target is None:
                target = imap_ops.server_name(account.move_to, server_copy.separator(box))
            place = server_copy.find_by_message_id(box, target, r["message_id"])
            if place is None:
                out.append(r)
                continue
            with store.tx() as conn:
                actions.moved(conn, r["id"], target, place[0], place[1], r["trashed_from"])
            out.append({**dict(r), "folder": target, "uidvalidity": place[0], "uid": place[1]})
    return out


def _each_box(rows: list) -> dict[tuple[str, int], list]:
    by_box: dict[tuple[str, int], list] = {}
    for r in rows:
        by_box.setdefault((r["folder"], r["uidvalidity"]), []).append(r)
    return by_box


def _result(store: Store, ticket_id: int, **extra: Any) -> dict[str, Any]:
    t = tickets.get(store.conn, ticket_id)
    return {"ticket": t["number"], "status": t["status"], **extra}


def mark(config: Config, store: Store, number: str, agent: str, *, unread: bool
         ) -> dict[str, Any]:
    """The ticket's unread marker, and \\Seen cleared or set on its mail's server copies."""
    from mailtix.mail import server_copy

    ticket_id = find(store, number)
    rows = actions.server_copies(store.conn, ticket_id)
    groups, _ = _groups(config, rows)
    done = 0
    for name, rows in groups.items():
        with _mailbox(config.accounts[name]) as box:
            rows = _located(box, config.accounts[name], store, rows)
            for (folder, uidvalidity), items in _each_box(rows).items():
                done += len(server_copy.set_seen(box, folder, uidvalidity,
                                                 [r["uid"] for r in items], not unread))
    with store.tx() as conn:
        actions.set_unread(conn, ticket_id, unread, agent)
    return _result(store, ticket_id, unread=unread, server_copies=done,
                   unreachable=len(rows) - done)


def _move_all(config: Config, store: Store, ticket_id: int, rows: list,
              target_for: Callable[[Any, Account], str], trashed: bool) -> tuple[int, list[str]]:
    """Move each copy to the folder target_for(box, account) names; record where it went."""
    from mailtix.mail import server_copy

    groups, _ = _groups(config, rows)
    moved, targets = 0, []
    for name, items in groups.items():
        account = config.accounts[name]
        with _mailbox(account) as box:
            items = _located(box, account, store, items)
            for (folder, uidvalidity), group in _each_box(items).items():
                target = target_for(box, account)
                new = server_copy.move(box, folder, uidvalidity, [r["uid"] for r in group],
                                       target)
                targets.append(f"{name}:{target}")
                with store.tx() as conn:
                    for r in group:
                        place = new.get(r["uid"])
                        if place is None and r["uid"] not in new:
                            place = server_copy.find_by_message_id(box, target, r["message_id"])
                        if place is None:
                            continue  # gone from the server or renumbered: nothing to record
                        back = (r["trashed_from"] or folder) if trashed else ""
                        actions.moved(conn, r["id"], target, place[0], place[1], back)
                        moved += 1
    return moved, sorted(set(targets))


def move(config: Config, store: Store, number: str, folder: str, agent: str) -> dict[str, Any]:
    """The server copies of the ticket's mail into `folder` (an existing one, checked with
    LIST; '/' between levels whatever the server's separator)."""
    from mailtix.mail import server_copy

    if not folder.strip():
        raise UsageError("an empty --folder")
    ticket_id = find(store, number)
    rows = actions.server_copies(store.conn, ticket_id)
    groups, _ = _groups(config, rows)
    if not groups:
        raise UsageError(f"ticket {number}: none of its mail has a copy on an IMAP server")
    moved, targets = _move_all(config, store, ticket_id, rows,
                               lambda box, _a: server_copy.resolve_folder(box, folder), False)
    with store.tx() as conn:
        tickets.event(conn, "move", ticket_id=ticket_id, agent=agent,
                      detail=f"{moved} server copies to {', '.join(targets)}")
    return _result(store, ticket_id, moved=moved, folders=targets,
                   unreachable=len(rows) - moved)


def trash(config: Config, store: Store, number: str, agent: str) -> dict[str, Any]:
    """Server copies to the Trash folder; the ticket to the deleted state (hidden from lists)
    until `restore`, within [general] restore_window."""
    from mailtix.mail import server_copy

    ticket_id = find(store, number)
    t = tickets.get(store.conn, ticket_id)
    if t["status"] == DELETED:
        raise UsageError(f"ticket {t['number']} is in the trash already",
                         hint=f"`mailtix ticket restore {t['number']}` takes it back")
    rows = actions.server_copies(store.conn, ticket_id)
    moved, targets = _move_all(
        config, store, ticket_id, rows,
        lambda box, a: server_copy.trash_folder(box, a.trash_folder), True)
    with store.tx() as conn:
        actions.trash(conn, ticket_id, agent,
                      f"{moved} server copies to {', '.join(targets) or '-'}")
    return _result(store, ticket_id, moved=moved, folders=targets,
                   unreachable=len(rows) - moved)


def restore(config: Config, store: Store, number: str, agent: str,
            now: datetime | None = None) -> dict[str, Any]:
    """Undo `trash` within the restore window: copies back to their folders, the status the
    ticket had."""

    ticket_id = find(store, number)
    t = tickets.get(store.conn, ticket_id)
    if t["status"] != DELETED:
        raise UsageError(f"ticket {t['number']} is not in the trash")
    window = timedelta(seconds=config.general.restore_window)
    deleted_at = datetime.fromisoformat(t["deleted_at"])
    if (now or datetime.now(UTC)) - deleted_at > window:
        raise UsageError(f"ticket {t['number']} was trashed on {t['deleted_at'][:10]}, longer "
                         "ago than [general] restore_window allows",
                         hint="the server may have emptied its Trash; raise restore_window "
                              "to restore anyway")
    rows = [r for r in actions.server_copies(store.conn, ticket_id) if r["trashed_from"]]
    moved = 0
    for back in sorted({r["trashed_from"] for r in rows}):
        group = [r for r in rows if r["trashed_from"] == back]
        n, _ = _move_all(config, store, ticket_id, group, lambda _b, _a, f=back: f, False)
        moved += n
    with store.tx() as conn:
        status = actions.restore(conn, ticket_id, agent, f"{moved} server copies back")
    return _result(store, ticket_id, moved=moved, restored_status=status)


def to_junk(config: Config, store: Store, ticket_id: int) -> int:
    """The server copies of a ticket's mail into the Junk folder (`ticket spam --junk`)."""
    from mailtix.mail import server_copy

    moved, _ = _move_all(config, store, ticket_id, actions.server_copies(store.conn, ticket_id),
                         lambda box, _a: server_copy.special_folder(box, "\\Junk", ("Junk",)),
                         False)
    return moved


def server_copies(store: Store, number: str) -> list[dict[str, Any]]:
    return [dict(r) for r in actions.server_copies(store.conn, find(store, number))]
