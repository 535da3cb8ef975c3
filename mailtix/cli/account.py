"""`mailtix account …`: add, list, show, edit, remove, enable, disable, password, test; the
OAuth2 sign-in (`account login`) is in account_login.py."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

import typer

from mailtix.cli import output
from mailtix.cli.account_login import login, oauth_table, sign_in
from mailtix.cli.common import console, new_app, print_json, state
from mailtix.errors import ExitCode, UsageError
from mailtix.locale import N_, _
from mailtix.record import as_dict

app = new_app("Manage mail accounts (fetching over IMAP/POP3, sending over SMTP).")


def _read_stdin_passwords(count: int) -> list[str]:
    lines = sys.stdin.read().splitlines()
    if len(lines) < count or not all(lines[:count]):
        raise UsageError(f"expected {count} password line(s) on standard input")
    return lines[:count]


@app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="account name (letters, digits, . _ -)"),
    email: str = typer.Option(None, "--email", help="the account's address"),
    display_name: str = typer.Option(None, "--name", help="display name for From"),
    reply_to: str = typer.Option(None, "--reply-to"),
    protocol: str = typer.Option("imap", "--protocol", help="imap or pop3"),
    host: str = typer.Option(None, "--host", help="IMAP/POP3 host (omit for send-only)"),
    port: int = typer.Option(None, "--port"),
    tls: str = typer.Option("ssl", "--tls", help="ssl, starttls or none"),
    user: str = typer.Option(None, "--user", help="login (default: the address)"),
    folders: list[str] = typer.Option(None, "--folder", help="IMAP folder to fetch (repeatable)"),
    password_cmd: str = typer.Option(None, "--password-cmd", help="command printing the password"),
    ca_file: Path = typer.Option(None, "--ca-file", help="CA certificates to trust (PEM)"),
    smtp_host: str = typer.Option(None, "--smtp-host", help="SMTP host (omit for fetch-only)"),
    smtp_port: int = typer.Option(None, "--smtp-port"),
    smtp_tls: str = typer.Option("starttls", "--smtp-tls", help="ssl, starttls or none"),
    smtp_user: str = typer.Option(None, "--smtp-user"),
    smtp_password_cmd: str = typer.Option(None, "--smtp-password-cmd"),
    since: str = typer.Option(None, "--since", help="fetch only mail from this date (YYYY-MM-DD)"),
    post_fetch: str = typer.Option(None, "--post-fetch", help="seen, move, delete or none"),
    move_to: str = typer.Option(None, "--move-to", help="folder for --post-fetch move"),
    queue: str = typer.Option(None, "--queue", help="queue of new tickets"),
    project: str = typer.Option(None, "--project"),
    assignee: str = typer.Option(None, "--assignee"),
    tickets: bool = typer.Option(True, "--tickets/--no-tickets", help="create tickets"),
    sent_folder: str = typer.Option(None, "--sent-folder"),
    archive_bcc: str = typer.Option(None, "--archive-bcc"),
    inactive: bool = typer.Option(False, "--inactive", help="add it disabled"),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="read the password from stdin into the keyring"),
    smtp_password_stdin: bool = typer.Option(
        False, "--smtp-password-stdin",
        help="read a separate SMTP password (the next stdin line) into the keyring"),
    baseline: bool = typer.Option(False, "--baseline",
                                  help="record mail already on the server as seen, import none"),
    auth: str = typer.Option("password", "--auth", help="password, or oauth2 (no password: "
                                                        "signs in right away, see `login`)"),
    provider: str = typer.Option(None, "--provider", help="oauth2: microsoft, google or custom"),
    client_id: str = typer.Option(None, "--client-id", help="oauth2: the app's client id"),
    tenant: str = typer.Option(None, "--tenant", help="oauth2, microsoft: tenant id or domain"),
    scopes: list[str] = typer.Option(None, "--scope", help="oauth2: scope (repeatable); "
                                                          "default: the provider's mail scopes"),
    token_url: str = typer.Option(None, "--token-url", help="oauth2, custom: token endpoint"),
    device_url: str = typer.Option(None, "--device-url",
                                   help="oauth2, custom: device authorization endpoint"),
    authorize_url: str = typer.Option(None, "--authorize-url",
                                      help="oauth2, custom: authorization endpoint"),
    browser: bool = typer.Option(False, "--browser",
                                 help="oauth2: sign in in a browser instead of by device code"),
    no_login: bool = typer.Option(False, "--no-login",
                                  help="oauth2: only write the settings; sign in later"),
    no_test: bool = typer.Option(False, "--no-test",
                                 help="save without testing the servers first"),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """Add an account; its settings go to accounts.d/NAME.toml, its password to the keyring.
    The servers are tested (and the baseline taken) first: on a failure nothing is saved."""
    from mailtix import secrets
    from mailtix.config import load
    from mailtix.config.write import save_account

    st = state(ctx)
    cfg = st.config()
    if name in cfg.accounts:
        raise UsageError(
            f"account {name!r} exists already ({cfg.accounts[name].source})",
            hint=f"change it with `mailtix account edit {name} --set KEY=VALUE`, record the mail "
                 f"on its server as seen with `mailtix account baseline {name}`, or remove it "
                 f"first with `mailtix account remove {name}`")
    tty = sys.stdin.isatty()
    if email is None and tty:
        email = typer.prompt("address")
    if email is None:
        raise UsageError("--email is required")
    table: dict[str, Any] = {"email": email, "active": not inactive}
    for key, value in (("name", display_name), ("reply_to", reply_to), ("since", since),
                       ("post_fetch", post_fetch), ("move_to", move_to),
                       ("sent_folder", sent_folder), ("archive_bcc", archive_bcc)):
        if value is not None:
            table[key] = value
    if host:
        table["fetch"] = _server(protocol=protocol, host=host, port=port, tls=tls, user=user,
                                 password_cmd=password_cmd, ca_file=ca_file,
                                 folders=list(folders) if folders else None)
    if smtp_host:
        table["smtp"] = _server(host=smtp_host, port=smtp_port, tls=smtp_tls, user=smtp_user,
                                password_cmd=smtp_password_cmd or password_cmd, ca_file=ca_file)
    tk = {k: v for k, v in (("queue", queue), ("project", project), ("assignee", assignee))
          if v is not None}
    if not tickets or tk:
        table["tickets"] = {"enabled": tickets, **tk}
    if auth == "oauth2":
        if password_stdin or smtp_password_stdin or password_cmd or smtp_password_cmd:
            raise UsageError("an OAuth2 account has no password",
                             hint="drop the password options; `mailtix account login` signs in")
        table["auth"] = "oauth2"
        table["oauth"] = oauth_table(provider, client_id, tenant, scopes, token_url,
                                      device_url, authorize_url)
    elif auth != "password":
        raise UsageError(f"--auth expects password or oauth2, got {auth!r}")
    passwords: list[str] = []
    if auth == "oauth2":
        pass  # a token replaces the password: `login` below gets it
    elif password_stdin or smtp_password_stdin:
        passwords = _read_stdin_passwords(int(password_stdin) + int(smtp_password_stdin))
    elif tty and (host or smtp_host) and not password_cmd:
        passwords = [typer.prompt("password", hide_input=True)]
    # The whole config with the new account, checked before anything is written or asked.
    acct = load(cfg.path, extra_accounts={name: table}).account(name)
    if passwords:
        # Fail before writing anything when the keyring cannot take the password.
        secrets.require_keyring()
        if password_stdin or not smtp_password_stdin:
            secrets.store(name, "fetch", passwords[0])
        if smtp_password_stdin:
            secrets.store(name, "smtp", passwords[-1])
    result: dict[str, Any] = {"account": name}
    store = None
    try:
        store = st.store() if baseline else None  # a store that cannot open fails here, first
        if auth == "oauth2" and not no_login:
            result["login"] = sign_in(acct, browser, quiet=json)
        result["tested"] = False
        testable = acct.fetch is not None or (acct.smtp is not None
                                              and acct.smtp.protocol == "smtp")
        if auth == "oauth2" and no_login:
            testable = False  # no token yet: nothing could log in
        if not no_test and testable:
            _test_before_saving(acct)
            result["tested"] = True
        seen = _survey(acct) if baseline else None
        file = save_account(cfg, name, table, new=True)
    except BaseException:
        if passwords:
            secrets.forget(name)  # the account did not exist before: its entries are ours
        if auth == "oauth2" and acct.oauth is not None:
            from mailtix.auth.tokens import TokenStore

            TokenStore(acct.oauth).delete()
        raise
    result["file"] = str(file)
    if seen is not None and store is not None:
        from mailtix.intake import record_baseline

        try:
            result["baseline"] = record_baseline(acct, store, seen)
        except BaseException:
            file.unlink()  # saved but not baselined is what must never be left behind
            if passwords:
                secrets.forget(name)
            raise
    if json:
        print_json(result)
    else:
        typer.echo(f"added account {name!r} in {file}")
        if baseline:
            typer.echo(f"baseline: {result['baseline']}")


def _test_before_saving(acct) -> None:
    from mailtix.errors import AuthError, NetworkError
    from mailtix.mail.probe import test_account

    report = test_account(acct)
    failed = [s for s in report.steps if not s.ok]
    if not failed:
        return
    step = failed[0]
    auth = "refused" in step.detail and ("login" in step.name.lower() or "AUTH" in step.name)
    error = AuthError if auth else NetworkError
    raise error(f"account {acct.name!r} not saved: {step.name}: {step.detail}",
                hint=(step.hint + "; " if step.hint else "") + "fix the settings and add it "
                     "again (`mailtix account add … --no-test` saves it untested)")


def _survey(acct):
    """The baseline's look at the server, before the account is saved."""
    from mailtix.errors import MailtixError, NetworkError
    from mailtix.mail.baseline import survey

    try:
        return survey(acct)
    except MailtixError as exc:
        exc.args = (f"account {acct.name!r} not saved: the baseline failed: {exc}",)
        raise
    except Exception as exc:  # a server fault from imaplib/poplib, not ours to crash on
        raise NetworkError(f"account {acct.name!r} not saved: the baseline failed: "
                           f"{type(exc).__name__}: {exc}") from None


