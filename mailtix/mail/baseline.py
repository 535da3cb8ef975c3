"""Survey what is already in a mailbox, so that it can be recorded as seen without importing it
(no first-run flood). Recording it is `intake.record_baseline`: mail/ never touches the store."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailtix import secrets
from mailtix.config.model import Account
from mailtix.errors import UsageError
from mailtix.mail import clients


@dataclass
class Seen:
    """What the server holds now: POP3 UIDLs, or per IMAP folder (UIDVALIDITY, last UID,
    message count)."""

    uidls: list[str] | None = None
    folders: dict[str, tuple[int, int, int]] = field(default_factory=dict)


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
