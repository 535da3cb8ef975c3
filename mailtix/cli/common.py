"""What every command shares: the state object, output helpers, the error boundary."""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from mailtix.errors import ExitCode, MailtixError
from mailtix.record import Record, as_dict

log = logging.getLogger("mailtix")


class State:
    """Global options, and the config loaded once on first use."""

    def __init__(self, config: Path | None, debug: bool, verbose: int) -> None:
        self.config_arg = config
        self.debug = debug
        self.verbose = verbose
        self.json = False  # set by commands given --json: errors are then printed as JSON too
        self._config = None

    def config(self):
        if self._config is None:
            from mailtix.config import load
            from mailtix.locale import configure

            self._config = load(self.config_arg)
            configure(self._config.general.language, self._config.general.timezone)
        return self._config

    def reload(self):
        self._config = None
        return self.config()

    def data_dir(self) -> Path:
        from mailtix.config import data_dir

        return data_dir(self.config())

    def store(self):
        from mailtix.store import Store

        cfg = self.config()
        return Store.open(self.data_dir(), cfg.store.url, cfg.store.password_cmd)


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if not isinstance(obj, State):  # commands invoked without the root callback (tests)
        obj = State(None, False, 0)
        ctx.find_root().obj = obj
    return obj


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Off a terminal (cron, pipes, tests) rich would wrap at 80 columns and cut table cells.
    width = None if stream.isatty() else 200
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, Record):
        return _plain(as_dict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    from mailtix.secrets import known_secrets, redact

    secrets = known_secrets()

    def masked(v: Any) -> Any:
        # Each string on its own, before json quotes it: a secret can neither break the
        # document's structure nor hide behind json's escaping of '"' or '\\'.
        if isinstance(v, dict):
            return {masked(str(k)): masked(x) for k, x in v.items()}
        if isinstance(v, list):
            return [masked(x) for x in v]
        if v is None or isinstance(v, bool | int | float):
            return v
        return redact(str(v), secrets)

    text = json.dumps(masked(_plain(value)), indent=2, ensure_ascii=False)
    # json escapes C0 controls itself; C1 controls and bidi overrides would reach a terminal.
    text = _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    sys.stdout.write(text + "\n")


def json_mode(ctx: typer.Context, on: bool = True) -> None:
    """A command given --json promises JSON on stdout in every outcome, errors included."""
    state(ctx).json = on


_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def fail(message: str, hint: str | None = None, code: ExitCode = ExitCode.FAILURE) -> None:
    raise typer.Exit(_report(message, hint, code))


def _report(message: str, hint: str | None, code: ExitCode, as_json: bool = False) -> int:
    from mailtix.cli.output import mail_text
    from mailtix.secrets import known_secrets, redact

    text = redact(message, known_secrets())
    hint = redact(hint, known_secrets()) if hint else None
    if as_json:
        print_json({"ok": False, "error": text, "hint": hint, "exit_code": int(code)})
    # Errors quote servers and mail (a folder name, a reply): shown, never obeyed.
    typer.echo(f"error: {mail_text(text, multiline=True)}", err=True)
    if hint:
        typer.echo(f"hint: {mail_text(hint, multiline=True)}", err=True)
    return int(code)


def as_mailtix_error(exc: BaseException, st: State | None = None) -> MailtixError | None:
    """sqlite3 errors and a full disk become StoreError here, the one place outside the store
    that sees them (the store's own translation, store_error, says what to do)."""
    import errno
    import sqlite3

    if isinstance(exc, MailtixError):
        return exc
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error) or full:
        from mailtix.store.db import STORE_FILE, store_error

        path = None
        if st is not None and st._config is not None:
            from mailtix.store import configured_url
            from mailtix.store.url import redact

            url = configured_url(st._config.store.url)
            path = redact(url) if url else st.data_dir() / STORE_FILE
        return store_error(exc, path)
    return None


class Boundary(TyperGroup):
    """The one place that turns exceptions into a message, a hint and an exit code."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            console(stderr=True).print("interrupted", markup=False)
            ctx.exit(int(ExitCode.INTERRUPTED))
        except Exception as exc:
            st = ctx.obj if isinstance(ctx.obj, State) else None
            error = as_mailtix_error(exc, st)
            if error is None:
                raise
            if st is not None and st.debug:
                traceback.print_exc()
            log.info("error: %s", error)
            ctx.exit(_report(str(error), error.hint, error.exit_code,
                             as_json=st is not None and st.json))


def new_app(help: str) -> typer.Typer:
    return typer.Typer(help=help, cls=Boundary, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False, rich_markup_mode=None)
