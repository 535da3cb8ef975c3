"""Pull messages from a source into the store: the commit-then-act path of every source
(IMAP, POP3, Maildir, mbox, stdin). `pull` serves the sources that list keys; IMAP asks the
server only for UIDs above the last stored one, so `fetch_imap` walks its folders instead of
a listing, with the same order of commit, then act.

For each chunk: read the new messages, store them and record the owed server action in one
transaction, then tell the source to act, then forget the action. A crash between commit
and act leaves the action recorded; the next pull does it first (invariant 1). Known keys
are skipped without reading the message (invariant 2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import closing
from datetime import date, datetime
from typing import TYPE_CHECKING

from mailtix.config.model import Account, Config
from mailtix.sources import Action, Item, Key, MailSource
from mailtix.store import Store, fetchstate, sources, tickets
from mailtix.store.messages import Source

if TYPE_CHECKING:  # imported on the first new message: a no-op run parses nothing
    from mailtix.ingest import Outcome
    from mailtix.mail.baseline import Seen
    from mailtix.sources.imap import ImapSource

CHUNK = 100
MAX_ATTEMPTS = 3  # pulls that may refuse a server action before it is parked
WAITING = ("flagged \\Deleted; not expunged while other messages in the folder are flagged "
           "\\Deleted too (the server has no UIDPLUS)")

Hook = Callable[[str, list["Outcome"]], None]
log = logging.getLogger("mailtix.fetch")


def _source(account: Account, key: Key) -> Source:
    return Source(account.name, key.folder, key.uidvalidity, key.uid, key.uidl)


def pull(config: Config, account: Account, store: Store, source: MailSource, *,
         action: str = "none", target: str = "", as_closed: bool = False,
         since: date | None = None, on_chunk: Hook | None = None,
         progress: Callable[[int], None] | None = None) -> list[Outcome]:
    """Store every message of `source` not stored before; `action` is done to each new one
    after its commit (post_fetch: seen, move, delete, none). Mail dated before `since` is
    recorded as settled (like a baseline) and left alone."""
    refused: set[int] = set()
    _replay(account, store, source, refused)
    known = sources.known_keys(store.conn, account.name)
    outcomes: list[Outcome] = []
    chunk: list[Item] = []
    created: set[int] = set()  # with as_closed: tickets this import made, closed as they fill
    consumed = 0  # items looked at since the last progress report, known ones included
    size = getattr(source, "chunk", CHUNK)
    for item in source.items():
        consumed += 1
        if item.key.uidl in known:
            continue
        chunk.append(item)
        if len(chunk) >= size:
            outcomes += _commit(config, account, store, source, chunk, action, target,
                                as_closed, created, since, refused, on_chunk)
            # A seen action renames new/X into cur/, where the listing may meet it again.
            known.update(i.key.uidl for i in chunk)
            chunk = []
            if progress is not None:
                progress(consumed)
            consumed = 0
    if chunk:
        outcomes += _commit(config, account, store, source, chunk, action, target, as_closed,
                            created, since, refused, on_chunk)
    if progress is not None and consumed:
        progress(consumed)
    return outcomes


def _commit(config: Config, account: Account, store: Store, source: MailSource,
            chunk: list[Item], action: str, target: str, as_closed: bool, created: set[int],
            since: date | None, refused: set[int], on_chunk: Hook | None) -> list[Outcome]:
    from mailtix.ingest import store_message
    from mailtix.mail.parse import parse

    read = []
    for item in chunk:
        try:
            raw = item.read()
        except FileNotFoundError:
            continue  # deleted by another client since the listing: nothing to lose
        read.append((item, raw, parse(raw)))
    done: list[Outcome] = []
    owed: list[Action] = []
    with store.tx() as conn:
        for item, raw, p in read:
            src = _source(account, item.key)
            if _known(conn, src):
                continue
            if since is not None and p.date and datetime.fromisoformat(p.date).date() < since:
                fetchstate.mark_pop3_seen(conn, account.name, [item.key.uidl])
                continue
            outcome = store_message(conn, config, account, src, raw, p)
            done.append(outcome)
            if as_closed and outcome.ticket_id is not None:
                # History is closed; a later message of the same import must not reopen it,
                # but a ticket that was open before the import stays as it was.
                if outcome.new_ticket:
                    created.add(outcome.ticket_id)
                if outcome.ticket_id in created:
                    tickets.set_field(conn, outcome.ticket_id, "status", "closed",
                                      agent="mailtix", why="imported as closed")
            if action != "none":
                fetchstate.add_action(conn, account.name, item.key.folder, action,
                                      uidl=item.key.uidl, target=target)
                owed.append(Action(item.key, action, target))
    if on_chunk is not None:
        on_chunk("committed", done)
    if owed:
        _replay(account, store, source, refused)
    return done


def _known(conn, src: Source) -> bool:
    from mailtix.store.messages import source_known

    return source_known(conn, src)


def _replay(account: Account, store: Store, source: MailSource, refused: set[int]) -> None:
    """Do the actions owed to this source (this pull's, or a crashed pull's). One the source
    refuses is tried once per pull (`refused` collects them) and parked after MAX_ATTEMPTS
    pulls, like an IMAP server's refusal (`mailtix actions list/retry/drop`)."""
    rows = [r for r in fetchstate.actions(store.conn, account.name) if r["uidl"]
            and r["uidl"].split(":", 1)[0] in _keyspaces(source) and r["id"] not in refused]
    if not rows:
        return
    by_key = {r["uidl"]: r for r in rows}
    done = source.act([Action(Key(r["folder"], uidl=r["uidl"]), r["action"], r["target"])
                       for r in rows])
    done_ids = {int(by_key[a.key.uidl]["id"]) for a in done}
    failed = [int(r["id"]) for r in rows if int(r["id"]) not in done_ids]
    errors = getattr(source, "errors", {})
    with store.tx() as conn:
        fetchstate.done_actions(conn, sorted(done_ids))
        if failed:
            refused.update(failed)
            error = next((errors[r["uidl"]] for r in rows if r["uidl"] in errors),
                         "refused by the source")
            _park(conn, account, failed, error, lambda n: f"{source.name}: {n} action(s)")


