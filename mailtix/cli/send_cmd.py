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
    template: str = typer.Option(None, "--template", help="template for subject and body"),
    subject: str = typer.Option(None, "--subject", help="subject of a free-text mail "
                                                        "(with --body-file, no template)"),
    body_file: Path = typer.Option(None, "--body-file",
                                   help="text of a free-text mail ('-' for stdin)"),
    variables: list[str] = typer.Option(None, "--var", help="NAME=VALUE (repeatable)"),
    attach: list[Path] = typer.Option(None, "--attach", exists=True, dir_okay=False,
                                      readable=True, help="file to attach (repeatable)"),
    from_: str = typer.Option(None, "--from", help="account name or address to send as"),
    doc_ref: str = typer.Option("", "--doc-ref", help="document reference, e.g. INV-2026-0042"),
    queue_only: bool = typer.Option(False, "--queue", help="only queue; `mailtix run` sends"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the message, send nothing"),
    resend: bool = typer.Option(False, "--resend",
                                help="send even if this doc_ref already went to a recipient"),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """Send one document mail, rendered from a template or given as --subject and
    --body-file; prints its Message-ID. A --doc-ref already sent (or queued) to one of the
    recipients is not sent again unless --resend. Exits 6 when a recipient was refused, 75
    when the mail is only queued for a retry."""
    from mailtix.cli.outgoing_cmd import parse_vars
    from mailtix.documents import Row, draft_for, free_text, send_one
    from mailtix.mail.compose import compose, sender_for

    if (template is None) == (subject is None and body_file is None):
        raise UsageError("give either --template or --subject with --body-file")
    if template is None and (subject is None or body_file is None):
        raise UsageError("a mail without a template needs both --subject and --body-file")
    st = state(ctx)
    cfg = st.config()
    account = sender_for(cfg, from_)
    row = Row(0, list(to), list(cc or []), list(bcc or []), list(attach or []), doc_ref,
              parse_vars(variables))
    if template is not None:
        draft = draft_for(cfg, account, template, row)
    else:
        try:
            text = sys.stdin.read() if str(body_file) == "-" else body_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {body_file}: {exc}") from None
        draft = free_text(cfg, account, row, subject, text)
    if dry_run:
        c = compose(draft)
        if json:
            print_json({"dry_run": True, "message_id": c.message_id, "rcpts": c.rcpts,
                        "raw": c.raw.decode(errors="replace")})
        else:
            sys.stdout.write(c.raw.decode(errors="replace").replace("\r\n", "\n"))
            typer.echo(f"\n(dry run: nothing sent; envelope to {', '.join(c.rcpts)})", err=True)
        return
    from mailtix.batch import document_sent, record_resend

    store = st.store()
    prior = document_sent(store, doc_ref, draft.to)
    if prior is not None and not resend:
        if json:
            print_json({"state": "skipped", **prior})
        else:
            typer.echo(f"{prior['reason']}; nothing sent (--resend sends it again)", err=True)
        return
    result = send_one(cfg, store, account, draft, doc_ref=doc_ref, queue_only=queue_only)
    if prior is not None:
        record_resend(store, account, doc_ref, draft.to, result["message_id"], prior)
    if json:
        print_json(result)
    else:
        typer.echo(result["message_id"])
        if result["state"] not in ("sent", "queued"):
            typer.echo(f"{result['state']}: {result.get('error', '')}", err=True)
        for r in result["refused"]:
            typer.echo(f"refused: {r['rcpt']}: {r['reply']}", err=True)
        if result["state"] == "retry":
            typer.echo("queued for a retry; `mailtix run` sends it (same Message-ID)", err=True)
        if result.get("note"):
            typer.echo(result["note"], err=True)
    if queue_only:
        return
    if result["state"] == "failed" or result["refused"]:
        raise typer.Exit(int(ExitCode.PARTIAL))
    if result["state"] != "sent" or result.get("busy"):
        raise typer.Exit(int(ExitCode.TEMPFAIL))


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
                                 help="resume key (default: a hash of the rows' content)"),
    column_map: list[str] = typer.Option(None, "--map", metavar="FIELD=COLUMN",
                                         help="take FIELD (to, doc_ref, a variable) from the "
                                              "file's COLUMN (repeatable)"),
    encoding: str = typer.Option(None, "--encoding",
                                 help="CSV encoding (default: BOM, else UTF-8, else cp1252)"),
    delimiter: str = typer.Option(None, "--delimiter",
                                  help="CSV delimiter (default: sniffed among , ; and tab)"),
    resend: bool = typer.Option(False, "--resend",
                                help="send rows again whose doc_ref was sent before"),
    resend_ref: list[str] = typer.Option(None, "--resend-ref", metavar="REF",
                                         help="send this doc_ref again (repeatable)"),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """Send one document mail per manifest row. Every row is checked before anything is sent;
    a document (doc_ref + recipient) already sent or queued, from any batch or file, is
    skipped with its date and Message-ID. A re-run sends only rows not sent yet. Ctrl-C stops
    after the current mail (at once during a --rate pause). Exit 6 when rows failed, are
    left to retry or a recipient refused one, 130 when interrupted.
    """
    from mailtix.batch import send_batch as run_batch
    from mailtix.mail.compose import sender_for
    from mailtix.manifest import Layout

    st = state(ctx)
    cfg = st.config()
    account = sender_for(cfg, from_)
    per_minute = _rate(rate)
    layout = Layout(encoding, _delimiter(delimiter), _column_map(column_map or []),
                    cfg.documents.columns)
    stopping = {"flag": False}

    def on_sigint(signum, frame):
        if stopping["flag"]:
            raise KeyboardInterrupt
        stopping["flag"] = True
        typer.echo("\nstopping after the current mail (Ctrl-C again to abort)", err=True)

    previous = signal.signal(signal.SIGINT, on_sigint)
    options = {"layout": layout, "batch_id": batch_id, "limit": limit, "rate": per_minute,
               "dry_run": dry_run, "resend": resend, "resend_refs": frozenset(resend_ref or []),
               "stop": lambda: stopping["flag"]}
    try:
        store = st.store()
        if sys.stderr.isatty() and not json and not dry_run:
            bar = progress_bar(console(stderr=True))
            with bar:
                task = bar.add_task("sending", total=None)
                result = run_batch(cfg, store, account, manifest, template, **options,
                                   started=lambda total: bar.update(task, total=total),
                                   progress=lambda key, st_: bar.advance(task))
        else:
            result = run_batch(cfg, store, account, manifest, template, **options)
    finally:
        signal.signal(signal.SIGINT, previous)
    if json:
        print_json(result)
    else:
        _summary(result)
    if result.interrupted:
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    if result.failed or result.retry or result.refused:
        raise typer.Exit(int(ExitCode.PARTIAL))


