"""`mailtix run` (fetch, thread, deliver; from cron or a timer), `baseline`, `reprocess`."""

from __future__ import annotations

import sys

import typer

from mailtix.cli import output
from mailtix.cli.common import console, json_mode, print_json, state
from mailtix.errors import ConfigError, ExitCode, Problem
from mailtix.locale import N_, _


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("reprocess")(reprocess)
    from mailtix.cli.account import app as account_app

    account_app.command("baseline")(baseline)


def run(
    ctx: typer.Context,
    accounts: list[str] = typer.Option(None, "--account", "-a",
                                       help="only this account (repeatable); ignores back-off"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print nothing on success (cron)"),
    loop: bool = typer.Option(False, "--loop", help="run again and again (as a service)"),
    interval: float = typer.Option(60.0, "--interval", help="seconds between runs with --loop"),
    idle: bool = typer.Option(True, "--idle/--no-idle",
                              help="with --loop: fetch an IMAP folder as soon as IDLE reports "
                                   "new mail (polling on the interval where IDLE is missing)"),
    json: bool = typer.Option(False, "--json", help="print the run report as JSON"),
) -> None:
    """Fetch new mail of every active account into the ticket store and thread it.

    Exits 0 at once with a notice when another run holds the lock. Exit codes: 0 ok,
    3 no config file or no active account, 4 auth failure, 5 network failure, 6 some accounts
    failed, 7 the store cannot be used (see mailtix(1)).
    """
    from mailtix.lock import Locked, run_lock

    st = state(ctx)
    json_mode(ctx, json)
    cfg = st.config()
    _check_runnable(cfg)
    if accounts:
        for name in accounts:
            cfg.account(name)
    code = ExitCode.OK

    def cycle(only: list[str] | None) -> bool:
        nonlocal code
        try:
            with run_lock(st.data_dir()):
                code = _once(st, cfg, list(only or []), quiet, json)
            return True
        except Locked as exc:
            if json:
                print_json({"ok": True, "skipped": "another mailtix run is active",
                            "holder": exc.holder, "accounts": [], "delivery": None})
            elif not quiet:
                typer.echo(f"another mailtix run is active ({exc.holder}); nothing to do")
            code = ExitCode.OK
            return False

    if loop:
        _serve(cfg, list(accounts or []) or None, cycle, interval, idle)
    else:
        cycle(list(accounts or []))
    raise typer.Exit(int(code))


def _serve(cfg, names, cycle, interval: float, idle: bool) -> None:
    """Until SIGTERM (systemd's stop) or Ctrl-C; a stop mid-run lets that run finish."""
    import signal
    import threading

    from mailtix.watch import serve

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_args: stop.set())
    try:
        serve(cfg, names, cycle, interval, stop, idle)
    finally:
        stop.set()
        signal.signal(signal.SIGTERM, previous)


def _check_runnable(cfg) -> None:
    """A cron job with the wrong HOME finds no config and would do nothing, silently, forever;
    say so on every run instead, also under --quiet (cron mails what a job prints)."""
    if not cfg.exists and not cfg.accounts:  # accounts.d/ alone is a configuration too
        raise ConfigError([Problem(str(cfg.path), "", "no config file here: nothing to run")],
                          hint="give --config /absolute/path/config.toml (cron and systemd "
                               "run with another HOME), or write one with `mailtix init`")
    if not any(a.active for a in cfg.accounts.values()):
        raise ConfigError([Problem(str(cfg.path), "", "no active account: nothing to run")],
                          hint="add one with `mailtix account add`, or set active = true")


