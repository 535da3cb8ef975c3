"""Logging to stderr by verbosity, and to a rotating file in the platform's log dir."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (test runners and daemons swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _Brief(logging.Formatter):
    """One line per record on stderr: a traceback only when the handler shows debug records
    (--debug); the log file keeps it."""

    def __init__(self, fmt: str, handler: logging.Handler) -> None:
        super().__init__(fmt)
        self.handler = handler

    def format(self, record: logging.LogRecord) -> str:
        if self.handler.level <= logging.DEBUG or not record.exc_info:
            return super().format(record)
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text = saved


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from mailtix.secrets import known_secrets, redact

        secrets = known_secrets()
        if secrets:
            record.msg = redact(record.getMessage(), secrets)
            record.args = ()
        return True


class RotatingFile(logging.FileHandler):
    """A size-rotated log (mailtix.log, .1 ... .N) that opens its file at the first record.

    Not logging.handlers.RotatingFileHandler: importing that module (with pickle, socket,
    queue) and opening the file on every command cost more than a quiet cron run's own work.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        super().__init__(path, encoding="utf-8", delay=True)
        self.max_bytes, self.backups = max_bytes, backups

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.stream is None:
                os.makedirs(os.path.dirname(self.baseFilename), mode=0o700, exist_ok=True)
            elif self.stream.tell() >= self.max_bytes:
                self._rotate()
        except OSError:
            return
        super().emit(record)

    def _rotate(self) -> None:
        self.stream.close()
        self.stream = None  # reopened by FileHandler.emit
        base = self.baseFilename
        for i in range(self.backups - 1, 0, -1):
            if os.path.exists(f"{base}.{i}"):
                os.replace(f"{base}.{i}", f"{base}.{i + 1}")
        os.replace(base, f"{base}.1")

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 -- logging's name
        pass  # the log file is best effort: a full disk or read-only home must not stop a run


def log_dir() -> Path:
    env = os.environ.get("MAILTIX_LOG_DIR")
    if env:
        return Path(env)
    import platformdirs  # not needed when the location is given

    return Path(platformdirs.user_log_dir("mailtix"))


def setup(verbosity: int) -> None:
    """Stderr by verbosity, and a rotating file in the log dir (re-targeted if it changed)."""
    root = logging.getLogger("mailtix")
    root.setLevel(logging.DEBUG)
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    stream = next((h for h in root.handlers if isinstance(h, _Stderr)), None)
    if stream is None:
        stream = _Stderr()
        stream.setFormatter(_Brief("mailtix: %(message)s", stream))
        stream.addFilter(_Redact())
        root.addHandler(stream)
    stream.setLevel(level)
    target = log_dir() / "mailtix.log"
    current = next((h for h in root.handlers if isinstance(h, RotatingFile)), None)
    if current is not None:
        if Path(current.baseFilename) == target.absolute():
            return
        root.removeHandler(current)
        current.close()
    # A read-only home must not stop cron runs: a record that cannot be written is dropped
    # (logging's handleError), the command goes on.
    handler = RotatingFile(target, max_bytes=1_000_000, backups=5)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Redact())
    root.addHandler(handler)
