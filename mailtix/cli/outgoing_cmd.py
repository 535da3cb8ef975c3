"""`mailtix ticket reply`, `mailtix outbox …`, `mailtix template …`, `mailtix explain`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import typer

from mailtix.cli.common import console, new_app, print_json, state
from mailtix.errors import ExitCode, UsageError

outbox_app = new_app("The outbox: every outgoing mail, its state and its retries.")
template_app = new_app("Templates for autoresponses, replies and documents (jinja2, sandboxed).")


def register(app: typer.Typer) -> None:
    from mailtix.cli.ticket import app as ticket_app

    ticket_app.command("reply")(reply)
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

    report = deliver(st.config(), st.store(), ids)
    return {"sent": report.sent, "retry": report.retry, "failed": report.failed,
            "errors": report.errors, "sent_copy_failed": report.copies_failed,
            "busy": report.busy}


def reply(
    ctx: typer.Context,
    number: str,
    body_file: Path = typer.Option(None, "--body-file", help="the reply text ('-' for stdin)"),
    template: str = typer.Option(None, "--template", help="render this template as the reply"),
    variables: list[str] = typer.Option(None, "--var", help="NAME=VALUE for the template"),
    attach: list[Path] = typer.Option(None, "--attach", exists=True, dir_okay=False,
                                      readable=True, help="attach a file (repeatable)"),
    cc: list[str] = typer.Option(None, "--cc", help="also to this address (repeatable)"),
    reply_all: bool = typer.Option(False, "--all", help="reply to all (minus our addresses)"),
    status: str = typer.Option(None, "--status", help="set this status after queueing"),
    from_: str = typer.Option(None, "--from", help="send as this account or address"),
    queue_only: bool = typer.Option(False, "--queue", help="only queue; `mailtix run` sends"),
    agent: str = typer.Option(None, "--as", help="agent name"),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """Reply to a ticket's latest incoming mail; threading headers and the tag are kept."""
    from mailtix import desk, templates
    from mailtix.outgoing import variables as template_vars

    st = state(ctx)
    cfg = st.config()
    store = st.store()
    html = None
    if template:
        t = desk.show(store, number)
        acct = cfg.accounts.get(t["account"]) or cfg.default_sender()
        rendered = templates.render(templates.load(cfg.path, template),
                                    template_vars(t, cfg, acct, extra=parse_vars(variables)))
        text, html = rendered.text, rendered.html
    elif body_file is not None:
        text = sys.stdin.read() if str(body_file) == "-" else body_file.read_text()
    elif sys.stdin.isatty() and os.environ.get("EDITOR"):
        text = _edit()
    elif not sys.stdin.isatty():
        text = sys.stdin.read()
    else:
        raise UsageError("no reply text", hint="use --body-file, --template, or set $EDITOR")
    if not text.strip():
        raise UsageError("the reply is empty; nothing queued")
    result = desk.reply(cfg, store, number, text=text, html=html, attachments=list(attach or []),
                        cc=list(cc or []), reply_all=reply_all, status=status,
                        agent=desk.agent_name(agent), from_=from_)
    if not queue_only:
        result["delivery"] = deliver_now(st, [result["outbox_id"]])
    if json:
        print_json(result)
    else:
        d = result.get("delivery") or {}
        state_ = "queued" if queue_only else (
            "sent" if d["sent"] else "queued for retry" if d["retry"] else
            f"queued (another process is sending: {d['busy']})" if d["busy"] else "FAILED")
        typer.echo(f"{result['message_id']} {state_} to {', '.join(result['to'])}")
    if not queue_only and result["delivery"]["failed"]:
        raise typer.Exit(int(ExitCode.PARTIAL))


def _edit() -> str:
    with tempfile.NamedTemporaryFile("w+", suffix=".txt", delete=False) as fh:
        path = fh.name
    try:
        subprocess.run([*os.environ["EDITOR"].split(), path], check=False)
        return Path(path).read_text()
    finally:
        os.unlink(path)


@outbox_app.command("list")
def outbox_list(ctx: typer.Context, state_: str = typer.Option("", "--state"),
                limit: int = typer.Option(100, "--limit"),
                json: bool = typer.Option(False, "--json")) -> None:
    """List outgoing mail, newest first."""
    from mailtix.store.outbox import listing

    rows = [dict(r) for r in listing(state(ctx).store().conn, state_, limit)]
    if json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("id", "state", "kind", "from", "to", "attempts", "sent copy", "error")
    for r in rows:
        table.add_row(str(r["id"]), r["state"], r["kind"], r["mail_from"], r["rcpts"],
                      str(r["attempts"]), r["sent_copy"], r["last_error"][:60])
    console().print(table)


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
    print_json(dict(row))


def _set_state(ctx: typer.Context, row_id: int, allowed: tuple[str, ...], new: str) -> None:
    from mailtix.store import outbox

    st = state(ctx)
    store = st.store()
    row = outbox.get(store.conn, row_id)
    if row is None or row["state"] not in allowed:
        raise UsageError(f"outbox row {row_id} is {row['state'] if row else 'missing'}; "
                         f"only {'/'.join(allowed)} rows can be set {new}")
    with store.tx() as conn:
        conn.execute("UPDATE outbox SET state = ?, next_attempt_at = datetime('now') "
                     "WHERE id = ?", (new, row_id))
    typer.echo(f"outbox {row_id}: {new}")


@outbox_app.command("retry")
def outbox_retry(ctx: typer.Context, row_id: int) -> None:
    """Queue a failed or waiting row again, due now."""
    _set_state(ctx, row_id, ("failed", "retry", "cancelled"), "queued")


@outbox_app.command("cancel")
def outbox_cancel(ctx: typer.Context, row_id: int) -> None:
    """Cancel a row that has not been sent."""
    _set_state(ctx, row_id, ("queued", "retry", "failed"), "cancelled")


@template_app.command("list")
def template_list(ctx: typer.Context, json: bool = typer.Option(False, "--json")) -> None:
    """List templates (config dir first, then built-in)."""
    from mailtix import templates

    items = templates.names(state(ctx).config().path)
    if json:
        print_json([{"name": n, "origin": o} for n, o in items])
    else:
        for name, origin in items:
            typer.echo(f"{name:<24} {origin}")


@template_app.command("show")
def template_show(ctx: typer.Context, name: str) -> None:
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
def template_edit(ctx: typer.Context, name: str) -> None:
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
    subprocess.run([*editor.split(), str(draft)], check=False)
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
def template_remove(ctx: typer.Context, name: str) -> None:
    """Remove a template from the config dir (built-in ones cannot be removed)."""
    from mailtix import templates

    target = templates.user_dir(state(ctx).config().path) / f"{name}.txt"
    if not target.exists():
        raise UsageError(f"no template {name!r} in {target.parent}")
    target.unlink()
    target.with_suffix(".html").unlink(missing_ok=True)
    typer.echo(f"removed {target}")


@template_app.command("render")
def template_render(ctx: typer.Context, name: str,
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
    out = templates.render(templates.load(cfg.path, name),
                           template_vars(t, cfg, acct, extra=parse_vars(variables)))
    if json:
        print_json(out)
    else:
        typer.echo(f"Subject: {out.subject}\n\n{out.text}")


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
            typer.echo(f"{key + ':':<14} {value}")
