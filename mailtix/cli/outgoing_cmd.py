"""`mailtix outbox …`, `mailtix template …`, `mailtix explain`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from json import loads
from pathlib import Path

import typer

from mailtix import secrets
from mailtix.cli import complete, output
from mailtix.cli.common import new_app, print_json, state
from mailtix.errors import ExitCode, UsageError
from mailtix.locale import N_, _

outbox_app = new_app("The outbox: every outgoing mail, its state and its retries.")
TEMPLATE = typer.Argument(..., help="template name", autocompletion=complete.templates)
template_app = new_app("Templates for autoresponses, replies and documents (jinja2, sandboxed).")


def register(app: typer.Typer) -> None:
    app.add_typer(outbox_app, name="outbox")
    app.add_typer(template_app, name="template")
    app.command("explain")(explain)


def parse_vars(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"--var expects NAME=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def deliver_now(st, ids: list[int]) -> dict:
    from mailtix.delivery import deliver
    from mailtix.store import outbox

    store = st.store()
    report = deliver(st.config(), store, ids)
    rcpts = [r for i in ids for r in outbox.rcpts(store.conn, i)]
    return {"sent": report.sent, "retry": report.retry, "failed": report.failed,
            "partial": report.partial, "errors": report.errors,
            "sent_copy_failed": report.copies_failed, "busy": report.busy,
            "recipients": rcpts,
            "refused": [r for r in rcpts if r["state"] in outbox.REFUSED]}


def delivery_exit(d: dict) -> ExitCode:
    """PARTIAL when the mail or one of its recipients was refused for good; TEMPFAIL when
    it is only queued (for a retry, or behind another sender)."""
    if d["failed"] or d["refused"]:
        return ExitCode.PARTIAL
    if d["retry"] or d["busy"] or any(r["state"] in ("queued", "retry")
                                      for r in d["recipients"]):
        return ExitCode.TEMPFAIL
    return ExitCode.OK


def delivery_words(d: dict) -> str:
    """'sent', 'queued for retry', 'FAILED', plus each recipient not reached."""
    state_ = ("FAILED" if d["failed"] else "sent" if d["sent"] else "queued for retry"
              if d["retry"] else f"queued (another process is sending: {d['busy']})"
              if d["busy"] else "queued")
    missing = [f"{r['rcpt']} {'to retry' if r['state'] == 'retry' else r['state']}"
               f"{': ' + r['reply'] if r['reply'] else ''}" for r in d["recipients"]
               if r["state"] not in ("sent", "queued")]
    return state_ + (" (" + "; ".join(missing) + ")" if missing and d["sent"] else "")


@outbox_app.command("list")
def outbox_list(ctx: typer.Context, state_: str = typer.Option("", "--state"),
                limit: int = typer.Option(100, "--limit"),
                fmt: str = output.FORMAT, json: bool = output.JSON) -> None:
    """List outgoing mail, newest first."""
    from mailtix.store import counts
    from mailtix.store.outbox import listing

    conn = state(ctx).store().conn
    rows = [dict(r) for r in listing(conn, state_, limit)]
    total = counts.outbox(conn, state_) if len(rows) == limit else len(rows)
    shown = [{**r, "rcpts": ", ".join(loads(r["rcpts"]))} for r in rows]
    output.render(shown, OUTBOX_COLUMNS, output.choose_format(fmt, json), total=total,
                  empty=_("the outbox is empty"), data=rows)


OUTBOX_COLUMNS = [
    output.Column("id", N_("id"), right=True),
    output.Column("state", N_("state")),
    output.Column("kind", N_("kind"), drop=4),
    output.Column("mail_from", N_("from"), cut=True, drop=3),
    output.Column("rcpts", N_("to"), cut=True, minimum=12, want=24),
    output.Column("attempts", N_("attempts"), right=True, drop=5),
    output.Column("sent_copy", N_("sent copy"), drop=6),
    output.Column("created_at", N_("created"), time=True, drop=2),
    output.Column("refused", N_("not reached"), cut=True, drop=1),
    output.Column("last_error", N_("error"), cut=True, drop=1),
]


@outbox_app.command("show")
def outbox_show(ctx: typer.Context, row_id: int,
                raw: bool = typer.Option(False, "--raw", help="print the message bytes")) -> None:
    """Show one outbox row (or its raw message)."""
    from mailtix.store import messages, outbox

    conn = state(ctx).store().conn
    row = outbox.get(conn, row_id)
    if row is None:
        raise UsageError(f"no outbox row {row_id}")
    if raw:
        sys.stdout.buffer.write(messages.get_raw(conn, row["raw_sha256"]) or b"")
        return
    print_json(dict(row) | {"state": outbox.shown_state(conn, row_id),
                            "recipients": outbox.rcpts(conn, row_id),
                            "events": outbox.events(conn, row_id)})


def _set_state(ctx: typer.Context, row_id: int, allowed: tuple[str, ...], new: str) -> None:
    from mailtix.store import outbox

    st = state(ctx)
    store = st.store()
    row = outbox.get(store.conn, row_id)
    shown = outbox.shown_state(store.conn, row_id) if row is not None else "missing"
    if shown not in allowed:
        raise UsageError(f"outbox row {row_id} is {shown}; "
                         f"only {'/'.join(allowed)} rows can be set {new}")
    with store.tx() as conn:
        conn.execute("UPDATE outbox SET state = ?, next_attempt_at = datetime('now') "
                     "WHERE id = ?", (new, row_id))
        if new == "queued":  # on purpose: the recipients not reached are tried again
            outbox.requeue_rcpts(conn, row_id)
    typer.echo(f"outbox {row_id}: {new}")


@outbox_app.command("retry")
def outbox_retry(ctx: typer.Context, row_id: int) -> None:
    """Queue a failed or waiting row again, due now; of a partial row only the recipients
    that refused it are tried again (the others have it already)."""
    _set_state(ctx, row_id, ("failed", "partial", "retry", "cancelled"), "queued")


@outbox_app.command("cancel")
def outbox_cancel(ctx: typer.Context, row_id: int) -> None:
    """Cancel a row that has not been sent."""
    _set_state(ctx, row_id, ("queued", "retry", "failed"), "cancelled")


@template_app.command("list")
def template_list(ctx: typer.Context, fmt: str = output.FORMAT,
                  json: bool = output.JSON) -> None:
    """List templates (config dir first, then built-in)."""
    from mailtix import templates

    rows = [{"name": n, "origin": o} for n, o in templates.names(state(ctx).config().path)]
    output.render(rows, TEMPLATE_COLUMNS, output.choose_format(fmt, json))


TEMPLATE_COLUMNS = [
    output.Column("name", N_("name")),
    output.Column("origin", N_("origin"), cut=True, minimum=12),
]


@template_app.command("show")
def template_show(ctx: typer.Context, name: str = TEMPLATE) -> None:
    """Print a template's source."""
    from mailtix import templates

    src = templates.load(state(ctx).config().path, name)
    typer.echo(src.text + (f"\n--- {name}.html ---\n{src.html}" if src.html else ""))


