"""A oneshot service plus timer for `mailtix run`, for systemd users who prefer it to cron."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from mailtix.errors import UsageError

SPAN = re.compile(r"^\d+\s*(s|sec|m|min|h|hr|d)$")


def executable() -> str:
    found = shutil.which("mailtix")
    return found or f"{sys.executable} -m mailtix"


def units(interval: str = "1min", user: bool = True, config: str | None = None
          ) -> dict[str, str]:
    if not SPAN.match(interval.strip()):
        raise UsageError(f"--interval takes a systemd time span such as 30s, 1min, 5min, 1h; "
                         f"got {interval!r}")
    env = f"Environment=MAILTIX_CONFIG={config}\n" if config else ""
    service = (
        "[Unit]\nDescription=mailtix: fetch mail into tickets, deliver the outbox\n"
        "After=network-online.target\nWants=network-online.target\n\n"
        "[Service]\nType=oneshot\n"
        f"ExecStart={executable()} run --quiet\n{env}"
        "# a run that finds another one active exits 0 at once; no overlap to guard here\n"
        "Nice=5\nTimeoutStartSec=15min\n"
        + ("" if user else "User=mailtix\n")
    )
    timer = (
        f"[Unit]\nDescription=Run mailtix every {interval}\n\n"
        f"[Timer]\nOnBootSec=1min\nOnUnitActiveSec={interval}\nAccuracySec=5s\n"
        "Persistent=true\n\n[Install]\nWantedBy=timers.target\n"
    )
    return {"mailtix.service": service, "mailtix.timer": timer}


def unit_dir(user: bool) -> Path:
    if user:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "systemd" / "user"
    return Path("/etc/systemd/system")


def install(interval: str, user: bool, config: str | None) -> list[Path]:
    folder = unit_dir(user)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in units(interval, user, config).items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written
