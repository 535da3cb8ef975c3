"""`mailtix store check`: is the store file sound, and is there room to write?"""

from __future__ import annotations

import typer

from mailtix.cli.common import json_mode, new_app, print_json, state
from mailtix.errors import ExitCode

app = new_app("Look after the ticket store (the SQLite file in the data dir).")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="store")


@app.command("check")
def store_check(ctx: typer.Context, json: bool = typer.Option(False, "--json")) -> None:
    """Run SQLite's integrity check (read-only) and show the free disk space; exit 7 when the
    store is damaged."""
    from mailtix.store.db import check

    json_mode(ctx, json)
    result = check(state(ctx).data_dir())
    if json:
        print_json(result)
    else:
        free_mb = int(result["free_bytes"]) // 2**20
        size_mb = int(result["size_bytes"]) // 2**20
        verdict = "ok" if result["ok"] else "DAMAGED"
        typer.echo(f"{result['store']}: {verdict} ({size_mb} MiB, {free_mb} MiB free on its disk)")
        for problem in list(result["problems"])[:20]:
            typer.echo(f"  {problem}")
    if not result["ok"]:
        typer.echo("hint: restore the store from a backup, or move it away to start afresh "
                   "(mail still on the server is fetched again)", err=True)
        raise typer.Exit(int(ExitCode.STORE))