def _server(**fields: Any) -> dict[str, Any]:
    out = {k: (str(v) if isinstance(v, Path) else v) for k, v in fields.items() if v is not None}
    return out


def _password_source(acct, role: str) -> str:
    import os

    from mailtix import secrets

    server = acct.fetch if role == "fetch" else acct.smtp
    if server is None:
        return "-"
    if server.protocol in ("sendmail", "maildir"):
        return "not needed"
    if server.oauth is not None:
        from mailtix.auth import token_info

        info = token_info(server.oauth)
        return f"OAuth2 token ({info.stored_in})" if info else "OAuth2 token missing"
    kr = secrets._keyring()
    if kr is not None:
        try:
            if kr.get_password(secrets.SERVICE, secrets.keyring_user(acct.name, role)):
                return "keyring"
        except Exception:  # a locked keyring is reported as no source, not as a crash
            pass
    if server.password_cmd:
        return "password_cmd"
    if os.environ.get(secrets.env_name(acct.name, role)):
        return "environment"
    if role == "smtp":
        fetch = _password_source(acct, "fetch") if acct.fetch else "-"
        if fetch in ("keyring", "environment"):
            return f"{fetch} (fetch password)"
    return "missing"


def _describe(acct) -> dict[str, Any]:
    data = as_dict(acct)
    data["source"] = str(acct.source)
    data["password"] = {"fetch": _password_source(acct, "fetch"),
                        "smtp": _password_source(acct, "smtp")}
    for role in ("fetch", "smtp"):
        if data[role] is not None:
            if data[role]["protocol"] != "sendmail":
                data[role].pop("sendmail_path")
            if role == "smtp":
                data[role].pop("folders")
            data[role]["password_cmd"] = bool(getattr(acct, role).password_cmd)
            data[role].pop("oauth", None)  # shown once, at the account level
    if data.get("oauth"):
        data["oauth"]["token_dir"] = str(data["oauth"]["token_dir"])
    return data


