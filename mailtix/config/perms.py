"""Refuse config files and a data dir that others can change (ssh's StrictModes, fetchmail's
rc-file check): a config names password commands that run as the invoking user, and the
data dir holds the store that decides what is sent."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from mailtix.errors import Problem


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def problems(path: Path, *, directory: bool = False,
             st: os.stat_result | None = None) -> list[Problem]:
    """What is wrong with one file or folder's owner and mode; [] when it is private enough.
    Owned by root or by the user running mailtix is fine; group/other write is not. `st` is
    the fstat of an already opened file, so what is checked is what is read."""
    if st is None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return []
        except OSError as exc:
            return [Problem(str(path), "", f"cannot check its permissions: {exc.strerror}")]
    out = []
    me = os.geteuid()
    if st.st_uid not in (0, me):
        out.append(Problem(
            str(path), "",
            f"owned by {_owner_name(st.st_uid)!r}, not by {_owner_name(me)!r} or root: that user "
            f"can change what mailtix does as you; fix: chown {_owner_name(me)} {path}"))
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002)) if mode & bit)
        fix = "chmod 700" if directory else "chmod 600"
        out.append(Problem(str(path), "", f"writable by {who} (mode {mode:04o}); "
                                          f"fix: {fix} {path}"))
    return out
