"""Logging to stderr by verbosity, and to a rotating file in the platform's log dir."""

from __future__ import annotations

import logging
import os
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

import platformdirs

_done = False


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


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from mailtix.secrets import known_secrets, redact

        secrets = known_secrets()
        if secrets:
            record.msg = redact(record.getMessage(), secrets)
            record.args = ()
        return True


def log_dir() -> Path:
    return Path(os.environ.get("MAILTIX_LOG_DIR") or platformdirs.user_log_dir("mailtix"))


def setup(verbosity: int) -> None:
    global _done
    root = logging.getLogger("mailtix")
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    if _done:
        for h in root.handlers:
            if isinstance(h, _Stderr):
                h.setLevel(level)
        return
    _done = True
    root.setLevel(logging.DEBUG)
    stream = _Stderr()
    stream.setLevel(level)
    stream.setFormatter(logging.Formatter("mailtix: %(message)s"))
    stream.addFilter(_Redact())
    root.addHandler(stream)
    try:
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler = RotatingFileHandler(folder / "mailtix.log", maxBytes=1_000_000, backupCount=5)
    except OSError:
        return  # a read-only home must not stop cron runs
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Redact())
    root.addHandler(handler)
