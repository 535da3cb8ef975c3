"""IMAP commands that must respect what the server announces: its capabilities after login,
its hierarchy separator, and other clients' mail marked \\Deleted.

A plain EXPUNGE removes every \\Deleted message of the folder, also those another client
marked and meant to keep until it expunges itself (or to undelete). So mailtix expunges with
UID EXPUNGE (UIDPLUS) and moves with MOVE where the server offers them; without UIDPLUS it
expunges only while no foreign message is marked \\Deleted, and otherwise leaves its own
flagged for a later run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mailtix.errors import NetworkError

_LIST_DELIM = re.compile(rb'\([^)]*\) (?:"((?:[^"\\]|\\.)*)"|NIL)', re.I)


def check(result: tuple, command: str, host: str) -> list:
    typ, data = result
    if typ != "OK":
        reply = b" ".join(x for x in data if isinstance(x, bytes)).decode(errors="replace")
        raise NetworkError(f"{host}: {command} failed: {reply}", host, command, reply)
    return data


def uid_set(uids: Iterable[int]) -> str:
    """Compact UID set: 1:5,8,10:12."""
    out, start, prev = [], None, None
    for u in uids:
        if start is None:
            start = prev = u
        elif u == prev + 1:
            prev = u
        else:
            out.append(f"{start}:{prev}" if start != prev else str(start))
            start = prev = u
    if start is not None:
        out.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(out)


def refresh_capabilities(client) -> tuple[str, ...]:
    """The capabilities valid after login. Servers (Dovecot among them) announce UIDPLUS and
    MOVE only once authenticated, while imaplib keeps the list it read before LOGIN."""
    codes = client.untagged_responses.pop("CAPABILITY", None)
    line = codes[-1] if codes else None
    if not line:
        typ, data = client.capability()
        line = data[-1] if typ == "OK" and data else None
    if line:
        text = line.decode("ascii", "replace") if isinstance(line, bytes) else str(line)
        client.capabilities = tuple(text.upper().split())
    return tuple(client.capabilities)


def separator(client, host: str) -> str:
    """The hierarchy separator from `LIST "" ""` ('' for a flat namespace)."""
    data = check(client.list('""', '""'), "LIST", host)
    for line in data:
        if isinstance(line, bytes):
            m = _LIST_DELIM.match(line)
            if m:
                return (m.group(1) or b"").replace(b"\\", b"").decode("ascii", "replace")
    return "/"


def server_name(folder: str, sep: str) -> str:
    """A configured folder name (levels written with '/', or with the server's own
    separator) in the server's own notation."""
    if not sep:  # a flat namespace: the name is the name
        return folder
    parts = [p for p in re.split(r"/" if sep == "/" else rf"/|{re.escape(sep)}", folder) if p]
    return sep.join(parts)


def expunge(client, uids: list[int], host: str) -> bool:
    """Expunge our messages (already flagged \\Deleted). True when done; False when the
    server lacks UIDPLUS and other messages are flagged too: ours then stay flagged."""
    if not uids:
        return True
    if "UIDPLUS" in client.capabilities:
        check(client.uid("EXPUNGE", uid_set(uids)), "UID EXPUNGE", host)
        return True
    data = check(client.uid("SEARCH", "DELETED"), "UID SEARCH", host)
    flagged = {int(x) for x in b" ".join(d for d in data if isinstance(d, bytes)).split()}
    if flagged - set(uids):
        return False
    check(client.expunge(), "EXPUNGE", host)
    return True


def move(client, uids: list[int], target: str, host: str) -> bool:
    """Move our messages to target (a server name). True when they left the folder; False
    when copied and flagged but not yet expunged (no UIDPLUS, see expunge)."""
    from imap_tools.utils import encode_folder

    uidset = uid_set(uids)
    if "MOVE" in client.capabilities:
        check(client.uid("MOVE", uidset, encode_folder(target)), "UID MOVE", host)
        return True
    check(client.uid("COPY", uidset, encode_folder(target)), "UID COPY", host)
    check(client.uid("STORE", uidset, "+FLAGS.SILENT", r"(\Deleted)"), "UID STORE", host)
    return expunge(client, uids, host)


def ensure_folder(mailbox, name: str, host: str) -> bool:
    """Create the folder unless it exists; True when it was created."""
    from imap_tools.utils import encode_folder

    if mailbox.folder.exists(name):
        return False
    check(mailbox.client._simple_command("CREATE", encode_folder(name)), "CREATE", host)
    return True
