"""An mbox file (Thunderbird's folders, another system's export) as a read-only source.

Keys are the SHA-256 of each message's bytes: an mbox has no stable ids, and positions shift
when the file grows, so the content itself is the key; importing the same file twice finds
every message known. Nothing is done to the file after the commit.
"""

from __future__ import annotations

import hashlib
import mailbox
from collections.abc import Iterator
from pathlib import Path

from mailtix.sources import Action, Item, Key, SourceError


def content_key(raw: bytes, folder: str = "INBOX") -> Key:
    return Key(folder, uidl=f"sha256:{hashlib.sha256(raw).hexdigest()}")


class MboxSource:
    def __init__(self, path: Path, folder: str = "INBOX") -> None:
        self.path = path
        self.folder = folder
        self.name = f"mbox {path}"
        if not path.is_file():
            raise SourceError(f"{path}: no such mbox file")
        try:
            self._box = mailbox.mbox(path, create=False)
            self._keys = self._box.keys()  # scans the file once for the "From " lines
        except (OSError, mailbox.Error) as exc:
            raise SourceError(f"{path}: cannot read as mbox ({exc})") from None

    def count(self) -> int:
        return len(self._keys)

    def items(self) -> Iterator[Item]:
        for k in self._keys:
            raw = self._box.get_bytes(k)
            yield Item(content_key(raw, self.folder), lambda raw=raw: raw, len(raw))

    def act(self, actions: list[Action]) -> list[Action]:
        return actions  # an import leaves the file as it is

    def close(self) -> None:
        self._box.close()
