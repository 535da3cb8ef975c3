"""Actions on the server copy of a stored message: \\Seen, move, trash. Takes a logged-in
imap_tools MailBox (the one seam, mail/clients.py) and speaks raw UID commands through its
imaplib client: imap_tools' own flag() expunges the whole folder after each STORE, which would
remove mail other clients merely marked \\Deleted.

Every action names messages by (folder, UIDVALIDITY, UID); a folder whose UIDVALIDITY changed
is left alone, since its UIDs now name other mail."""

from __future__ import annotations

import re
from dataclasses import dataclass

from imap_tools.utils import encode_folder

from mailtix.errors import NotFound, ProtocolError
from mailtix.mail import imap_ops


@dataclass(frozen=True)
class Folder:
    name: str  # as the server spells it
    delim: str
    flags: tuple[str, ...]


def folders(box) -> list[Folder]:
    return [Folder(f.name, f.delim or "", tuple(f.flags)) for f in box.folder.list()]


def separator(box) -> str:
    """The server's hierarchy separator; '' for a flat namespace."""
    return imap_ops.separator(box.client, getattr(box.client, "host", ""))


def resolve_folder(box, wanted: str) -> str:
    """The existing folder the user means, checked against LIST; an unknown one is an error
    that names the folders there are (nothing is created by a typo)."""
    sep = separator(box)
    name = imap_ops.server_name(wanted.strip(), sep)
    known = [f.name for f in folders(box)]
    if name in known:
        return name
    for k in known:  # INBOX is case-insensitive (RFC 3501 5.1); others are the server's names
        if k.upper() == "INBOX" == name.upper():
            return k
    shown = ", ".join(k.replace(sep, "/") if sep else k for k in sorted(known))
    raise NotFound(f"no folder {wanted!r} on the server (folders: {shown})",
                   hint="give one of these; `/` separates levels")


def trash_folder(box, configured: str = "") -> str:
    """The configured folder, else the one LIST marks \\Trash (RFC 6154), else "Trash",
    made if missing."""
    if configured:
        return resolve_folder(box, configured)
    return special_folder(box, "\\Trash", ("Trash", "Deleted Items", "Deleted Messages"))


def special_folder(box, flag: str, names: tuple[str, ...]) -> str:
    """The folder LIST marks with `flag` (RFC 6154), else one of `names` (any case), else
    names[0], made."""
    found = folders(box)
    for f in found:
        if flag in f.flags:
            return f.name
    wanted = {n.lower() for n in names}
    for f in found:
        if f.name.lower() in wanted:
            return f.name
    box.folder.create(names[0])
    return names[0]


def present(box, folder: str, uidvalidity: int, uids: list[int]) -> list[int]:
    """Select the folder; the UIDs still there, none when the folder was renumbered."""
    from imap_tools.errors import MailboxFolderStatusError

    try:
        status = box.folder.status(folder, ["UIDVALIDITY"])
    except MailboxFolderStatusError:
        return []  # the folder is gone (renamed or deleted in another client)
    if int(status["UIDVALIDITY"]) != uidvalidity or not uids:
        return []
    box.folder.set(folder)
    found = box.uids(f"UID {','.join(map(str, uids))}")
    return [u for u in uids if str(u) in found]


def set_seen(box, folder: str, uidvalidity: int, uids: list[int], seen: bool) -> list[int]:
    targets = present(box, folder, uidvalidity, uids)
    if targets:
        typ, data = box.client.uid("STORE", ",".join(map(str, targets)),
                                   "+FLAGS.SILENT" if seen else "-FLAGS.SILENT", r"(\Seen)")
        _check(typ, data, "UID STORE")
    return targets


def move(box, folder: str, uidvalidity: int, uids: list[int], target: str
         ) -> dict[int, tuple[int, int]]:
    """Move to `target`; returns old UID -> (UIDVALIDITY, UID) in the target, from COPYUID
    (RFC 4315), or by Message-ID where the server gives none (then the caller searches)."""
    targets = present(box, folder, uidvalidity, uids)
    if not targets or target == folder:
        return {}
    client = box.client
    client.untagged_responses.pop("COPYUID", None)
    uidset = ",".join(map(str, targets))
    caps = capabilities(box)
    if "MOVE" in caps:
        typ, data = client.uid("MOVE", uidset, encode_folder(target))
        _check(typ, data, "UID MOVE")
        codes = client.untagged_responses.pop("COPYUID", [])
    else:
        typ, data = client.uid("COPY", uidset, encode_folder(target))
        _check(typ, data, "UID COPY")
        codes = []  # imaplib drops a tagged reply's COPYUID: the caller searches by Message-ID
        typ, data = client.uid("STORE", uidset, "+FLAGS.SILENT", r"(\Deleted)")
        _check(typ, data, "UID STORE")
        _expunge(client, caps, targets)
    out: dict[int, tuple[int, int]] = {}
    for code in codes:
        text = code.decode() if isinstance(code, bytes) else str(code)
        m = re.search(r"(\d+) ([\d:,]+) ([\d:,]+)", text)
        if m:
            pairs = zip(_expand(m.group(2)), _expand(m.group(3)), strict=False)
            out.update({src: (int(m.group(1)), dst) for src, dst in pairs})
    return out


def _expunge(client, caps: set[str], uids: list[int]) -> None:
    """Expunge only our messages: UID EXPUNGE (UIDPLUS), or a plain EXPUNGE while no other
    message of the folder is marked \\Deleted (another client may mean to undelete it); else
    ours stay marked and leave with that client's next expunge."""
    uidset = ",".join(map(str, uids))
    if "UIDPLUS" in caps:
        _check(*client.uid("EXPUNGE", uidset), "UID EXPUNGE")
        return
    typ, data = client.uid("SEARCH", "DELETED")
    flagged = {int(x) for x in b" ".join(d for d in (data or []) if isinstance(d, bytes)).split()}
    if typ == "OK" and not flagged - set(uids):
        _check(*client.expunge(), "EXPUNGE")


def capabilities(box) -> set[str]:
    """Asked after login: imaplib keeps the greeting's list, and servers (Dovecot) announce
    MOVE and UIDPLUS only to a logged-in client."""
    typ, data = box.client.capability()
    words = b" ".join(d for d in (data or []) if isinstance(d, bytes)).decode(errors="replace")
    return {w.upper() for w in words.split()} if typ == "OK" else set(box.client.capabilities)


def find_by_message_id(box, folder: str, message_id: str) -> tuple[int, int] | None:
    """(UIDVALIDITY, UID) of a message in `folder`, for servers without COPYUID."""
    from imap_tools.errors import MailboxFolderStatusError

    if not message_id:
        return None
    try:
        status = box.folder.status(folder, ["UIDVALIDITY"])
    except MailboxFolderStatusError:
        return None  # no such folder (any more)
    box.folder.set(folder)
    typ, data = box.client.uid("SEARCH", "HEADER", "Message-ID", f'"{message_id}"')
    found = (data[0] or b"").split() if typ == "OK" and data else []
    return (int(status["UIDVALIDITY"]), int(found[-1])) if found else None


def _expand(uidset: str) -> list[int]:
    out: list[int] = []
    for part in uidset.split(","):
        lo, _, hi = part.partition(":")
        a, b = int(lo), int(hi or lo)
        out.extend(range(min(a, b), max(a, b) + 1))
    return out


def _check(typ: str, data, command: str) -> None:
    if typ != "OK":
        reply = b" ".join(d for d in (data or []) if isinstance(d, bytes)).decode(errors="replace")
        raise ProtocolError(f"the server refused {command}: {reply[:200]}")