def _once(st, cfg, accounts: list[str], quiet: bool, json: bool) -> ExitCode:
    from mailtix.runner import run as run_cycle

    store = st.store()
    try:
        if sys.stderr.isatty() and not quiet and not json:
            report = _with_progress(cfg, store, accounts)
        else:
            report = run_cycle(cfg, store, accounts or None)
    finally:
        store.close()
    if json:
        print_json({"ok": report.exit_code() == 0, "accounts": report.accounts,
                    "delivery": report.delivery})
        return report.exit_code()
    d = report.delivery
    for row_id in getattr(d, "failed", []):
        typer.echo(f"mailtix: outbox {row_id} failed: "
                   f"{output.mail_text(d.errors.get(row_id, ''))}", err=True)
    for a in report.failed:
        typer.echo(f"mailtix: account {a.account}: {output.mail_text(a.error)}", err=True)
        if a.hint and not quiet:
            typer.echo(f"  hint: {a.hint}", err=True)
    if not quiet:
        for a in report.accounts:
            if a.skipped:
                typer.echo(_("{account}: skipped, {why}").format(account=a.account,
                                                                 why=a.skipped))
            elif not a.error:
                typer.echo(_("{account}: {fetched} new message(s), {tickets} new ticket(s), "
                             "{threaded} threaded, {duplicates} duplicate(s)").format(
                    account=a.account, fetched=a.fetched, tickets=a.new_tickets,
                    threaded=a.threaded, duplicates=a.duplicates)
                    + (_(", {n} quarantined").format(n=a.quarantined) if a.quarantined else ""))
        if not report.accounts:
            typer.echo(_("no active accounts"))
        if d is not None and d.busy:
            typer.echo(f"outbox: another process is sending ({d.busy}); queued mail waits "
                       "for the next run")
        if d is not None and (d.sent or d.retry or d.failed):
            typer.echo(_("outbox: {sent} sent, {retry} to retry, {failed} failed").format(
                sent=len(d.sent), retry=len(d.retry), failed=len(d.failed)))
    return report.exit_code()


def _with_progress(cfg, store, accounts: list[str]):
    from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    from mailtix.runner import run as run_cycle

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), MofNCompleteColumn(),
                  TextColumn("{task.elapsed:.0f}s"), console=console(stderr=True),
                  transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(account: str, n: int, total: int | None) -> None:
            if account not in tasks:
                tasks[account] = bar.add_task(f"fetching {account}", total=total)
            bar.advance(tasks[account], n)

        return run_cycle(cfg, store, accounts or None, progress=progress)


def baseline(ctx: typer.Context, name: str, json: bool = typer.Option(False, "--json")) -> None:
    """Record the mail now on the server as seen, so the first run imports none of it."""
    from mailtix.intake import baseline as run_baseline

    json_mode(ctx, json)
    st = state(ctx)
    store = st.store()
    try:
        summary = run_baseline(st.config().account(name), store)
    finally:
        store.close()
    if json:
        print_json({"account": name, "baseline": summary})
    else:
        typer.echo(f"{name}: {summary}")


FLAGGED_COLUMNS = [
    output.Column("id", N_("id"), right=True),
    output.Column("ticket", N_("ticket")),
    output.Column("subject", N_("subject"), cut=True, minimum=10, want=24),
    output.Column("parse_error", N_("error"), cut=True, drop=1, minimum=12),
]


def reprocess(ctx: typer.Context,
              list_only: bool = typer.Option(False, "--list", help="only list flagged messages"),
              fmt: str = output.FORMAT, json: bool = output.JSON) -> None:
    """Parse messages flagged malformed again from their stored raw bytes."""
    from mailtix.reprocess import flagged, reprocess_all

    json_mode(ctx, json)
    st = state(ctx)
    store = st.store()
    try:
        if list_only:
            rows = flagged(store)
            chosen = output.choose_format(fmt, json)
            output.render([{**r, "ticket": r["ticket"] or "quarantine"} for r in rows],
                          FLAGGED_COLUMNS, chosen, data=rows)
            if chosen == "table":
                output.echo(_("{n} flagged message(s)").format(n=len(rows)))
            return
        result = reprocess_all(st.config(), store)
    finally:
        store.close()
    if json:
        print_json(result)
    else:
        typer.echo(f"re-parsed {result['reparsed']} message(s); {result['fixed']} now clean, "
                   f"{result['still_malformed']} still flagged")