def _keyspaces(source: MailSource) -> set[str]:
    keyspace = getattr(source, "keyspace", "")
    return {keyspace} if keyspace else set()


def fetch_maildir(config: Config, account: Account, store: Store, on_chunk: Hook | None = None,
                  progress: Callable[[int], None] | None = None) -> list[Outcome]:
    """One pull of a `protocol = "maildir"` account; post_fetch is done like a mail client
    does it (seen: to cur/ with flag S; move: into the Maildir++ folder; delete: unlink)."""
    from mailtix.sources.maildir import MaildirSource

    server = account.fetch
    assert server is not None and server.path is not None
    source = MaildirSource(server.path, server.folders)
    return pull(config, account, store, source, action=account.post_fetch,
                target=account.move_to, since=account.since, on_chunk=on_chunk,
                progress=progress)


def fetch_pop3(config: Config, account: Account, store: Store, client,
               on_chunk: Hook | None = None, progress: Callable[[int], None] | None = None
               ) -> list[Outcome]:
    """One pull of a POP3 account. post_fetch = "delete" DELEs every listed message the store
    holds, from this fetch or an earlier one whose QUIT never came (DELE is final only then)."""
    from mailtix.sources.pop3 import Pop3Source

    server = account.fetch
    source = Pop3Source(client, server.host if server else "")
    outcomes = pull(config, account, store, source, since=account.since, on_chunk=on_chunk,
                    progress=progress)
    if account.post_fetch == "delete":
        stored = sources.stored_keys(store.conn, account.name)
        source.act([Action(item.key, "delete") for item in source.items()
                    if item.key.uidl in stored])
    return outcomes