@app.command("list")
def list_(ctx: typer.Context, fmt: str = output.FORMAT, json: bool = output.JSON) -> None:
    """List accounts: name, address, fetch, smtp, tickets, active."""
    cfg = state(ctx).config()
    rows = [{"name": a.name, "email": a.email,
             "fetch": a.fetch.describe() if a.fetch else "",
             "smtp": a.smtp.describe() if a.smtp else "",
             "tickets": a.tickets.enabled, "active": a.active,
             "default": a is cfg.default_sender()} for a in cfg.accounts.values()]
    fmt = output.choose_format(fmt, json)
    shown = [{**r, "name": r["name"] + (" *" if r["default"] and fmt == "table" else "")}
             for r in rows]
    output.render(shown, ACCOUNT_COLUMNS, fmt, data=rows,
                  empty=_("no accounts yet: mailtix account add NAME --email ADDRESS --host HOST"))


ACCOUNT_COLUMNS = [
    output.Column("name", N_("name")),
    output.Column("email", N_("address"), cut=True, minimum=16),
    output.Column("fetch", N_("fetch"), cut=True, drop=2),
    output.Column("smtp", N_("smtp"), cut=True, drop=1),
    output.Column("tickets", N_("tickets"), drop=3),
    output.Column("active", N_("active")),
]


@app.command("show")
def show(ctx: typer.Context, name: str, json: bool = typer.Option(False, "--json")) -> None:
    """Show one account's settings and where its password comes from (never the password)."""
    data = _describe(state(ctx).config().account(name))
    if json:
        print_json(data)
        return
    for key, value in data.items():
        if isinstance(value, dict):
            typer.echo(f"{key}:")
            for k, v in value.items():
                typer.echo(f"  {k}: {_fmt(v)}")
        elif value not in ("", None, (), [], False) or key == "active":
            typer.echo(f"{key}: {_fmt(value)}")


