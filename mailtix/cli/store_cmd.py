"""`mailtix store check`: is the store file sound, and is there room to write?"""

from __future__ import annotations

import typer

from mailtix.cli.common import json_mode, new_app, print_json, state
from mailtix.errors import ExitCode

app = new_app("Look after the ticket store (SQLite in the data dir, or PostgreSQL).")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="store")


@app.command("check")
def store_check(ctx: typer.Context, json: bool = typer.Option(False, "--json")) -> None:
    """Run SQLite's integrity check (read-only) and show the free disk space; exit 7 when the
    store is damaged. On PostgreSQL: connect, check the schema version, show the size (the
    server looks after its own integrity)."""
    from mailtix.store import configured_url
    from mailtix.store.db import check

    json_mode(ctx, json)
    st = state(ctx)
    if configured_url(st.config().store.url):
        from mailtix.store import pgdb

        store = st.store()  # connects and migrates: fails with one line when it cannot
        try:
            info = pgdb.info(store.conn)
        finally:
            store.close()
        ok = info["schema_version"] == info["schema_known"]
        problems = [] if ok else [f"schema {info['schema_version']}, this mailtix knows "
                                  f"{info['schema_known']}"]
        result = {**info, "ok": ok, "problems": problems}
        if json:
            print_json(result)
        else:
            typer.echo(f"{info['store']}: {'ok' if ok else 'NOT CURRENT'} "
                       f"(PostgreSQL {info['server_version']}, "
                       f"{int(info['size_bytes']) // 2**20} MiB)")
            for problem in problems:
                typer.echo(f"  {problem}")
        if not ok:
            raise typer.Exit(int(ExitCode.STORE))
        return
    result = check(st.data_dir())
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


@app.command("info")
def store_info(ctx: typer.Context, json: bool = typer.Option(False, "--json")) -> None:
    """Show the store's backend (sqlite or postgresql), where it is (a PostgreSQL URL without
    its password), its size and schema version."""
    json_mode(ctx, json)
    st = state(ctx)
    cfg = st.config()
    from mailtix.store import configured_url

    if configured_url(cfg.store.url):
        from mailtix.store import pgdb

        store = st.store()
        try:
            result = pgdb.info(store.conn)
        finally:
            store.close()
    else:
        from mailtix.store.db import info

        result = info(st.data_dir())
    if json:
        print_json(result)
        return
    size_mb = int(result["size_bytes"]) / 2**20
    typer.echo(f"backend: {result['backend']} {result['server_version']}")
    typer.echo(f"store: {result['store']}")
    typer.echo(f"size: {size_mb:.1f} MiB")
    typer.echo(f"schema: {result['schema_version']} (this mailtix: {result['schema_known']})")


@app.command("password")
def store_password(ctx: typer.Context) -> None:
    """Keep the PostgreSQL store's password in the keyring (read from standard input, or
    asked for on a terminal); MAILTIX_STORE_PASSWORD and [store] password_cmd still win."""
    import sys

    from mailtix import secrets

    if sys.stdin.isatty():
        value = typer.prompt("PostgreSQL password", hide_input=True)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise typer.BadParameter("empty password")
    secrets.store("store", "postgresql", value)
    typer.echo("stored the store's password in the keyring")


@app.command("migrate")
def store_migrate(ctx: typer.Context,
                  to: str = typer.Option(..., "--to", metavar="URL",
                                         help="postgresql://USER@HOST:PORT/DB, an empty "
                                              "database; the password as for [store] url"),
                  json: bool = typer.Option(False, "--json")) -> None:
    """Copy the SQLite store of the data dir into an empty PostgreSQL database, in one
    transaction: row counts and every raw message's SHA-256 are checked before it is
    committed. The SQLite file is left as it was; point [store] url at the target afterwards."""
    from mailtix.errors import StoreError
    from mailtix.lock import Locked, run_lock
    from mailtix.store import copy, db, password
    from mailtix.store.url import redact

    json_mode(ctx, json)
    st = state(ctx)
    cfg = st.config()
    if not to.startswith(("postgresql://", "postgres://")):
        raise typer.BadParameter("expected a postgresql:// URL", param_hint="--to")
    data_dir = st.data_dir()
    if not (data_dir / db.STORE_FILE).exists():
        raise StoreError(f"no SQLite store at {data_dir / db.STORE_FILE}",
                         hint="`mailtix config path` shows the data dir")
    try:
        with run_lock(data_dir):  # no run writes to the store while it is copied
            src = db.connect(data_dir)
            try:
                result = copy.copy(src, to, password(cfg.store.password_cmd))
            finally:
                src.close()
    except Locked as exc:
        raise StoreError(f"a mailtix run is active ({exc.holder}); nothing was copied",
                         hint="try again when it has finished (or stop the timer)") from None
    if json:
        print_json(result)
        return
    typer.echo(f"copied {result['rows']} rows in {len(result['tables'])} tables to "
               f"{redact(to)} (schema {result['schema_version']}); "
               f"{result['raw_messages_verified']} raw messages verified by SHA-256")
    typer.echo(f"next: set [store] url = \"{redact(to)}\" on every host")
