"""`mailtix status`: for people and for monitoring."""

from __future__ import annotations

import typer

from mailtix.cli.common import console, print_json, state
from mailtix.errors import ExitCode


def register(app: typer.Typer) -> None:
    from mailtix.cli import actions_cmd

    app.command("status")(status)
    actions_cmd.register(app)


def status(ctx: typer.Context, json: bool = typer.Option(False, "--json")) -> None:
    """Per account: last run, last success, last error, back-off; server actions not done;
    tickets by status and queue.

    Exits 6 when an active account has been failing longer than [general] alert_after.
    """
    from mailtix.cli.actions_cmd import describe
    from mailtix.health import status as collect
    from mailtix.store.fetchstate import action_summary

    st = state(ctx)
    store = st.store()
    try:
        data = collect(st.config(), store)
        data["server_actions"] = action_summary(store.conn)
    finally:
        store.close()
    if json:
        print_json(data)
    else:
        from rich.table import Table

        table = Table("account", "active", "last run", "last success", "fetched", "error")
        for a in data["accounts"]:
            err = a.get("last_error") or ""
            if a.get("backoff_until"):
                err += f" (back-off until {a['backoff_until'][11:19]})"
            table.add_row(a["account"], "yes" if a["active"] else "no",
                          (a.get("last_run_at") or "never")[:19],
                          (a.get("last_success_at") or "never")[:19],
                          str(a.get("fetched_total", 0)), err)
        out = console()
        out.print(table)
        out.print("tickets: " + (", ".join(f"{k} {v}" for k, v in
                                          data["tickets_by_status"].items()) or "none"))
        out.print("open by queue: " + (", ".join(f"{k or '-'} {v}" for k, v in
                                                data["open_by_queue"].items()) or "none"))
        if data["outbox"]:
            out.print("outbox: " + ", ".join(f"{k} {v}" for k, v in data["outbox"].items()))
        for row in data["server_actions"]:
            if row["state"] != "pending" or row["last_error"]:
                typer.echo("server actions: " + describe(row))
        if data["quarantined"]:
            out.print(f"quarantined messages: {data['quarantined']} (mailtix reprocess --list)")
        for name in data["alert"]:
            out.print(f"[red]ALERT[/]: account {name} has been failing for too long")
    if data["alert"]:
        raise typer.Exit(int(ExitCode.PARTIAL))
