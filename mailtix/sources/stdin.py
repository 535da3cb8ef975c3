"""One message on standard input, as an MTA hands it to `mailtix deliver` (Postfix pipe,
an alias `|mailtix deliver`, .forward, procmail)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from mailtix.sources import Action, Item
from mailtix.sources.mbox import content_key


class StdinSource:
    """The key is the content's hash: an MTA that retries after we committed but before it saw
    our exit status hands us the same bytes, which are then known and not stored again."""

    name = "stdin"

    def __init__(self, stream: BinaryIO, folder: str = "INBOX") -> None:
        raw = stream.read()
        # Postfix `pipe` with flag F, procmail and .forward may prepend the mbox "From " line.
        if raw.startswith(b"From ") and b"\n" in raw:
            first, rest = raw.split(b"\n", 1)
            if b":" not in first.split(b" ", 2)[1]:
                raw = rest
        self.raw = raw
        self.folder = folder

    def items(self) -> Iterator[Item]:
        yield Item(content_key(self.raw, self.folder), lambda: self.raw, len(self.raw))

    def act(self, actions: list[Action]) -> list[Action]:
        return actions  # the MTA learns of the commit from our exit status

    def close(self) -> None:
        pass
