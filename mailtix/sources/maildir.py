"""A local Maildir (one that Postfix, fetchmail or Dovecot's LDA delivers to) as a source.

Keys are the file's unique name, the part before ":2," (maildir.txt, D. J. Bernstein): a mail
client renames new/X to cur/X:2,S when it reads a message, so the name before the colon stays
the message's identity however its flags change. Folders other than INBOX are Maildir++
subfolders (".Name" below the root), as Dovecot lays them out.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from mailtix.sources import Action, Item, Key, SourceError

INFO = ":2,"
log = logging.getLogger("mailtix.maildir")


def unique(name: str) -> str:
    return name.split(":", 1)[0]


def folder_path(root: Path, folder: str) -> Path:
    """INBOX is the root; "Archive/2024" is root/.Archive.2024 (Maildir++)."""
    if folder.upper() == "INBOX":
        return root
    from imap_tools.imap_utf7 import utf7_encode

    return root / ("." + utf7_encode(folder).decode().replace("/", "."))


def is_maildir(path: Path) -> bool:
    return all((path / sub).is_dir() for sub in ("cur", "new", "tmp"))


class MaildirSource:
    def __init__(self, root: Path, folders: tuple[str, ...] = ("INBOX",),
                 keyspace: str = "maildir") -> None:
        self.root = root
        self.folders = folders
        self.keyspace = keyspace
        self.name = f"maildir {root}"
        self.errors: dict[str, str] = {}  # key -> why its last action failed

    def key(self, folder: str, name: str) -> Key:
        return Key(folder, uidl=f"{self.keyspace}:{folder}/{unique(name)}")

    def items(self) -> Iterator[Item]:
        for folder in self.folders:
            box = folder_path(self.root, folder)
            if not is_maildir(box):
                raise SourceError(f"{box} is not a Maildir (it needs cur/, new/ and tmp/)",
                                  hint="check the account's fetch.path and folders")
            # new/ before cur/, each in delivery order: Maildir names start with the time.
            for sub in ("new", "cur"):
                try:
                    names = sorted(os.listdir(box / sub))
                except OSError as exc:
                    raise SourceError(f"cannot read {box / sub}: {exc.strerror}") from None
                for name in names:
                    if name.startswith("."):
                        continue
                    yield Item(self.key(folder, name), _reader(box, name), 0)

    def count(self) -> int:
        total = 0
        for folder in self.folders:
            box = folder_path(self.root, folder)
            for sub in ("new", "cur"):
                try:
                    total += sum(not n.startswith(".") for n in os.listdir(box / sub))
                except OSError:
                    pass
        return total

    def act(self, actions: list[Action]) -> list[Action]:
        done = []
        for a in actions:
            box = folder_path(self.root, a.key.folder)
            try:
                path = find(box, a.key.uidl.rsplit("/", 1)[-1])
                if path is not None:
                    if a.action == "seen":
                        add_flag(path, "S")
                    elif a.action == "delete":
                        path.unlink(missing_ok=True)
                    elif a.action == "move":
                        move(path, folder_path(self.root, a.target))
            except OSError as exc:
                # Stays owed and is tried again next run; the mail itself is stored, and a
                # folder we may not rename in must not hold up new mail.
                why = f"{a.action}: {exc.strerror or exc}"
                self.errors[a.key.uidl] = why
                log.warning("%s: %s of %s failed", self.root, why, a.key.uidl)
                continue
            done.append(a)
        return done

    def close(self) -> None:
        pass


def _reader(box: Path, name: str):
    def read() -> bytes:
        # Another client may have renamed it (flags) since the listing: look it up again.
        try:
            for candidate in (box / "new" / name, box / "cur" / name):
                try:
                    return candidate.read_bytes()
                except FileNotFoundError:
                    continue
            found = find(box, unique(name))
            if found is None:
                raise FileNotFoundError(f"{box}: {name} vanished")
            return found.read_bytes()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise SourceError(f"cannot read {box}/…/{name}: {exc.strerror or exc}",
                              hint="run mailtix as the Maildir's owner (or give it read "
                                   "access)") from None

    return read


def find(box: Path, key: str) -> Path | None:
    """The message file with this unique name, in new/ or cur/, whatever its flags."""
    for sub in ("new", "cur"):
        folder = box / sub
        exact = folder / key
        if exact.exists():
            return exact
        try:
            for name in os.listdir(folder):
                if unique(name) == key:
                    return folder / name
        except FileNotFoundError:
            continue
    return None


def flags_of(name: str) -> str:
    _, sep, info = name.partition(INFO)
    return info if sep else ""


def add_flag(path: Path, flag: str) -> Path:
    """Move to cur/ with the flag added, as a mail client does when it reads a message."""
    name = path.name
    flags = "".join(sorted(set(flags_of(name)) | {flag}))
    target = path.parent.parent / "cur" / f"{unique(name)}{INFO}{flags}"
    if target != path:
        os.rename(path, target)
    return target


def move(path: Path, box: Path) -> Path:
    """Into another Maildir folder, same name and flags (rename(2): atomic on one disk)."""
    if not is_maildir(box):
        owner = box.parent.stat()
        for sub in ("", "cur", "new", "tmp"):
            (box / sub).mkdir(exist_ok=True)
            _same_owner(box / sub, owner)
        # Maildir++: Dovecot treats a folder as one when it holds this file.
        (box / "maildirfolder").touch()
        _same_owner(box / "maildirfolder", owner)
    target = box / path.parent.name / path.name
    os.rename(path, target)
    return target


def _same_owner(path: Path, like: os.stat_result) -> None:
    """A folder we add must stay usable for the Maildir's owner (the IMAP server's user)."""
    if os.geteuid() == 0 and (like.st_uid, like.st_gid) != (0, 0):
        os.chown(path, like.st_uid, like.st_gid)


_counter = itertools.count()


def deliver(box: Path, raw: bytes) -> Path:
    """Write a message the Maildir way (tmp/, fsync, rename into new/): for examples and
    tests, and the safe way to hand a Maildir a message."""
    host = socket.gethostname().replace("/", "_").replace(":", "_")
    name = f"{time.time():.6f}.P{os.getpid()}Q{next(_counter)}.{host}"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    tmp = box / "tmp" / name
    with open(tmp, "wb") as fh:
        fh.write(raw)
        fh.flush()
        os.fsync(fh.fileno())
    final = box / "new" / name
    os.rename(tmp, final)
    return final
