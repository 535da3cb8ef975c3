"""`mailtix send`, `mailtix send-batch`, `mailtix documents list`."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import typer

from mailtix.cli import output
from mailtix.cli.common import console, new_app, print_json, state
from mailtix.errors import ExitCode, UsageError
from mailtix.locale import N_, _

documents_app = new_app("Document mails (invoices, offers, orders) and their state.")


def register(app: typer.Typer) -> None:
    app.command("send")(send)
    app.command("send-batch")(send_batch)
    app.add_typer(documents_app, name="documents")


def send(
    ctx: typer.Context,
    to: list[str] = typer.Option(..., "--to", help="recipient (repeatable)"),
    cc: list[str] = typer.Option(None, "--cc"),
    bcc: list[str] = typer.Option(None, "--bcc"),
    template: str = typer.Option(..., "--template", help="template for subject and body"),
    variables: list[str] = typer.Option(None, "--var", help="NAME=VALUE (repeatable)"),
    attach: list[Path] = typer.Option(None, "--attach", exists=True, dir_okay=False,
                                      readable=True, help="file to attach (repeatable)"),
    from_: str = typer.Option(None, "--from", help="account name or address to send as"),
    doc_ref: str = typer.Option("", "--doc-ref", help="document reference, e.g. INV-2026-0042"),
    queue_only: bool = typer.Option(False, "--queue", help="only queue; `mailtix run` sends"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the message, send nothing"),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """Send one document mail rendered from a template; prints its Message-ID."""
    from mailtix.cli.outgoing_cmd import parse_vars
    from mailtix.documents import Row, draft_for, send_one
    from mailtix.mail.compose import compose, sender_for

    st = state(ctx)
    cfg = st.config()
    account = sender_for(cfg, from_)
    row = Row(0, list(to), list(cc or []), list(bcc or []), list(attach or []), doc_ref,
              parse_vars(variables))
    draft = draft_for(cfg, account, template, row)
    if dry_run:
        c = compose(draft)
        if json:
            print_json({"dry_run": True, "message_id": c.message_id, "rcpts": c.rcpts,
                        "raw": c.raw.decode(errors="replace")})
        else:
            sys.stdout.write(c.raw.decode(errors="replace").replace("\r\n", "\n"))
            typer.echo(f"\n(dry run: nothing sent; envelope to {', '.join(c.rcpts)})", err=True)
        return
    result = send_one(cfg, st.store(), account, draft, doc_ref=doc_ref, queue_only=queue_only)
    if json:
        print_json(result)
    else:
        typer.echo(result["message_id"])
        if result["state"] not in ("sent", "queued"):
            typer.echo(f"{result['state']}: {result.get('error', '')}", err=True)
        if result.get("note"):
            typer.echo(result["note"], err=True)
    if result["state"] == "failed":
        raise typer.Exit(int(ExitCode.PARTIAL))


def _rate(value: str | None) -> float | None:
    if not value:
        return None
    number, _, unit = value.partition("/")
    try:
        n = float(number)
    except ValueError:
        raise UsageError(f"--rate expects N/min or N/h, got {value!r}") from None
    if n <= 0 or unit not in ("", "min", "m", "h", "hour"):
        raise UsageError(f"--rate expects N/min or N/h, got {value!r}")
    return n / 60 if unit in ("h", "hour") else n


def send_batch(
    ctx: typer.Context,
    manifest: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                    help="CSV (header line) or JSON lines: to, cc, bcc, "
                                         "attachments, doc_ref, and template variables"),
    template: str = typer.Option(..., "--template"),
    from_: str = typer.Option(None, "--from", help="account name or address to send as"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and render, send nothing"),
    limit: int = typer.Option(None, "--limit", min=1, help="send at most N rows this run"),
    rate: str = typer.Option(None, "--rate", help="at most N mails per minute (N/min, N/h)"),
    batch_id: str = typer.Option(None, "--batch-id",
                                 help="resume key (default: manifest name + content hash)"),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """Send one document mail per manifest row. Every row is checked before anything is sent;
    a re-run sends only rows not sent yet, never one twice. Ctrl-C stops after the current mail.
    """
    from mailtix.batch import send_batch as run_batch
    from mailtix.mail.compose import sender_for

    st = state(ctx)
    cfg = st.config()
    account = sender_for(cfg, from_)
    per_minute = _rate(rate)
    stopping = {"flag": False}

    def on_sigint(signum, frame):
        if stopping["flag"]:
            raise KeyboardInterrupt
        stopping["flag"] = True
        typer.echo("\nstopping after the current mail (Ctrl-C again to abort)", err=True)

    previous = signal.signal(signal.SIGINT, on_sigint)
    bar = None
    try:
        if sys.stderr.isatty() and not json and not dry_run:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            bar = Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(),
                           TransferSpeedColumn(), TimeRemainingColumn(),
                           console=console(stderr=True))
        store = st.store()
        if bar is not None:
            with bar:
                task = bar.add_task("batch", total=None)
                result = run_batch(cfg, store, account, manifest, template, batch_id=batch_id,
                                   limit=limit, rate=per_minute, dry_run=dry_run,
                                   stop=lambda: stopping["flag"],
                                   progress=lambda key, st_: bar.advance(task))
        else:
            result = run_batch(cfg, store, account, manifest, template, batch_id=batch_id,
                               limit=limit, rate=per_minute, dry_run=dry_run,
                               stop=lambda: stopping["flag"])
    finally:
        signal.signal(signal.SIGINT, previous)
    if json:
        print_json(result)
    else:
        _summary(result)
    if result.failed:
        raise typer.Exit(int(ExitCode.PARTIAL))
    if result.interrupted:
        raise typer.Exit(int(ExitCode.INTERRUPTED))


def _summary(result) -> None:
    if result.dry_run:
        output.render(result.dry_run, DRY_RUN_COLUMNS, output.choose_format(None))
        typer.echo(f"dry run: {len(result.dry_run)} of {result.total} row(s) valid; "
                   "nothing sent")
        return
    row = {"batch": result.batch_id, "rows": result.total, "sent": len(result.sent),
           "skipped": len(result.skipped), "retry": len(result.retry),
           "failed": len(result.failed)}
    output.render([row], BATCH_COLUMNS, "table")
    for key, error in {**result.failed, **result.retry}.items():
        output.echo(f"{output.mail_text(key)}: {output.mail_text(error)}")
    if result.interrupted:
        output.echo(_("interrupted: run the same command again to send the rest"))


DRY_RUN_COLUMNS = [
    output.Column("row", N_("row"), right=True),
    output.Column("key", N_("key"), cut=True, drop=1, minimum=10),
    output.Column("to", N_("to"), cut=True, minimum=16),
    output.Column("subject", N_("subject"), cut=True, minimum=10, want=20),
]
BATCH_COLUMNS = [
    output.Column("batch", N_("batch"), cut=True, minimum=16),
    output.Column("rows", N_("rows"), right=True),
    output.Column("sent", N_("sent"), right=True),
    output.Column("skipped", N_("already sent"), right=True),
    output.Column("retry", N_("to retry"), right=True),
    output.Column("failed", N_("failed"), right=True),
]


@documents_app.command("list")
def documents_list(ctx: typer.Context, doc_ref: str = typer.Option("", "--doc-ref"),
                   limit: int = typer.Option(200, "--limit"),
                   fmt: str = output.FORMAT, json: bool = output.JSON) -> None:
    """Document mails with doc_ref, recipients, Message-ID, state and linked ticket."""
    from mailtix.documents import documents
    from mailtix.store import counts

    store = state(ctx).store()
    rows = documents(store, doc_ref, limit)
    total = counts.documents(store.conn, doc_ref) if len(rows) == limit else len(rows)
    output.render(rows, DOCUMENT_COLUMNS, output.choose_format(fmt, json), total=total,
                  empty=_("no document mails"))


DOCUMENT_COLUMNS = [
    output.Column("doc_ref", N_("doc_ref")),
    output.Column("rcpts", N_("to"), cut=True, minimum=12, want=24),
    output.Column("state", N_("state")),
    output.Column("sent_at", N_("sent"), time=True),
    output.Column("ticket", N_("ticket"), drop=2),
    output.Column("message_id", N_("message-id"), cut=True, drop=1, minimum=12),
]
