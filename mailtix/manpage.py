"""Generate mailtix(1) from the typer command tree and mailtix-config(5) from the config
schema, so the pages cannot drift from the code. `make man` runs this; a test compares."""

from __future__ import annotations

import sys
from pathlib import Path

from mailtix import __version__

EXIT_CODES = [
    ("0", "success; also when another run holds the lock"),
    ("1", "other failure"),
    ("2", "usage error: bad arguments, unknown account, ticket or template"),
    ("3", "configuration error (every problem is listed with file, table and key); also "
          "`run` with no config file or no active account"),
    ("4", "authentication failure (every failing account failed to log in)"),
    ("5", "network failure (every failing account could not be reached)"),
    ("6", "partial failure: some accounts or mails failed, others worked; `send` and "
          "`ticket reply` when a recipient was refused; also "
          "`status` when an account has failed longer than alert_after"),
    ("7", "store error: locked by another process too long, disk full, or damaged; one line "
          "says what to do (`mailtix store check`, free space); nothing was done on the server"),
    ("75", "`send`, `ticket reply`: the mail is queued, not sent yet (the server answered "
           "4xx or could not be reached, or another process is sending); it is retried"),
    ("130", "interrupted"),
]
ENVIRONMENT = [
    ("MAILTIX_CONFIG", "config file (instead of the platform config dir)"),
    ("MAILTIX_DATA", "data directory: store and raw mail"),
    ("MAILTIX_LOG_DIR", "log directory (rotating mailtix.log)"),
    ("MAILTIX_PASSWORD_<ACCOUNT>", "password of an account (upper case, non-alphanumerics as _)"),
    ("MAILTIX_PASSWORD_<ACCOUNT>_SMTP", "separate SMTP password of an account"),
    ("MAILTIX_STORE_URL", "postgresql:// URL of a shared store (wins over [store] url)"),
    ("MAILTIX_STORE_PASSWORD", "password of the PostgreSQL store"),
    ("MAILTIX_AGENT", "agent name recorded in ticket history (default: $USER)"),
    ("EDITOR", "editor for `ticket reply` and `template edit` on a terminal"),
    ("PAGER", "pager for `ticket show` on a terminal (default: less -FRX; cat: none)"),
    ("COLUMNS", "width of tables (default: the terminal's)"),
    ("NO_COLOR", "set to turn colour off"),
    ("TZ", "time zone of shown times and Date: headers ([general] timezone overrides)"),
    ("LANG, LC_MESSAGES, LANGUAGE", "language of messages: de or en ([general] language "
                                    "overrides)"),
]


def esc(text: str) -> str:
    text = (text or "").replace("\\", "\\e").replace("-", "\\-")
    text = "".join(ch if ord(ch) < 128 else f"\\[u{ord(ch):04X}]" for ch in text)
    return "\n".join(("\\&" + line) if line.startswith((".", "'")) else line
                     for line in text.splitlines())


def _commands(group, prefix: str = ""):
    for name, cmd in sorted(group.commands.items()):
        path = f"{prefix} {name}".strip()
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, path)
        else:
            yield path, cmd


def commands() -> list[tuple[str, object]]:
    import typer.main

    from mailtix.cli.main import app

    return list(_commands(typer.main.get_command(app)))


def _option_line(param) -> tuple[str, str]:
    opts = ", ".join(f"\\fB{esc(o)}\\fR" for o in (*param.opts, *param.secondary_opts))
    if not (param.is_flag or getattr(param, "count", False)):
        opts += f" \\fI{esc(param.name.upper())}\\fR"
    return opts, param.help or ""


def mailtix_1() -> str:
    import typer.main

    from mailtix.cli.main import app

    root = typer.main.get_command(app)
    out = [f'.TH MAILTIX 1 "" "mailtix {__version__}" "User Commands"',
           ".SH NAME", "mailtix \\- company mailboxes as a ticket system, documents by mail",
           ".SH SYNOPSIS", ".B mailtix", "[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]",
           ".SH DESCRIPTION",
           esc("mailtix fetches new mail of every active account over IMAP or POP3 into a "
               "SQLite ticket store, threads replies into their tickets, answers with "
               "autoresponders that never loop, and delivers every outgoing mail through one "
               "outbox over the SMTP account matching its From address. `mailtix run` is "
               "meant for cron or a systemd timer."),
           ".SH GLOBAL OPTIONS"]
    for param in root.params:
        if param.name in ("install_completion", "show_completion"):
            continue
        opts, text = _option_line(param)
        out += [".TP", opts, esc(text)]
    out += [".SH COMMANDS"]
    for path, cmd in commands():
        args = " ".join(f"\\fI{esc(p.name.upper())}\\fR" for p in cmd.params
                        if type(p).__name__.endswith("Argument"))
        out += [".SS " + esc(f"mailtix {path}") + (f" {args}" if args else ""),
                esc((cmd.help or "").strip())]
        for param in cmd.params:
            if type(param).__name__.endswith("Argument"):
                continue
            opts, text = _option_line(param)
            out += [".TP", opts, esc(text)]
    out += [".SH EXIT STATUS"]
    for code, text in EXIT_CODES:
        out += [".TP", f"\\fB{code}\\fR", esc(text)]
    out += [".SH ENVIRONMENT"]
    for name, text in ENVIRONMENT:
        out += [".TP", f"\\fB{esc(name)}\\fR", esc(text)]
    out += [".SH FILES", ".TP", "\\fI~/.config/mailtix/config.toml\\fR",
            esc("configuration; accounts.d/NAME.toml beside it holds accounts managed by "
                "`mailtix account`; templates/ holds templates"),
            ".TP", "\\fI~/.local/share/mailtix/\\fR",
            esc("the store (mailtix.sqlite3, with every raw message) and run.lock"),
            ".SH SEE ALSO", "\\fBmailtix\\-config\\fR(5)"]
    return "\n".join(out) + "\n"


def mailtix_config_5() -> str:
    from mailtix.config.schema import TOP, walk

    out = [f'.TH MAILTIX-CONFIG 5 "" "mailtix {__version__}" "File Formats"',
           ".SH NAME", "mailtix\\-config \\- the mailtix configuration file",
           ".SH DESCRIPTION",
           esc("config.toml is TOML. Unknown keys are errors (with a suggestion); every "
               "problem is reported at once with file, table and key. Relative paths are "
               "resolved against the file's folder. Passwords never go here: see "
               "MAILTIX_PASSWORD_<ACCOUNT> in mailtix(1), password_cmd below, or "
               "`mailtix account password`. Accounts may also live one file each in "
               "accounts.d/NAME.toml (the account table's keys at top level)."),
           ".SH KEYS"]
    for path, key in walk(TOP):
        kind = key.kind
        if kind == "enum":
            kind = " | ".join(c for c in key.choices if c) or kind
        default = "" if key.default in (None, "", [], {}) else f"; default {key.default!r}"
        required = "; required" if key.required else ""
        out += [".TP", f"\\fB{esc(path)}\\fR (\\fI{esc(kind)}\\fR{esc(default)}{required})",
                esc(key.doc)]
    out += [".SH EXAMPLE", esc("See examples/config.toml in the source, which sets every key."),
            ".SH SEE ALSO", "\\fBmailtix\\fR(1)"]
    return "\n".join(out) + "\n"


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    pages = {"mailtix.1": mailtix_1(), "mailtix-config.5": mailtix_config_5()}
    for name, text in pages.items():
        (folder / name).write_text(text)
    return [folder / n for n in pages]


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "man")):
        print(f"wrote {path}")
