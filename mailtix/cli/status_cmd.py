"""`mailtix status`: for people and for monitoring."""

from __future__ import annotations

import typer

from mailtix.cli import output
from mailtix.cli.common import json_mode, state
from mailtix.errors import ExitCode
from mailtix.locale import N_, _


def register(app: typer.Typer) -> None:
    from mailtix.cli import actions_cmd

    app.command("status")(status)
    actions_cmd.register(app)


def status(ctx: typer.Context, fmt: str = output.FORMAT, json: bool = output.JSON) -> None:
    """Per account: last run, last success, last error, back-off; server actions not done;
    tickets by status and queue.

    Exits 6 when an active account has been failing longer than [general] alert_after.
    With --format tsv or csv only the per-account rows are printed.
    """
    from mailtix.cli.actions_cmd import describe
    from mailtix.health import status as collect
    from mailtix.store.fetchstate import action_summary

    fmt = output.choose_format(fmt, json)
    st = state(ctx)
    json_mode(ctx, json)
    store = st.store()
    try:
        data = collect(st.config(), store)
        data["server_actions"] = action_summary(store.conn)
    finally:
        store.close()
    rows = []
    for a in data["accounts"]:
        err = output.mail_text(a.get("last_error"))
        if a.get("backoff_until"):
            err += " " + _("(back-off until {time})").format(
                time=output.local_time(a["backoff_until"], seconds=True)[-8:])
        rows.append({**a, "error": err, "fetched": a.get("fetched_total", 0),
                     "last_run_at": a.get("last_run_at") or "",
                     "last_success_at": a.get("last_success_at") or ""})
    output.render(rows, ACCOUNT_COLUMNS, fmt, data=data)
    if fmt == "table":
        def counted(items: dict) -> str:
            return ", ".join(f"{output.mail_text(k) or '-'} {v}" for k, v in items.items())

        echo = output.echo
        echo(_("tickets: {counts}").format(counts=counted(data["tickets_by_status"])
                                           or _("none")))
        echo(_("open by queue: {counts}").format(counts=counted(data["open_by_queue"])
                                                 or _("none")))
        if data["outbox"]:
            echo(_("outbox: {counts}").format(counts=counted(data["outbox"])))
        for row in data["server_actions"]:
            if row["state"] != "pending" or row["last_error"]:
                echo(_("server actions: {what}").format(what=output.mail_text(describe(row))))
        if data["quarantined"]:
            echo(_("quarantined messages: {n} (mailtix reprocess --list)").format(
                n=data["quarantined"]))
    for name in data["alert"]:
        output.echo(_("ALERT: account {name} has been failing for too long").format(name=name),
                    err=fmt != "table")
    if data["alert"]:
        raise typer.Exit(int(ExitCode.PARTIAL))


ACCOUNT_COLUMNS = [
    output.Column("account", N_("account")),
    output.Column("active", N_("active"), drop=3),
    output.Column("last_run_at", N_("last run"), time=True, drop=2),
    output.Column("last_success_at", N_("last success"), time=True),
    output.Column("fetched", N_("fetched"), right=True, drop=4),
    output.Column("error", N_("error"), cut=True, drop=1, minimum=12),
]