def fetch_imap(config: Config, account: Account, store: Store, mailbox,
               on_chunk: Hook | None = None, progress: Callable[[int], None] | None = None
               ) -> list[Outcome]:
    """One pull of an IMAP account. A folder whose UIDVALIDITY and UIDNEXT say nothing is
    new, with no action owed, costs its STATUS only (invariant 3). Each chunk is stored in
    one transaction with the folder's new last UID and its owed actions, and only then are
    the actions done on the server (invariant 1)."""
    from mailtix.sources.imap import ImapSource

    server = account.fetch
    assert server is not None
    source = ImapSource(mailbox, server.folders, host=server.host, since=account.since,
                        select=account.select)
    refused: set[tuple] = set()  # action groups the server refused: not again this pull
    outcomes: list[Outcome] = []
    for folder in source.folders:
        outcomes += _imap_folder(config, account, store, source, folder, refused, on_chunk,
                                 progress)
    return outcomes


def _imap_folder(config: Config, account: Account, store: Store, source: ImapSource,
                 folder: str, refused: set[tuple], on_chunk: Hook | None,
                 progress: Callable[[int], None] | None) -> list[Outcome]:
    uidvalidity, uidnext = source.status(folder)
    known = fetchstate.folder(store.conn, account.name, folder)
    pending = fetchstate.actions(store.conn, account.name, folder)
    last_uid = known[1] if known and known[0] == uidvalidity else 0
    if known and known[0] == uidvalidity and uidnext - 1 <= last_uid and not pending:
        return []
    source.select(folder)
    _imap_actions(account, store, source, folder, uidvalidity, refused)
    outcomes: list[Outcome] = []
    with closing(source.chunks(folder, uidvalidity, source.new_uids(last_uid))) as chunks:
        for chunk, fetched in chunks:
            from mailtix.ingest import store_message

            done: list[Outcome] = []
            with store.tx() as conn:
                for f in fetched:
                    src = _source(account, f.key)
                    if _known(conn, src):
                        continue
                    done.append(store_message(conn, config, account, src, f.raw, f.parsed))
                    if account.post_fetch != "none":
                        fetchstate.add_action(conn, account.name, folder, account.post_fetch,
                                              uidvalidity=uidvalidity, uid=f.key.uid,
                                              target=account.move_to)
                fetchstate.set_folder(conn, account.name, folder, uidvalidity, max(chunk))
            if on_chunk is not None:
                on_chunk("committed", done)
            outcomes += done
            if progress is not None:
                progress(len(chunk))
            _imap_actions(account, store, source, folder, uidvalidity, refused)
    # Mail skipped by `since` or `unseen` below UIDNEXT is settled; do not search it again.
    with store.tx() as conn:
        current = fetchstate.folder(conn, account.name, folder)
        top = max(uidnext - 1, current[1] if current and current[0] == uidvalidity else 0)
        fetchstate.set_folder(conn, account.name, folder, uidvalidity, top)
    return outcomes


def _imap_actions(account: Account, store: Store, source: ImapSource, folder: str,
                  uidvalidity: int, refused: set[tuple]) -> None:
    """Do what is owed in the selected folder. A refused action never holds up the fetch:
    tried once per pull, parked after MAX_ATTEMPTS pulls (`mailtix actions retry/drop`)."""
    rows = fetchstate.actions(store.conn, account.name, folder)
    if not rows:
        return
    stale = [r["id"] for r in rows if r["uidvalidity"] != uidvalidity]
    if stale:  # the UIDs name other messages now (or none); the mail was stored anyway
        with store.tx() as conn:
            fetchstate.done_actions(conn, stale)
    groups: dict[tuple, list] = {}
    for r in rows:
        if r["uidvalidity"] == uidvalidity:
            groups.setdefault((folder, r["action"], r["target"], r["state"]), []).append(r)
    for group_key, group in groups.items():
        if group_key in refused:
            continue
        _folder, action, target, state = group_key
        owed = "expunge" if state == "waiting" else action  # copied or flagged already
        done = source.act([Action(Key(folder, uidvalidity, int(r["uid"])), owed,
                                  _move_target(account, target) if owed == "move" else target)
                           for r in group])
        ids = [int(r["id"]) for r in group]
        if source.errors:
            refused.add(group_key)
            _imap_refused(account, store, group_key, ids, next(iter(source.errors.values())))
            continue
        with store.tx() as conn:
            if done:
                fetchstate.done_actions(conn, ids)
            elif state != "waiting":
                fetchstate.actions_waiting(conn, ids, WAITING)