def progress_bar(out):
    """done/total, mails per second and the time left (the total is known: validation
    counted the rows)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class MailRate(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("? mails/s" if speed is None else f"{speed:.1f} mails/s")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    MailRate(), TimeRemainingColumn(), console=out)


def _column_map(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        ours, sep, theirs = pair.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise UsageError(f"--map expects FIELD=COLUMN (e.g. to=E-Mail), got {pair!r}")
        out[ours.strip()] = theirs.strip()
    return out


def _delimiter(value: str | None) -> str | None:
    if value is None:
        return None
    value = {"tab": "\t", "\\t": "\t"}.get(value.lower(), value)
    if len(value) != 1:
        raise UsageError(f"--delimiter expects one character (or 'tab'), got {value!r}")
    return value


def _summary(result) -> None:
    if result.dry_run:
        items = [{**i, "to": ", ".join(i["to"]),
                  "action": "skip" if i["action"] == "skip" else i["action"].replace("new", "send"),
                  "subject": i.get("subject") or i["reason"],
                  "reason": i["reason"] if i["action"] not in ("skip", "new", "send") else ""}
                 for i in result.dry_run]
        output.render(items, DRY_RUN_COLUMNS, output.choose_format(None))
        would = sum(1 for i in result.dry_run if i["action"] != "skip")
        output.echo(f"dry run: {len(result.dry_run)} of {result.total} row(s) valid; {would} "
                    f"would be sent, {len(result.skipped)} skipped; nothing sent")
        for warning in result.warnings:
            output.echo(f"warning: {output.mail_text(warning)}")
        return
    row = {"batch": result.batch_id, "rows": result.total, "sent": len(result.sent),
           "skipped": len(result.skipped), "retry": len(result.retry),
           "failed": len(result.failed)}
    output.render([row], BATCH_COLUMNS, "table")
    for item in result.skipped:
        output.echo(f"row {item['row']} ({output.mail_text(item['key'])}): skipped: "
                    f"{output.mail_text(item['reason'])}")
    for note in result.notes:
        output.echo(output.mail_text(note))
    for key, error in {**result.failed, **result.retry}.items():
        output.echo(f"{output.mail_text(key)}: {output.mail_text(error)}")
    for key, refused in result.refused.items():
        for r in refused:
            output.echo(f"{output.mail_text(key)}: refused: {output.mail_text(r['rcpt'])}: "
                        f"{output.mail_text(r['reply'])}")
    for warning in result.warnings:
        output.echo(f"warning: {output.mail_text(warning)}")
    if result.retry:
        output.echo(f"{len(result.retry)} row(s) queued for retry: `mailtix run` sends them")
    if result.interrupted:
        output.echo(_("interrupted: run the same command again to send the rest"))


DRY_RUN_COLUMNS = [
    output.Column("row", N_("row"), right=True),
    output.Column("action", N_("action")),
    output.Column("key", N_("key"), cut=True, drop=1, minimum=10),
    output.Column("to", N_("to"), cut=True, minimum=16),
    output.Column("subject", N_("subject"), cut=True, minimum=10, want=20),
    output.Column("reason", N_("reason"), cut=True, drop=2),
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
                   state_: str = typer.Option("", "--state",
                                              help="bounced, sent, queued, failed or cancelled"),
                   since: str = typer.Option("", "--since",
                                             help="sent on or after this date (2026-11-01) or "
                                                  "within this age (7d, 12h)"),
                   limit: int = typer.Option(200, "--limit"),
                   fmt: str = output.FORMAT, json: bool = output.JSON) -> None:
    """Document mails with doc_ref, recipients, Message-ID, state (bounced: a recipient was
    refused or bounced), what came back and the linked ticket."""
    from mailtix.documents import documents
    from mailtix.store import counts

    store = state(ctx).store()
    rows = documents(store, doc_ref, limit, state_, _since(since))
    filtered = bool(state_ or since)
    total = (counts.documents(store.conn, doc_ref) if len(rows) == limit and not filtered
             else len(rows))
    shown = []
    for r in rows:
        why = "; ".join(f"{b['rcpt']} {b['status']} {b['diagnostic']}".strip()
                        for b in r["bounces"]) or "; ".join(
            f"{x['rcpt']} {x['reply']}" for x in r["recipients"]
            if x["state"] in ("refused", "failed"))
        if r["delays"] and not why:
            why = f"delayed: {r['delays'][-1]['rcpt']} {r['delays'][-1]['status']}"
        to = ", ".join(x["rcpt"] + ("" if x["state"] in ("sent", "queued") else
                                    f" ({x['state']})") for x in r["recipients"])
        shown.append({**r, "doc_ref": r["doc_ref"] or "-", "rcpts": to or ", ".join(r["rcpts"]),
                      "why": why})
    output.render(shown, DOCUMENT_COLUMNS, output.choose_format(fmt, json), total=total,
                  empty=_("no document mails"), data=rows)


DOCUMENT_COLUMNS = [
    output.Column("doc_ref", N_("doc_ref")),
    output.Column("rcpts", N_("to"), cut=True, minimum=12, want=24),
    output.Column("state", N_("state")),
    output.Column("sent_at", N_("sent"), time=True),
    output.Column("ticket", N_("ticket"), drop=2),
    output.Column("message_id", N_("message-id"), cut=True, drop=1, minimum=12),
    output.Column("why", N_("why"), cut=True, drop=3),
]


def _since(value: str) -> str:
    if not value:
        return ""
    from datetime import datetime

    try:
        return datetime.fromisoformat(value).isoformat(timespec="seconds")
    except ValueError:
        from mailtix.cli.ticket import _ago

        return _ago(value)
