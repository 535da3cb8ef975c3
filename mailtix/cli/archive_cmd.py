"""`mailtix archive run/list/search/export/verify`."""

from __future__ import annotations

from pathlib import Path

import typer

from mailtix.cli import output
from mailtix.cli.common import json_mode, new_app, print_json, state
from mailtix.errors import ExitCode, UsageError
from mailtix.locale import N_, _

app = new_app("Back up employees' mailboxes into the local archive (separate from tickets).")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="archive")


@app.command("run")
def archive_run(ctx: typer.Context,
                account: str = typer.Option(None, "--account", help="only this account"),
                dry_run: bool = typer.Option(False, "--dry-run",
                                             help="archive, but only show what would be deleted"),
                json: bool = typer.Option(False, "--json")) -> None:
    """Mirror every selected folder incrementally; delete verified old mail if configured;
    verify every stored copy and fetch a damaged one again while the server still has it.

    Exits 6 when a stored copy is damaged and could not be fetched again, 7 when the store
    cannot be used; 0 at once when another run is active.
    """
    from mailtix.archive import run, verify_and_repair
    from mailtix.lock import Locked, run_lock

    st = state(ctx)
    json_mode(ctx, json)
    try:
        with run_lock(st.data_dir()):
            store = st.store()
            result = run(st.config(), store, account, dry_run)
            checked = verify_and_repair(st.config(), store, account)
    except Locked as exc:
        if json:
            print_json({"ok": True, "skipped": "another mailtix run is active",
                        "holder": exc.holder, "accounts": {}, "verify": None})
        else:
            typer.echo(f"another mailtix run is active ({exc.holder}); nothing to do")
        return
    ok = not checked["damaged"]
    if json:
        print_json({"ok": ok, "accounts": result, "verify": checked})
    else:
        if not result:
            typer.echo("no account has [accounts.NAME.archive] enabled = true")
        for name, folders in result.items():
            for f in folders:
                extra = f", would delete {f.would_delete}" if dry_run and f.would_delete else ""
                extra += f", deleted {f.deleted}" if f.deleted else ""
                extra += (f", NOT deleted (copy unverified): {len(f.unverified)}"
                          if f.unverified else "")
                output.echo(f"{name} {output.mail_text(f.folder)}: {f.archived} archived{extra}")
        if checked["repaired"]:
            typer.echo(f"repaired {len(checked['repaired'])} damaged stored cop(ies) from "
                       "the server")
    for digest in checked["damaged"]:
        typer.echo(f"mailtix: archive copy {digest} is damaged and no longer on the server "
                   "(restore it from a backup)", err=True)
    if not ok:
        raise typer.Exit(int(ExitCode.PARTIAL))


@app.command("list")
def archive_list(ctx: typer.Context, account: str = typer.Option(None, "--account"),
                 owner: str = typer.Option(None, "--owner",
                                           help="only the mailboxes of accounts this agent "
                                                "owns ([accounts.NAME] owner)"),
                 folder: str = typer.Option(None, "--folder"),
                 limit: int = typer.Option(100, "--limit", min=1),
                 fmt: str = output.FORMAT, json: bool = output.JSON) -> None:
    """List archived messages, newest first; --owner: the mailboxes an agent owns."""
    from mailtix.archive import listing
    from mailtix.store import counts

    json_mode(ctx, json)
    st = state(ctx)
    cfg = st.config()
    store = st.store()
    names = [account] if account else [None]
    if owner:
        names = [n for n, a in sorted(cfg.accounts.items())
                 if a.owner == owner and (not account or n == account)]
        if not names:
            owners = sorted({a.owner for a in cfg.accounts.values() if a.owner}) or ["none"]
            raise UsageError(f"no account is owned by {owner!r}",
                             hint="owners in the config: " + ", ".join(owners))
    rows = sorted((r for n in names for r in listing(store, n, folder, limit)),
                  key=lambda r: r["id"], reverse=True)[:limit]
    total = (sum(counts.archive(store.conn, n, folder) for n in names)
             if len(rows) == limit else len(rows))
    for r in rows:
        acct = cfg.accounts.get(r["account"])
        r["owner"] = acct.owner if acct else ""
        r["on_server"] = not r["deleted_at"]
    output.render(rows, ARCHIVE_COLUMNS, output.choose_format(fmt, json), total=total,
                  empty=_("the archive is empty"), data=[
                      {k: v for k, v in r.items() if k != "on_server"} for r in rows])


ARCHIVE_COLUMNS = [
    output.Column("id", N_("id"), right=True),
    output.Column("account", N_("account"), drop=3),
    output.Column("folder", N_("folder"), cut=True, drop=2),
    output.Column("internal_date", N_("date"), time=True),
    output.Column("from_addr", N_("from"), cut=True, minimum=12, drop=1),
    output.Column("subject", N_("subject"), cut=True, minimum=10, want=30),
    output.Column("on_server", N_("on server"), drop=4),
    output.Column("owner", N_("owner"), drop=5),
]


@app.command("search")
def archive_search(ctx: typer.Context, query: str,
                   limit: int = typer.Option(50, "--limit", min=1),
                   fmt: str = output.FORMAT, json: bool = output.JSON) -> None:
    """Full-text search over the archive (subject, text, addresses)."""
    from mailtix.archive import search

    json_mode(ctx, json)
    rows = search(state(ctx).store(), query, limit)
    output.render(rows, ARCHIVE_SEARCH_COLUMNS, output.choose_format(fmt, json),
                  empty=_("nothing found"))


ARCHIVE_SEARCH_COLUMNS = [
    output.Column("id", N_("id"), right=True),
    output.Column("account", N_("account"), drop=3),
    output.Column("folder", N_("folder"), cut=True, drop=2),
    output.Column("subject", N_("subject"), cut=True, minimum=10, want=30),
    output.Column("snippet", N_("match"), cut=True, drop=1, minimum=20),
]


@app.command("export")
def archive_export(ctx: typer.Context,
                   mbox: Path = typer.Option(None, "--mbox", help="write an mbox file"),
                   maildir: Path = typer.Option(None, "--maildir", help="write a Maildir"),
                   account: str = typer.Option(None, "--account"),
                   folder: str = typer.Option(None, "--folder"),
                   since: str = typer.Option(None, "--since", help="YYYY-MM-DD, local time"),
                   until: str = typer.Option(None, "--until",
                                             help="YYYY-MM-DD, local time (exclusive)"),
                   force: bool = typer.Option(False, "--force",
                                              help="replace an existing mbox file, or add to "
                                                   "a Maildir that is not empty")) -> None:
    """Export archived mail (byte-exact) for an auditor: files 0600, folders 0700; a Maildir
    keeps the folders (Maildir++) and each message's flags."""
    from mailtix.archive import export

    count = export(state(ctx).store(), mbox_file=mbox, maildir=maildir, folder=folder,
                   since=output.utc_arg(since, "--since"), until=output.utc_arg(until, "--until"),
                   account=account, force=force)
    typer.echo(f"exported {count} message(s) to {mbox or maildir}")


@app.command("verify")
def archive_verify(ctx: typer.Context, json: bool = typer.Option(False, "--json")) -> None:
    """Re-hash every stored archive copy; exit 6 when any differs."""
    from mailtix.archive import verify

    json_mode(ctx, json)
    result = verify(state(ctx).store())
    if json:
        print_json(result)
    else:
        typer.echo(f"checked {result['checked']} stored copies, {len(result['bad'])} bad")
        for digest in result["bad"]:
            typer.echo(f"BAD {digest}")
    if result["bad"]:
        raise typer.Exit(int(ExitCode.PARTIAL))
