"""OS locks in the data directory, released by the kernel when the process exits.

run.lock: one `mailtix run` at a time. outbox.lock: one process hands outbox rows to SMTP at a
time (a run's delivery, `send`, `reply`, `send-batch`); without it a cron run could retry a
row that a batch is sending that very moment, and the recipient would get it twice.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailtix.fsutil import private_dir


class Locked(Exception):
    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


@contextmanager
def run_lock(data_dir: Path) -> Iterator[None]:
    with _lock(private_dir(data_dir) / "run.lock", 0.0):
        yield


@contextmanager
def outbox_lock(data_dir: Path, wait: float = 0.0) -> Iterator[None]:
    """Raises Locked when another process still holds it after `wait` seconds."""
    with _lock(private_dir(data_dir) / "outbox.lock", wait):
        yield


@contextmanager
def _lock(path: Path, wait: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not flock_within(fd, wait, poll=0.1):
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            raise Locked(holder or "another process")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def flock_within(fd: int, wait: float, poll: float) -> bool:
    """Take an exclusive flock on `fd`, trying again every `poll` seconds; False when another
    process still holds it after `wait` seconds (0: one try)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
