"""Write CLI-managed accounts (accounts.d/NAME.toml) and the starter config.

config.toml itself is never rewritten: it is the admin's, comments and all.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from mailtix.config.load import load
from mailtix.config.model import Config
from mailtix.config.schema import ACCOUNT
from mailtix.config.validate import NAME, Checker
from mailtix.errors import ConfigError, UsageError
from mailtix.fsutil import atomic_write, private_dir

STARTER = """\
# mailtix configuration. Every key is documented in mailtix-config(5) and in
# examples/config.toml. Accounts added with `mailtix account add` live one file each
# in accounts.d/ beside this file, so this file is never rewritten by mailtix.

[general]
# default_account = "support"
subject_tag = "[Ticket#{number}]"
timeout = 20
# signature = "Example Ltd · support@example.com"

# [queues.support]
# description = "first-level support"

# [accounts.support]
# email = "support@example.com"
# name = "Example Support"
# [accounts.support.fetch]
# protocol = "imap"
# host = "imap.example.com"
# [accounts.support.smtp]
# host = "smtp.example.com"
# tls = "starttls"
"""


def write_starter(path: Path, force: bool = False) -> Path:
    if path.exists() and not force:
        raise UsageError(f"{path} exists already", hint="use --force to overwrite it")
    private_dir(path.parent)
    atomic_write(path, STARTER.encode())
    private_dir(path.parent / "accounts.d")
    return path


def account_file(config: Config, name: str) -> Path:
    return config.accounts_dir / f"{name}.toml"


def save_account(config: Config, name: str, table: dict[str, Any], *, new: bool) -> Path:
    """Validate one account table together with the rest of the config, then write it."""
    if not NAME.match(name):
        raise UsageError(f"bad account name {name!r}: use letters, digits, '.', '_', '-'")
    if new and name in config.accounts:
        raise UsageError(f"account {name!r} exists already ({config.accounts[name].source})")
    file = account_file(config, name)
    checker = Checker(file)
    checker.table(table, ACCOUNT, f"accounts.{name}")
    if checker.problems:
        raise ConfigError(checker.problems)
    data = tomli_w.dumps(_drop_empty(table)).encode()
    old = file.read_bytes() if file.exists() else None
    private_dir(config.accounts_dir)
    atomic_write(file, data)
    try:
        load(config.path)  # the whole config must still load, or nothing changes
    except ConfigError:
        if old is None:
            file.unlink()
        else:
            atomic_write(file, old)
        raise
    return file


def managed_table(config: Config, name: str) -> dict[str, Any]:
    acct = config.account(name)
    if not acct.managed or acct.source is None:
        raise UsageError(
            f"account {name!r} is written by hand in {acct.source}",
            hint="edit that file; mailtix only rewrites accounts in accounts.d/")
    with open(acct.source, "rb") as fh:
        return tomllib.load(fh)


def set_key(table: dict[str, Any], dotted: str, raw: str) -> None:
    """Apply KEY=VALUE where VALUE is read as TOML when it parses, else as a string."""
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    parts = dotted.split(".")
    node = table
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UsageError(f"{dotted}: {part} is not a table")
    if raw == "" and parts[-1] in node:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value


def _drop_empty(table: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in table.items():
        if isinstance(v, dict):
            v = _drop_empty(v)
        if v is None:
            continue
        out[k] = v
    return out
