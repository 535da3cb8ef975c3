"""Every way mail comes in, behind one interface: a source lists messages by a stable key,
reads one on demand, and does its server action only when told the message is committed.

`mailtix.intake` pulls from a source and commits; a source never imports ingest, store or cli
(DESIGN.md's house table). The order that keeps invariant 1 lives in intake, once:
list → read → commit (store rows + pending action, one transaction) → `act`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from mailtix.errors import MailtixError
from mailtix.record import Record


class Key(Record):
    """A message's idempotency key within its account. Local sources set `uidl` to a
    namespaced name ("maildir:INBOX/<unique>", "sha256:<hex>") so that it shares the store's
    (account, uidl) index with POP3's UIDLs without clashing."""

    folder: str = "INBOX"
    uidvalidity: int = 0
    uid: int = 0
    uidl: str = ""


class Item(Record):
    """One message a source offers: its key and a reader (a listing reads no bodies, so a
    scan of known mail costs no I/O beyond the listing)."""

    key: Key
    read: Callable[[], bytes]
    size: int = 0


class Action(Record):
    """A server action owed for a committed message (post_fetch: seen, move, delete)."""

    key: Key
    action: str
    target: str = ""


class MailSource(Protocol):
    """What intake needs of a source."""

    name: str  # for messages: "maildir /var/mail/x", "mbox t.mbox", "stdin"

    def items(self) -> Iterator[Item]: ...

    def act(self, actions: list[Action]) -> list[Action]:
        """Do the actions for committed messages; return those done (or moot: the message is
        gone). A message another client renamed meanwhile is found again by its key."""
        ...

    def close(self) -> None: ...


class SourceError(MailtixError):
    """A source cannot be read (missing folder, permissions): the account's failure, with a
    one-line message, like a server that cannot be reached."""


__all__ = ["Action", "Item", "Key", "MailSource", "SourceError"]