@template_app.command("add")
def template_add(ctx: typer.Context, name: str,
                 file: Path = typer.Option(..., "--file", exists=True, dir_okay=False,
                                           help="the NAME.txt source to copy in"),
                 html: Path = typer.Option(None, "--html", exists=True, dir_okay=False),
                 force: bool = typer.Option(False, "--force")) -> None:
    """Add a template to the config dir's templates/ (rendered against sample variables
    before it is written)."""
    from mailtix import templates
    from mailtix.fsutil import atomic_write

    cfg = state(ctx).config()
    target = templates.user_dir(cfg.path) / f"{name}.txt"
    if not templates.NAME.match(name):
        raise UsageError(f"bad template name {name!r}")
    src = templates.Source(name, templates.read(file), templates.read(html) if html else None,
                           str(file), str(target.parent))
    _check(cfg, src)
    if target.exists() and not force:
        raise UsageError(f"{target} exists", hint="use --force to replace it")
    atomic_write(target, src.text.encode(), mode=0o644)
    if src.html is not None:
        atomic_write(target.with_suffix(".html"), src.html.encode(), mode=0o644)
    typer.echo(f"added {target}")


def _check(cfg, src) -> None:
    """Render with sample variables: a fault shows now, not in the next run's autoresponse."""
    from mailtix import templates

    templates.check(src, templates.samples(cfg, cfg.default_sender()))


