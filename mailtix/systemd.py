"""A oneshot service plus timer for `mailtix run`, for systemd users who prefer it to cron."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

from mailtix.errors import UsageError

SPAN = re.compile(r"^\d+\s*(s|sec|m|min|h|hr|d)$")


def executable() -> list[str]:
    found = shutil.which("mailtix")
    return [os.path.abspath(found)] if found else [sys.executable, "-m", "mailtix"]


def _quote(arg: str) -> str:
    """An argument for ExecStart/Environment: systemd splits on spaces like a shell and
    expands %-specifiers."""
    arg = arg.replace("%", "%%")
    if re.fullmatch(r"[\w@%+=:,./-]+", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _seconds(interval: str) -> int:
    m = SPAN.match(interval.strip())
    if not m:
        raise UsageError(f"--interval takes a systemd time span such as 30s, 1min, 5min, 1h; "
                         f"got {interval!r}")
    n = int(re.match(r"\d+", interval.strip()).group())  # type: ignore[union-attr]
    return n * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}[m[1]]


def command(config: Path) -> list[str]:
    """The run command with the config file pinned as an absolute path (the data dir goes in
    MAILTIX_DATA): cron and systemd start it with another HOME and environment than the shell
    that printed it."""
    return [*executable(), "--config", str(config.absolute()), "run", "--quiet"]


def units(interval: str = "1min", user: bool = True, config: Path | None = None,
          data_dir: Path | None = None) -> dict[str, str]:
    _seconds(interval)
    argv = command(config) if config is not None else [*executable(), "run", "--quiet"]
    env = (f"Environment={_quote(f'MAILTIX_DATA={data_dir.absolute()}')}\n"
           if data_dir is not None else "")
    service = (
        "[Unit]\nDescription=mailtix: fetch mail into tickets, deliver the outbox\n"
        "After=network-online.target\nWants=network-online.target\n\n"
        "[Service]\nType=oneshot\n"
        f"ExecStart={' '.join(_quote(a) for a in argv)}\n{env}"
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


def cron_line(interval: str, config: Path, data_dir: Path) -> str:
    """The crontab line for the same schedule; cron cannot run more often than each minute."""
    seconds = _seconds(interval)
    minutes = max(1, seconds // 60)
    if minutes == 1:
        when = "* * * * *"
    elif minutes < 60:
        when = f"*/{minutes} * * * *"
    elif minutes < 1440:
        when = f"0 */{minutes // 60} * * *" if minutes // 60 > 1 else "0 * * * *"
    else:
        when = f"0 0 */{minutes // 1440} * *" if minutes // 1440 > 1 else "0 0 * * *"
    # NAME= must stay unquoted for the shell to take it as an assignment
    line = f"MAILTIX_DATA={shlex.quote(str(data_dir.absolute()))} " + " ".join(
        shlex.quote(a) for a in command(config))
    return f"{when} " + line.replace("%", "\\%")  # cron turns a bare % into a newline


def unit_dir(user: bool) -> Path:
    if user:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "systemd" / "user"
    return Path("/etc/systemd/system")


def install(interval: str, user: bool, config: Path, data_dir: Path) -> list[Path]:
    folder = unit_dir(user)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in units(interval, user, config, data_dir).items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written