def _fmt(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


@app.command("edit")
def edit(ctx: typer.Context, name: str,
         settings: list[str] = typer.Option(..., "--set",
                                            help="KEY=VALUE, dotted for tables (fetch.port=993); "
                                                 "an empty VALUE removes the key")) -> None:
    """Change keys of an account in accounts.d/; the result is validated before it is written."""
    from mailtix.config.write import managed_table, save_account, set_key

    cfg = state(ctx).config()
    table = managed_table(cfg, name)
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        if key.split(".")[-1] in ("password", "pass"):
            raise UsageError("passwords are not config keys",
                             hint=f"use `mailtix account password {name}`")
        set_key(table, key.strip(), value.strip())
    save_account(cfg, name, table, new=False)
    typer.echo(f"updated account {name!r}")


def _set_active(ctx: typer.Context, name: str, active: bool) -> None:
    from mailtix.config.write import managed_table, save_account

    cfg = state(ctx).config()
    table = managed_table(cfg, name)
    table["active"] = active
    save_account(cfg, name, table, new=False)
    typer.echo(f"account {name!r} {'enabled' if active else 'disabled'}")


@app.command("enable")
def enable(ctx: typer.Context, name: str) -> None:
    """Make an account active again."""
    _set_active(ctx, name, True)


@app.command("disable")
def disable(ctx: typer.Context, name: str) -> None:
    """Keep an account in the config, but neither fetch nor send with it."""
    _set_active(ctx, name, False)


@app.command("remove")
def remove(ctx: typer.Context, name: str,
           yes: bool = typer.Option(False, "--yes", "-y", help="do not ask")) -> None:
    """Remove an account's settings and keyring entries; its stored tickets stay."""
    from mailtix import secrets
    from mailtix.config.write import managed_table

    cfg = state(ctx).config()
    managed_table(cfg, name)  # refuses hand-written accounts
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("refusing to remove without confirmation", hint="add --yes")
        typer.confirm(f"remove account {name!r}? (its tickets stay)", abort=True)
    path = cfg.accounts[name].source
    assert path is not None
    path.unlink()
    secrets.forget(name)
    if cfg.accounts[name].oauth is not None:
        from mailtix.auth.tokens import TokenStore

        TokenStore(cfg.accounts[name].oauth).delete()
    typer.echo(f"removed account {name!r}")


@app.command("password")
def password(ctx: typer.Context, name: str,
             smtp: bool = typer.Option(False, "--smtp", help="set the separate SMTP password"),
             stdin: bool = typer.Option(False, "--stdin", help="read it from standard input")
             ) -> None:
    """Store an account's password in the system keyring."""
    from mailtix import secrets

    state(ctx).config().account(name)
    if stdin or not sys.stdin.isatty():
        value = _read_stdin_passwords(1)[0]
    else:
        value = typer.prompt("password", hide_input=True)
    secrets.store(name, "smtp" if smtp else "fetch", value)
    typer.echo(f"password of {name!r} stored in the keyring")


@app.command("test")
def test(
    ctx: typer.Context,
    name: str,
    roundtrip: bool = typer.Option(False, "--roundtrip",
                                   help="send a probe to the account's own address and fetch it"),
    timeout: float = typer.Option(None, "--timeout", help="seconds per step (default: config)"),
    wait: float = typer.Option(60.0, "--wait", help="how long --roundtrip waits for the probe"),
    only: str = typer.Option(None, "--only", help="fetch or smtp"),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """Check DNS, TCP, TLS, login and folders (and SMTP EHLO, STARTTLS, AUTH), each timed."""
    from mailtix.mail.probe import test_account

    acct = state(ctx).config().account(name)
    report = test_account(acct, fetch=only in (None, "fetch"), smtp=only in (None, "smtp"),
                          timeout=timeout, roundtrip=roundtrip, roundtrip_wait=wait)
    if json:
        print_json({"account": name, "ok": report.ok, "steps": report.steps})
    else:
        out = console()
        for s in report.steps:
            mark = "[green]ok  [/]" if s.ok else "[red]FAIL[/]"
            out.print(f"{mark} {s.name:<28} {s.ms:>8.1f} ms  ", end="")
            out.print(output.mail_text(s.detail), markup=False)
            if s.hint:
                out.print(f"     hint: {output.mail_text(s.hint)}", markup=False,
                          style="yellow")
    if not report.ok:
        failed = [s for s in report.steps if not s.ok]
        auth = any("refused" in s.detail and ("login" in s.name.lower() or "AUTH" in s.name)
                   or s.name.endswith("OAuth2 token") for s in failed)
        raise typer.Exit(int(ExitCode.AUTH if auth else ExitCode.NETWORK))


app.command("login")(login)  # registered last: listed after the everyday commands