@template_app.command("edit")
def template_edit(ctx: typer.Context, name: str = TEMPLATE) -> None:
    """Edit the config dir's copy of a template in $EDITOR (copying a built-in one first);
    the edit replaces the template only when it renders against sample variables."""
    from mailtix import templates
    from mailtix.fsutil import atomic_write

    cfg = state(ctx).config()
    editor = os.environ.get("EDITOR")
    current = templates.load(cfg.path, name)
    target = templates.user_dir(cfg.path) / f"{name}.txt"
    if not editor:
        raise UsageError("$EDITOR is not set", hint=f"edit {target} directly")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".txt.edit", dir=target.parent)
    draft = Path(tmp)
    with os.fdopen(fd, "w") as fh:
        fh.write(current.text)
    subprocess.run([*editor.split(), str(draft)], check=False,
                   env=secrets.child_environment())
    edited = templates.Source(name, templates.read(draft), current.html, str(target),
                              str(target.parent))
    try:
        _check(cfg, edited)
    except templates.TemplateError as exc:
        exc.hint = (f"{target} is unchanged; your edit is kept in {draft} "
                    f"(`mailtix template add {name} --file {draft} --force` once it is fixed)")
        raise
    atomic_write(target, edited.text.encode(), mode=0o644)
    draft.unlink()
    typer.echo(f"saved {target}")


@template_app.command("remove")
def template_remove(ctx: typer.Context, name: str = TEMPLATE) -> None:
    """Remove a template from the config dir (built-in ones cannot be removed)."""
    from mailtix import templates

    target = templates.user_dir(state(ctx).config().path) / f"{name}.txt"
    if not target.exists():
        raise UsageError(f"no template {name!r} in {target.parent}")
    target.unlink()
    target.with_suffix(".html").unlink(missing_ok=True)
    typer.echo(f"removed {target}")


@template_app.command("render")
def template_render(ctx: typer.Context, name: str = TEMPLATE,
                    variables: list[str] = typer.Option(None, "--var", help="NAME=VALUE"),
                    ticket: str = typer.Option(None, "--ticket", help="use this ticket's data"),
                    account: str = typer.Option(None, "--account"),
                    json: bool = typer.Option(False, "--json")) -> None:
    """Render a template with variables (and a ticket's data) and print the result."""
    from mailtix import desk, templates
    from mailtix.outgoing import variables as template_vars

    st = state(ctx)
    cfg = st.config()
    t = desk.show(st.store(), ticket) if ticket else None
    acct = cfg.account(account) if account else (
        cfg.accounts.get(t["account"]) if t else None) or cfg.default_sender()
    if acct is None:
        raise UsageError("no account to render for", hint="use --account NAME")
    out = templates.render(templates.load(cfg.path, name, cfg.language_of(acct)),
                           template_vars(t, cfg, acct, extra=parse_vars(variables)))
    if json:
        print_json(out)
    else:
        output.echo(f"Subject: {output.mail_text(out.subject)}\n\n"
                    f"{output.mail_text(out.text, multiline=True)}")


def explain(ctx: typer.Context, file: Path = typer.Argument(..., exists=True, dir_okay=False),
            account: str = typer.Option(None, "--account", help="as if fetched by this account"),
            json: bool = typer.Option(False, "--json")) -> None:
    """Say which ticket a mail would thread into and whether it would be autoresponded, and
    why — without changing anything."""
    from mailtix.explain import explain as run_explain

    st = state(ctx)
    result = run_explain(st.config(), st.store(), file.read_bytes(), account)
    if json:
        print_json(result)
    else:
        for key, value in result.items():
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            output.echo(f"{key + ':':<14} {output.mail_text(value)}")
