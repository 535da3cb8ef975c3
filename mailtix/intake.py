"""Pull messages from a source into the store: the one commit-then-act path of POP3 and the
local sources (Maildir, mbox, stdin). IMAP still has its own (mail/fetch_imap.py: UID ranges,
size-bounded chunks, a parse pool); moving it here is the next step.

For each chunk: read the new messages, store them and record the owed server action in one
transaction, then tell the source to act, then forget the action. A crash between commit
and act leaves the action recorded; the next pull does it first (invariant 1). Known keys
are skipped without reading the message (invariant 2).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from mailtix.config.model import Account, Config
from mailtix.ingest import Outcome, store_message
from mailtix.mail.parse import parse
from mailtix.sources import Action, Item, Key, MailSource
from mailtix.store import Store, fetchstate, sources, tickets
from mailtix.store.messages import Source

CHUNK = 100

Hook = Callable[[str, list[Outcome]], None]


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
    from mailtix.mail.fetch_actions import MAX_ATTEMPTS

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
            parked = fetchstate.actions_failed(conn, failed, error, MAX_ATTEMPTS)
            if parked:
                tickets.event(conn, "server action parked", account=account.name,
                              detail=f"{source.name}: {parked} action(s): {error}"[:500])


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
