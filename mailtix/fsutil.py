"""Private directories, atomic file writes, and files written on the user's disk without
following planted symlinks or overwriting what is there."""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from mailtix.errors import MailtixError, UsageError


def private_dir(path: Path) -> Path:
    """Create a directory, and any missing parents, readable only by its owner (mail and
    config are personal data); existing directories keep their mode."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask
    return path


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write via a temporary file and rename, so a crash leaves the old or the new file."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


NAME_MAX = 255  # bytes, per path component, on every file system mail is exported to


def _split_ext(name: str) -> tuple[str, str]:
    """(stem, ".ext") for a short extension worth keeping; (name, "") otherwise."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode()) > 16:
        return name, ""
    return stem, dot + ext


def _cut(text: str, limit: int) -> str:
    return text.encode()[:max(limit, 1)].decode(errors="ignore")


def fit_name(name: str, limit: int = NAME_MAX) -> str:
    """Cut a file name to `limit` UTF-8 bytes on a character boundary, keeping a short
    extension, so a long attachment name is saved instead of failing with ENAMETOOLONG."""
    if len(name.encode()) <= limit:
        return name
    stem, ext = _split_ext(name)
    return _cut(stem, limit - len(ext.encode())) + ext


def unique_names(names: list[str], limit: int = NAME_MAX) -> list[str]:
    """Fitted names, made unique with -1, -2 … before the extension (case-insensitively, for
    the file systems that fold case)."""
    taken: set[str] = set()
    out = []
    for name in names:
        candidate = fit_name(name, limit)
        stem, ext = _split_ext(name)
        n = 0
        while candidate.casefold() in taken:
            n += 1
            suffix = f"-{n}{ext}"
            candidate = _cut(stem, limit - len(suffix.encode())) + suffix
        taken.add(candidate.casefold())
        out.append(candidate)
    return out


class SafeDir:
    """A directory opened without following a symlink, in which files are only ever created
    next to each other: by name, relative to the open descriptor (openat), never by a path
    an attacker could redirect between the check and the write.

    A planted symlink at the directory itself or at a file name is refused or replaced, never
    followed; an existing file is kept unless `force`; files are 0600 and folders 0700 (mail
    is personal data). The parent of the directory must exist: a typo in it is the user's
    to see, not something to create.
    """

    def __init__(self, path: Path, *, create: bool = True, force: bool = False,
                 _fd: int | None = None) -> None:
        self.path = path
        self.force = force
        if _fd is not None:
            self.fd = _fd
            return
        path = Path(os.path.abspath(path))  # "t.mbox" and "." have a parent to open, too
        parent = path.parent
        if not parent.is_dir():
            raise UsageError(f"the folder {parent} does not exist",
                             hint="create it first, or give another path")
        try:
            pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise _write_error(parent, exc) from None
        try:
            self.fd = _open_dir(pfd, path.name, path, create)
        finally:
            os.close(pfd)

    def __enter__(self) -> SafeDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def subdir(self, name: str) -> SafeDir:
        return SafeDir(self.path / name, force=self.force,
                       _fd=_open_dir(self.fd, name, self.path / name, True))

    def exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def is_empty(self) -> bool:
        return not os.listdir(self.fd)

    def check_free(self, names: list[str]) -> None:
        """Refuse before writing anything when a name is taken and `force` is not given."""
        if self.force:
            return
        for name in names:
            if self.exists(name):
                raise UsageError(f"{self.path / name} exists already",
                                 hint="give --force to replace it, or choose another folder")

    @contextmanager
    def create(self, name: str) -> Iterator[BinaryIO]:
        """Write `name` via a temporary file in the same folder; it appears whole on success
        (a link that fails if the name exists, or a rename with `force`), or not at all."""
        if "/" in name or name in ("", ".", ".."):
            raise UsageError(f"not a file name: {name!r}")
        tmp = f".{name[:40]}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=self.fd)
        except OSError as exc:
            raise _write_error(self.path / name, exc) from None
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            self._place(tmp, name)
        except OSError as exc:  # a full disk, or a name another user holds in a sticky folder
            raise _write_error(self.path / name, exc) from None
        finally:
            try:
                os.unlink(tmp, dir_fd=self.fd)
            except FileNotFoundError:
                pass

    def write(self, name: str, data: bytes) -> Path:
        with self.create(name) as fh:
            fh.write(data)
        return self.path / name

    def _place(self, tmp: str, name: str) -> None:
        if self.force:
            # rename replaces a symlink itself, never the file it points to
            os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            return
        try:
            os.link(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
        except FileExistsError:
            raise UsageError(f"{self.path / name} exists already",
                             hint="give --force to replace it, or choose another folder"
                             ) from None
        except PermissionError:  # file systems without hard links (vfat): check, then rename
            if self.exists(name):
                raise UsageError(f"{self.path / name} exists already",
                                 hint="give --force to replace it") from None
            os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)


def _open_dir(parent_fd: int, name: str, shown: Path, create: bool) -> int:
    if create:
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _write_error(shown, exc) from None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent_fd)
    except OSError as exc:
        # O_NOFOLLOW with O_DIRECTORY answers ENOTDIR for a symlink on Linux, ELOOP elsewhere
        if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and _is_link(parent_fd, name)):
            raise UsageError(f"{shown} is a symbolic link; give the real folder") from None
        if exc.errno == errno.ENOTDIR:
            raise UsageError(f"{shown} is not a folder") from None
        raise UsageError(f"cannot open the folder {shown}: {exc.strerror}") from None
    st = os.fstat(fd)
    if st.st_uid not in (os.getuid(), 0):
        os.close(fd)
        raise UsageError(f"{shown} belongs to another user; mail is not written there",
                         hint="choose a folder of your own")
    return fd


_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)


def write_mbox(fh: BinaryIO, raws: Iterable[bytes], when: float | None = None) -> int:
    """mboxrd: each message after a `From ` line, every `>*From ` line quoted with one more
    `>` (so readers that unquote get the bytes back), a blank line between messages."""
    stamp = time.asctime(time.gmtime(when)).encode()
    n = 0
    for raw in raws:
        fh.write(b"From MAILER-DAEMON " + stamp + b"\n")
        body = _FROM_LINE.sub(rb">\1", raw)
        fh.write(body)
        if not body.endswith(b"\n"):
            fh.write(b"\n")
        fh.write(b"\n")
        n += 1
    return n


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


class WriteError(MailtixError):
    """A file on the user's disk could not be written (nothing half-written is left)."""


def _write_error(path: Path, exc: OSError) -> MailtixError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return WriteError(f"no space left to write {path}; nothing was written",
                          hint="free space there, or choose another folder")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return UsageError(f"not allowed to write {path} ({exc.strerror})",
                          hint="choose a folder of your own")
    return WriteError(f"cannot write {path}: {exc.strerror or exc}")
