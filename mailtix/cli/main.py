"""The `mailtix` command: global options and the command groups."""

from __future__ import annotations

from pathlib import Path

import typer

from mailtix import __version__
from mailtix.cli.common import Boundary, State, new_app, print_json, state

app = typer.Typer(
    help="Company mailboxes as a ticket system, and business documents sent by mail.",
    cls=Boundary,
    no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mailtix {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Path = typer.Option(None, "--config", "-c", envvar="MAILTIX_CONFIG",
                                help="config file (default: platform config dir/config.toml)"),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                help="more output; twice for debug logs"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks of errors"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="print the version and exit"),
) -> None:
    ctx.obj = State(config, debug, verbose)
    from mailtix.logs import setup

    setup(verbose + (2 if debug else 0))


@app.command()
def init(ctx: typer.Context,
         force: bool = typer.Option(False, "--force", help="overwrite an existing config")) -> None:
    """Write a starter config.toml (and accounts.d/) at the config location."""
    from mailtix.config import config_path
    from mailtix.config.write import write_starter

    path = write_starter(config_path(state(ctx).config_arg), force)
    typer.echo(f"wrote {path}\nnext: mailtix account add NAME --email ADDRESS --host HOST")


config_app = new_app("Check the configuration.")
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(ctx: typer.Context, json: bool = typer.Option(False, "--json")) -> None:
    """Load and validate config.toml and accounts.d/; report every problem at once."""
    cfg = state(ctx).config()
    summary = {"config": str(cfg.path), "exists": cfg.exists, "accounts": sorted(cfg.accounts),
               "queues": sorted(cfg.queues), "agents": sorted(cfg.agents), "ok": True}
    if json:
        print_json(summary)
    else:
        note = "" if cfg.exists else " (not found: built-in defaults)"
        typer.echo(f"{cfg.path}{note}: ok, {len(cfg.accounts)} account(s)")


@config_app.command("path")
def config_where(ctx: typer.Context) -> None:
    """Print the config file and data directory in use."""
    st = state(ctx)
    typer.echo(f"config: {st.config().path}\ndata:   {st.data_dir()}")


def _register() -> None:
    from mailtix.cli import account

    app.add_typer(account.app, name="account")
    for name in ("run_cmd", "ticket", "ticket_actions", "status_cmd", "outgoing_cmd", "send_cmd",
                 "ops_cmd", "archive_cmd", "store_cmd", "intake_cmd"):
        __import__(f"mailtix.cli.{name}", fromlist=["register"]).register(app)


_register()


def main() -> None:
    app()
