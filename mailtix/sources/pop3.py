"""A POP3 mailbox as a source. Keys are the server's UIDLs as they are: that is how stores
have always keyed POP3 mail (and what `account baseline` records).

POP3 has one action, DELE, and it only takes effect at a clean QUIT: a connection that dies
first deletes nothing. So the delete is not a one-time owed action but a rule done on every
fetch: each message still listed that the store holds is deleted (see intake.fetch_pop3).
"""

from __future__ import annotations

import poplib
from collections.abc import Iterator

from mailtix.sources import Action, Item, Key

CHUNK = 50  # messages read before one commit (POP3 has no sizes-bounded FETCH)


def retr(client: poplib.POP3, number: int) -> bytes:
    _resp, lines, _octets = client.retr(number)
    return b"\r\n".join(lines) + b"\r\n"


class Pop3Source:
    chunk = CHUNK

    def __init__(self, client: poplib.POP3, host: str = "") -> None:
        self.client = client
        self.name = f"pop3 {host}".strip()
        self._numbers: dict[str, int] = {}
        for line in client.uidl()[1]:
            number, _, uidl = line.decode(errors="replace").partition(" ")
            self._numbers[uidl.strip()] = int(number)

    def items(self) -> Iterator[Item]:
        for uidl, number in self._numbers.items():
            yield Item(Key("INBOX", uidl=uidl), lambda n=number: retr(self.client, n))

    def act(self, actions: list[Action]) -> list[Action]:
        for a in actions:
            number = self._numbers.get(a.key.uidl)
            if a.action == "delete" and number is not None:
                self.client.dele(number)
        return actions

    def close(self) -> None:
        pass  # the caller QUITs: that is when the server applies the DELEs
