"""Passwords: keyring first, then the account's password_cmd, then an environment variable.

Nothing here ever writes a password to a file other than the keyring, or puts it in a message.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailtix.config.model import Account, Server
from mailtix.errors import SecretError

SERVICE = "mailtix"
ENV_PREFIX = "MAILTIX_PASSWORD_"
NO_KEYRING_HINT = (
    "no usable system keyring here (typical on headless servers): set password_cmd in the "
    "account's fetch/smtp table to a command that prints the password (e.g. "
    "password_cmd = \"cat /etc/mailtix/support.pw\"), or set MAILTIX_PASSWORD_<ACCOUNT>"
)
_cache: dict[tuple[str, str], str] = {}

# Finding out that a machine has no keyring backend costs ~100 ms (the keyring package loads
# every backend plugin and probes it), on every cron run of a headless server. `mailtix run`
# remembers that answer in its data dir (see remember_no_keyring_in); it is asked again when
# anything a backend depends on changes, or after NO_KEYRING_TTL.
NO_KEYRING_FILE = "no-keyring.json"
NO_KEYRING_TTL = 3600.0
_state_dir: Path | None = None


def keyring_user(account: str, role: str) -> str:
    return account if role == "fetch" else f"{account}:{role}"


def _secret(key: str) -> bool:
    # the PostgreSQL store's password is no child's business either
    return key.startswith(ENV_PREFIX) or key == "MAILTIX_STORE_PASSWORD"


def env_name(account: str, role: str) -> str:
    base = ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", account).upper()
    return base if role == "fetch" else f"{base}_{role.upper()}"


def child_environment() -> dict[str, str]:
    """The environment for a child process: ours without the MAILTIX_PASSWORD_* values,
    which no child needs (a password_cmd prints its own password, a parse worker needs none)."""
    return {k: v for k, v in os.environ.items() if not _secret(k)}


@contextmanager
def withheld() -> Iterator[None]:
    """MAILTIX_PASSWORD_* out of the environment while processes are started that inherit it
    without a way to pass another (multiprocessing's spawn); put back afterwards, for the
    lookups of later accounts."""
    taken = {k: os.environ.pop(k) for k in list(os.environ) if _secret(k)}
    try:
        yield
    finally:
        os.environ.update(taken)


def remember_no_keyring_in(state_dir: Path | None) -> None:
    """Let lookups in this process reuse an earlier "no keyring backend" answer kept there."""
    global _state_dir
    _state_dir = state_dir


def _environment_of_backends() -> list:
    """What decides which keyring backend is usable: the installed packages (the mtimes of the
    import path), the D-Bus session, keyring's own settings, the user."""
    paths = []
    for entry in sys.path:
        try:
            paths.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            continue
    env = {k: os.environ.get(k) for k in ("PYTHON_KEYRING_BACKEND", "DBUS_SESSION_BUS_ADDRESS",
                                          "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                                          "HOME", "DISPLAY", "WAYLAND_DISPLAY")}
    config_home = Path(env["XDG_CONFIG_HOME"] or Path.home() / ".config")
    extra = []
    for path in (config_home / "python_keyring" / "keyringrc.cfg",
                 Path(env["XDG_RUNTIME_DIR"] or f"/run/user/{os.getuid()}") / "bus"):
        try:
            extra.append([str(path), os.stat(path).st_mtime_ns])
        except OSError:
            extra.append([str(path), None])
    return [os.getuid(), sys.executable, paths, env, extra]


def _known_absent() -> bool:
    if _state_dir is None:
        return False
    try:
        saved = json.loads((_state_dir / NO_KEYRING_FILE).read_text())
        return (time.time() - saved["at"] < NO_KEYRING_TTL
                and saved["environment"] == _environment_of_backends())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _remember_absent() -> None:
    if _state_dir is None:
        return
    from mailtix.fsutil import atomic_write

    try:
        atomic_write(_state_dir / NO_KEYRING_FILE, json.dumps(
            {"at": time.time(), "environment": _environment_of_backends()}).encode())
    except OSError:
        pass  # only a speed-up: the next run asks the keyring again


def _forget_absent() -> None:
    if _state_dir is not None:
        (_state_dir / NO_KEYRING_FILE).unlink(missing_ok=True)


def _keyring(fresh: bool = False):
    """The keyring module when a usable backend exists, else None."""
    if not fresh and _known_absent():
        return None
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring) or type(backend).__module__ == "keyring.backends.null":
        _remember_absent()
        return None
    _forget_absent()
    return keyring


def require_keyring():
    kr = _keyring(fresh=True)
    if kr is None:
        raise SecretError("cannot store the password", hint=NO_KEYRING_HINT)
    return kr


def store(account: str, role: str, password: str) -> None:
    kr = require_keyring()
    try:
        kr.set_password(SERVICE, keyring_user(account, role), password)
    except Exception as exc:  # keyring backends raise many kinds; the message never holds secrets
        raise SecretError(f"the keyring refused the password: {type(exc).__name__}",
                          hint=NO_KEYRING_HINT) from None
    _cache.pop((account, role), None)


def forget(account: str) -> None:
    kr = _keyring(fresh=True)
    if kr is None:
        return
    for role in ("fetch", "smtp"):
        try:
            kr.delete_password(SERVICE, keyring_user(account, role))
        except Exception:  # absent entries are fine: nothing to forget
            pass


def lookup(account: Account, role: str, server: Server) -> str:
    """The password for account's fetch or smtp server; looked up once per process."""
    if server.oauth is not None:
        return ""  # no password: clients.py logs in with a token from mailtix.auth
    key = (account.name, role)
    if key in _cache:
        return _cache[key]
    password = _from_keyring(account.name, role)
    if password is None and role == "smtp":
        password = _from_keyring(account.name, "fetch")  # one password for both is common
    if password is None and server.password_cmd:
        password = _from_command(account.name, server.password_cmd)
    if password is None:
        password = os.environ.get(env_name(account.name, role))
        if password is None and role == "smtp":
            password = os.environ.get(env_name(account.name, "fetch"))
    if password is None:
        raise SecretError(
            f"no password for account {account.name!r} ({role})",
            hint=f"store one with `mailtix account add {account.name} --password-stdin` or "
                 f"`mailtix account password {account.name}`, set password_cmd, or set "
                 f"{env_name(account.name, role)}")
    _cache[key] = password
    return password


def _from_keyring(account: str, role: str) -> str | None:
    kr = _keyring()
    if kr is None:
        return None
    try:
        return kr.get_password(SERVICE, keyring_user(account, role))
    except Exception:  # a locked or broken keyring must not stop password_cmd from working
        return None


def _from_command(account: str, command: str) -> str:
    try:
        proc = subprocess.run(command, shell=True, capture_output=True, timeout=30, check=False,
                              env=child_environment())
    except subprocess.TimeoutExpired:
        raise SecretError(f"password_cmd of account {account!r} did not finish in 30 s") from None
    if proc.returncode != 0:
        # stderr may be shown, stdout never: it could hold the password.
        err = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise SecretError(f"password_cmd of account {account!r} failed "
                          f"(exit {proc.returncode}) {err[0][:200]}".rstrip())
    value = proc.stdout.decode(errors="replace").rstrip("\r\n")
    if not value:
        raise SecretError(f"password_cmd of account {account!r} printed nothing")
    return value


MASK = "********"
SHORT_SECRET = 4  # shorter secrets are masked as whole tokens only


def redact(text: str, secrets: list[str]) -> str:
    """Mask every secret in text. A secret of 4 characters or more is masked wherever it
    occurs. A shorter one (a test account's "x") is part of half the words printed: masked
    anywhere it would turn `exit_code` into `e********it_code`, so it is masked only where it
    stands alone, between characters that are not letters, digits or '_' (`pw=x;`, `"x"`).
    A standalone value is thus never printed, and the output stays readable."""
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        if len(secret) >= SHORT_SECRET:
            text = text.replace(secret, MASK)
        else:
            text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", MASK, text)
    return text


def known_secrets() -> list[str]:
    return [pw for pw in _cache.values() if pw]