def _move_target(account: Account, stored: str) -> str:
    """The folder named by the config now: a target fixed in the config applies also to
    moves recorded before the fix."""
    if account.post_fetch == "move" and account.move_to:
        return account.move_to
    return stored


def _imap_refused(account: Account, store: Store, group_key: tuple, ids: list[int],
                  error: str) -> None:
    folder, action, target, _state = group_key
    what = f"{action} to {target!r}" if action == "move" else action
    with store.tx() as conn:
        parked = _park(conn, account, ids, error, lambda n: f"{folder}: {what} of {n} message(s)")
    if parked:
        log.warning("account %s: %s of %d message(s) in %s parked after %d failed runs: "
                    "%s (fix it, then `mailtix actions retry %s`, or `mailtix actions "
                    "drop %s`)", account.name, what, parked, folder, MAX_ATTEMPTS,
                    error, account.name, account.name)
    else:
        log.warning("account %s: %s in %s failed, tried again next run: %s",
                    account.name, what, folder, error)


def _park(conn, account: Account, ids: list[int], error: str,
          what: Callable[[int], str]) -> int:
    """Count one more refusal of the actions `ids`; those refused MAX_ATTEMPTS times are
    parked, with an event `what(number parked): error`. Returns the number parked."""
    parked = fetchstate.actions_failed(conn, ids, error, MAX_ATTEMPTS)
    if parked:
        tickets.event(conn, "server action parked", account=account.name,
                      detail=f"{what(parked)}: {error}"[:500])
    return parked


LOCAL = "local"


def account_for(config: Config, name: str | None) -> Account:
    """--account, else [general] default_account, else the only account, else a built-in
    account "local" (tickets on, no servers) so that deliver and import work without any."""
    if name:
        return config.account(name)
    if config.general.default_account:
        return config.account(config.general.default_account)
    if len(config.accounts) == 1:
        return next(iter(config.accounts.values()))
    if not config.accounts:
        return Account(name=LOCAL, email="")
    from mailtix.errors import UsageError

    raise UsageError(f"which account? there are {len(config.accounts)}: "
                     + ", ".join(sorted(config.accounts)),
                     hint="give --account NAME, or set [general] default_account")


def deliver(config: Config, account: Account, store: Store, source: MailSource) -> Outcome | None:
    """One message from an MTA; None when it was stored before (an MTA retry)."""
    with store.tx() as conn:
        sources.first_delivery(conn, account.name)
    outcomes = pull(config, account, store, source)
    return outcomes[0] if outcomes else None


def history(config: Config, account: Account, store: Store, source: MailSource, *,
            as_closed: bool, progress: Callable[[int], None] | None = None) -> list[Outcome]:
    """`mailtix import`: old mail never gets an autoresponse, whatever the account says."""
    from mailtix.config.model import Autoresponder
    from mailtix.record import replace

    quiet = replace(account, autoresponder=Autoresponder(enabled=False))
    return pull(config, quiet, store, source, as_closed=as_closed, progress=progress)


def baseline(account: Account, store: Store) -> str:
    """Record the mail now on the account's server as seen, importing none of it."""
    from mailtix.mail.baseline import survey

    return record_baseline(account, store, survey(account))


def record_baseline(account: Account, store: Store, seen: Seen) -> str:
    """Write a baseline survey in one transaction."""
    with store.tx() as conn:
        if seen.uidls is not None:
            fetchstate.mark_pop3_seen(conn, account.name, seen.uidls)
        for folder, (validity, last, _n) in seen.folders.items():
            fetchstate.set_folder(conn, account.name, folder, validity, last)
    if seen.uidls is not None:
        return f"{len(seen.uidls)} message(s) recorded as seen"
    return "; ".join(f"{folder}: {n} message(s) recorded as seen"
                     for folder, (_v, _l, n) in seen.folders.items())
