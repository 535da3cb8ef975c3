"""Logging to stderr by verbosity, and to a rotating file in the platform's log dir."""

from __future__ import annotations

import logging
import os
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

import platformdirs


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
    """Stderr by verbosity, and a rotating file in the log dir (re-targeted if it changed)."""
    root = logging.getLogger("mailtix")
    root.setLevel(logging.DEBUG)
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    stream = next((h for h in root.handlers if isinstance(h, _Stderr)), None)
    if stream is None:
        stream = _Stderr()
        stream.setFormatter(logging.Formatter("mailtix: %(message)s"))
        stream.addFilter(_Redact())
        root.addHandler(stream)
    stream.setLevel(level)
    target = log_dir() / "mailtix.log"
    current = next((h for h in root.handlers if isinstance(h, RotatingFileHandler)), None)
    if current is not None:
        if Path(current.baseFilename) == target.absolute():
            return
        root.removeHandler(current)
        current.close()
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler = RotatingFileHandler(target, maxBytes=1_000_000, backupCount=5)
    except OSError:
        return  # a read-only home must not stop cron runs
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Redact())
    root.addHandler(handler)
