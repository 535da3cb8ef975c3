"""`mailtix systemd …` and `mailtix log`."""

from __future__ import annotations

from pathlib import Path

import typer

from mailtix.cli import output
from mailtix.cli.common import new_app, state
from mailtix.locale import N_, _

systemd_app = new_app("A systemd service and timer that run `mailtix run --quiet`.")


def register(app: typer.Typer) -> None:
    app.add_typer(systemd_app, name="systemd")
    app.command("log")(log)


_interval = typer.Option("1min", "--interval", help="how often: 30s, 1min, 5min, 1h")
_user = typer.Option(True, "--user/--system", help="a user unit (default) or a system unit")


def _pinned(ctx: typer.Context) -> tuple[Path, Path]:
    """The config file and data dir this command uses, absolute: the units and the cron line
    must not depend on the HOME or environment they are started with."""
    st = state(ctx)
    cfg = st.config()
    if not cfg.exists:
        typer.echo(f"note: {cfg.path} does not exist yet; `mailtix init` writes it", err=True)
    return cfg.path.absolute(), st.data_dir().absolute()


@systemd_app.command("print")
def systemd_print(ctx: typer.Context, interval: str = _interval, user: bool = _user) -> None:
    """Print mailtix.service and mailtix.timer (and the equivalent crontab line), with the
    config file and data dir pinned as absolute paths."""
    from mailtix.systemd import cron_line, units

    config, data = _pinned(ctx)
    for name, text in units(interval, user, config, data).items():
        typer.echo(f"# {name}\n{text}")
    typer.echo(f"# or, with cron (crontab -e):\n# {cron_line(interval, config, data)}")


@systemd_app.command("install")
def systemd_install(ctx: typer.Context, interval: str = _interval, user: bool = _user) -> None:
    """Write the units to the systemd folder and say how to enable them."""
    from mailtix.systemd import install

    config, data = _pinned(ctx)
    paths = install(interval, user, config, data)
    for path in paths:
        typer.echo(f"wrote {path}")
    flag = "--user " if user else ""
    typer.echo(f"enable with: systemctl {flag}daemon-reload && systemctl {flag}enable --now "
               "mailtix.timer")


def log(ctx: typer.Context,
        account: str = typer.Option(None, "--account"),
        ticket: str = typer.Option(None, "--ticket", help="only this ticket's history"),
        since: str = typer.Option(None, "--since", help="ISO date or time, e.g. 2026-11-22"),
        kind: str = typer.Option(None, "--kind", help="e.g. created, sent, duplicate"),
        limit: int = typer.Option(100, "--limit", min=1),
        fmt: str = output.FORMAT, json: bool = output.JSON) -> None:
    """Read the store's event log, newest first (--since in local time)."""
    from mailtix.store import counts
    from mailtix.store.queries import events

    store = state(ctx).store()
    ticket_id = None
    if ticket:
        from mailtix.desk import find

        ticket_id = find(store, ticket)
    since = output.utc_arg(since, "--since")
    rows = events(store.conn, account=account, ticket_id=ticket_id, since=since, kind=kind,
                  limit=limit)
    total = (counts.events(store.conn, account, ticket_id, since, kind) if len(rows) == limit
             else len(rows))
    output.render(rows, EVENT_COLUMNS, output.choose_format(fmt, json), total=total,
                  empty=_("no events"))


EVENT_COLUMNS = [
    output.Column("at", N_("time"), time=True),
    output.Column("account", N_("account"), drop=3),
    output.Column("ticket", N_("ticket"), drop=2),
    output.Column("kind", N_("event")),
    output.Column("agent", N_("agent"), drop=4),
    output.Column("detail", N_("detail"), cut=True, drop=1, minimum=12),
]
