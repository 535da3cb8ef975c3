"""Record what is already in a mailbox as seen, without importing it (no first-run flood)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailtix import secrets
from mailtix.config.model import Account
from mailtix.errors import UsageError
from mailtix.mail import clients
from mailtix.store import Store, fetchstate


@dataclass
class Seen:
    """What the server holds now: POP3 UIDLs, or per IMAP folder (UIDVALIDITY, last UID,
    message count)."""

    uidls: list[str] | None = None
    folders: dict[str, tuple[int, int, int]] = field(default_factory=dict)


def baseline(account: Account, store: Store) -> str:
    return record(account, store, survey(account))


def survey(account: Account) -> Seen:
    """Ask the server; writes nothing, so a failure half-way leaves no partial baseline."""
    server = account.fetch
    if server is None:
        raise UsageError(f"account {account.name!r} has no fetch server")
    if server.protocol == "maildir":
        from mailtix.sources.maildir import MaildirSource

        assert server.path is not None
        # Kept with the POP3 UIDLs: the keys a maildir account's pull then skips.
        return Seen(uidls=[item.key.uidl
                           for item in MaildirSource(server.path, server.folders).items()])
    password = secrets.lookup(account, "fetch", server)
    if server.protocol == "pop3":
        client = clients.open_pop3(server, password)
        try:
            return Seen(uidls=[line.decode(errors="replace").partition(" ")[2].strip()
                               for line in client.uidl()[1]])
        finally:
            client.quit()
    mailbox = clients.open_imap(server, password, folder=None)
    seen = Seen()
    try:
        for folder in server.folders:
            status = mailbox.folder.status(folder, ["UIDVALIDITY", "UIDNEXT", "MESSAGES"])
            seen.folders[folder] = (int(status["UIDVALIDITY"]), int(status["UIDNEXT"]) - 1,
                                    int(status.get("MESSAGES", 0)))
    finally:
        mailbox.logout()
    return seen


def record(account: Account, store: Store, seen: Seen) -> str:
    """Write the survey in one transaction."""
    with store.tx() as conn:
        if seen.uidls is not None:
            fetchstate.mark_pop3_seen(conn, account.name, seen.uidls)
        for folder, (validity, last, _n) in seen.folders.items():
            fetchstate.set_folder(conn, account.name, folder, validity, last)
    if seen.uidls is not None:
        return f"{len(seen.uidls)} message(s) recorded as seen"
    return "; ".join(f"{folder}: {n} message(s) recorded as seen"
                     for folder, (_v, _l, n) in seen.folders.items())
