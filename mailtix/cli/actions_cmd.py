"""`mailtix actions list/retry/drop`: post-fetch server actions (seen, move, delete) that are
still to do, waiting for a safe expunge, or parked after the server refused them."""

from __future__ import annotations

import typer

from mailtix.cli.common import new_app, print_json, state

app = new_app("Post-fetch server actions still to do, and the parked ones the server refused.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="actions")


def describe(row: dict) -> str:
    """One line per group of actions: where, what, how many, and what to do about it."""
    what = f"move to {row['target']!r}" if row["action"] == "move" else row["action"]
    text = f"{row['account']} {row['folder']}: {what} of {row['count']} message(s) {row['state']}"
    if row["state"] == "parked":
        text += (f" after {row['attempts']} failed runs: {row['last_error']} (fix it, then "
                 f"`mailtix actions retry {row['account']}`, or `mailtix actions drop "
                 f"{row['account']}`)")
    elif row["state"] == "waiting" or row["last_error"]:
        text += f": {row['last_error']}"
    return text


@app.command("list")
def list_(ctx: typer.Context, account: str = typer.Option(None, "--account"),
          json: bool = typer.Option(False, "--json")) -> None:
    """Server actions not done yet: pending, waiting (flagged, expunge later) or parked."""
    from mailtix.store.fetchstate import action_summary

    store = state(ctx).store()
    try:
        rows = action_summary(store.conn, account)
    finally:
        store.close()
    if json:
        print_json(rows)
        return
    for row in rows:
        typer.echo(describe(row))
    if not rows:
        typer.echo("no server actions waiting")


@app.command("retry")
def retry(ctx: typer.Context,
          account: str = typer.Argument(None, help="only this account's (default: all)")) -> None:
    """Try parked actions again at the next run (after fixing the cause, e.g. move_to)."""
    from mailtix.store.fetchstate import retry_parked

    _change(ctx, account, retry_parked, "to be tried again at the next run")


@app.command("drop")
def drop(ctx: typer.Context,
         account: str = typer.Argument(None, help="only this account's (default: all)")) -> None:
    """Forget parked actions: the mail stays stored, and stays as it is on the server."""
    from mailtix.store.fetchstate import drop_parked

    _change(ctx, account, drop_parked, "dropped; the mail stays as it is on the server")


def _change(ctx: typer.Context, account: str | None, change, done: str) -> None:
    st = state(ctx)
    if account:
        st.config().account(account)  # a typo is an error, not "0 actions"
    store = st.store()
    try:
        with store.tx() as conn:
            n = change(conn, account)
    finally:
        store.close()
    typer.echo(f"{n} parked action(s) {done}")
