"""Record what is already in a mailbox as seen, without importing it (no first-run flood)."""

from __future__ import annotations

from mailtix import secrets
from mailtix.config.model import Account
from mailtix.errors import UsageError
from mailtix.mail import clients
from mailtix.store import Store, fetchstate


def baseline(account: Account, store: Store) -> str:
    server = account.fetch
    if server is None:
        raise UsageError(f"account {account.name!r} has no fetch server")
    if server.protocol == "maildir":
        from mailtix.sources.maildir import MaildirSource

        assert server.path is not None
        keys = [item.key.uidl for item in MaildirSource(server.path, server.folders).items()]
        with store.tx() as conn:  # the keys the first run then skips (intake reads them)
            fetchstate.mark_pop3_seen(conn, account.name, keys)
        return f"{len(keys)} message(s) recorded as seen"
    password = secrets.lookup(account, "fetch", server)
    if server.protocol == "pop3":
        client = clients.open_pop3(server, password)
        try:
            uidls = [line.decode(errors="replace").partition(" ")[2].strip()
                     for line in client.uidl()[1]]
        finally:
            client.quit()
        with store.tx() as conn:
            fetchstate.mark_pop3_seen(conn, account.name, uidls)
        return f"{len(uidls)} message(s) recorded as seen"
    mailbox = clients.open_imap(server, password, folder=None)
    parts = []
    try:
        for folder in server.folders:
            status = mailbox.folder.status(folder, ["UIDVALIDITY", "UIDNEXT", "MESSAGES"])
            with store.tx() as conn:
                fetchstate.set_folder(conn, account.name, folder, int(status["UIDVALIDITY"]),
                                      int(status["UIDNEXT"]) - 1)
            parts.append(f"{folder}: {status.get('MESSAGES', 0)} message(s) recorded as seen")
    finally:
        mailbox.logout()
    return "; ".join(parts)
