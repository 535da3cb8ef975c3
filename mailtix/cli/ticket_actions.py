"""`mailtix ticket reply|forward|read|unread|move|trash|restore|link|type` and
`mailtix contact edit`: the agent's actions on a ticket's mail."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import typer

from mailtix import secrets
from mailtix.cli import complete, output
from mailtix.cli.common import print_json, state
from mailtix.errors import ExitCode, UsageError
from mailtix.locale import _


def register(root: typer.Typer) -> None:
    from mailtix.cli.ticket import app, contact_app

    for name, fn in (("reply", reply), ("forward", forward), ("read", read),
                     ("unread", unread), ("move", move), ("trash", trash),
                     ("restore", restore), ("link", link), ("type", type_)):
        app.command(name)(fn)
    contact_app.command("edit")(contact_edit)


NUMBER = typer.Argument(..., help="ticket number, a unique end of it, or a pasted "
                                  "[Ticket#…] tag", autocompletion=complete.tickets)
AGENT = typer.Option(None, "--as", help="agent name (default: $MAILTIX_AGENT, then $USER)",
                     autocompletion=complete.agents)
JSON = typer.Option(False, "--json")
FROM = typer.Option(None, "--from", help="send as this account, its address, or an agent's "
                                         "address listed in an account's send_as",
                    autocompletion=complete.accounts)


def reply(
    ctx: typer.Context,
    number: str = NUMBER,
    body_file: Path = typer.Option(None, "--body-file", help="the reply text ('-' for stdin)"),
    template: str = typer.Option(None, "--template", help="render this template as the reply",
                                 autocompletion=complete.templates),
    variables: list[str] = typer.Option(None, "--var", help="NAME=VALUE for the template"),
    attach: list[Path] = typer.Option(None, "--attach", exists=True, dir_okay=False,
                                      readable=True, help="attach a file (repeatable)"),
    cc: list[str] = typer.Option(None, "--cc", help="also to this address (repeatable)"),
    reply_all: bool = typer.Option(False, "--all", help="reply to all (minus our addresses)"),
    status: str = typer.Option(None, "--status", help="status after the reply (default: "
                                                      "[general] status_after_reply)"),
    from_: str = FROM,
    edit: bool = typer.Option(False, "--edit", "-e", help="write the reply in $VISUAL/$EDITOR "
                                                          "(the default on a terminal)"),
    force: bool = typer.Option(False, "--force", help="reply even to a mailer-daemon or "
                                                      "no-reply address"),
    queue_only: bool = typer.Option(False, "--queue", help="only queue; `mailtix run` sends"),
    agent: str = AGENT,
    json: bool = JSON,
) -> None:
    """Reply to a ticket's latest incoming mail; threading headers and the tag are kept.
    Without a body (and on a terminal, or with --edit) the editor opens on the quoted mail
    with To, Cc and Subject lines that are read back; an empty or unchanged file sends
    nothing."""
    from mailtix import desk, templates
    from mailtix.cli.outgoing_cmd import deliver_now, delivery_exit, parse_vars
    from mailtix.outgoing import variables as template_vars

    st = state(ctx)
    cfg = st.config()
    store = st.store()
    html, edited = None, None
    if template:
        t = desk.show(store, number)
        acct = cfg.accounts.get(t["account"]) or cfg.default_sender()
        rendered = templates.render(templates.load(cfg.path, template, cfg.language_of(acct)),
                                    template_vars(t, cfg, acct, extra=parse_vars(variables)))
        text, html = rendered.text, rendered.html
    elif body_file is not None:
        text = sys.stdin.read() if str(body_file) == "-" else body_file.read_text()
    elif edit or sys.stdin.isatty():
        edited = _compose_in_editor(cfg, store, number, list(cc or []), reply_all, from_, force)
        if edited is None:
            output.echo(_("reply aborted: the draft was empty or unchanged; nothing sent"),
                        err=True)
            raise typer.Exit(int(ExitCode.FAILURE))
        text = edited.text
    else:
        text = sys.stdin.read()
    if not text.strip():
        raise UsageError("the reply is empty; nothing queued")
    extra = {} if edited is None else {"to": edited.to, "subject": edited.subject}
    result = desk.reply(cfg, store, number, text=text, html=html, attachments=list(attach or []),
                        cc=edited.cc if edited else list(cc or []), reply_all=reply_all,
                        status=status, agent=desk.agent_name(agent), from_=from_, force=force,
                        **extra)
    if not queue_only:
        result["delivery"] = deliver_now(st, [result["outbox_id"]])
    _sent(result, queue_only, json)
    if not queue_only and delivery_exit(result["delivery"]) != ExitCode.OK:
        raise typer.Exit(int(delivery_exit(result["delivery"])))


def _sent(result: dict, queue_only: bool, json: bool) -> None:
    from mailtix.cli.outgoing_cmd import delivery_words

    if json:
        print_json(result)
        return
    state_ = "queued" if queue_only else delivery_words(result["delivery"])
    output.echo(f"{result['message_id']} {state_} to "
                f"{output.mail_text(', '.join(result['to']))}")


def _compose_in_editor(cfg, store, number, cc, reply_all, from_, force):
    from mailtix import desk, drafts

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise UsageError("no reply text and no editor", hint="set $EDITOR, or use --body-file "
                                                            "or --template")
    plan = desk.plan_reply(cfg, store, number, cc=cc, reply_all=reply_all, from_=from_)
    machines = desk.machine_addresses(plan.to)
    if machines and not force:  # say so before the agent writes anything
        raise UsageError(f"{', '.join(machines)} is a mailer-daemon or no-reply address",
                         hint="nobody reads replies there; --force opens the editor anyway")
    original = drafts.reply_text(plan.to, plan.cc, plan.subject, plan.last)
    fd, path = tempfile.mkstemp(prefix=f"mailtix-{plan.number}-", suffix=".eml")
    keep = False
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(original)
        done = subprocess.run([*shlex.split(editor), path], check=False,
                              env=secrets.child_environment())
        if done.returncode != 0:
            raise UsageError(f"the editor exited with {done.returncode}; nothing sent")
        text = Path(path).read_text()
        try:
            return drafts.read_back(text, original)
        except UsageError as exc:
            keep = True
            raise UsageError(str(exc), hint=f"your draft is kept in {path}") from None
    finally:
        if not keep:
            os.unlink(path)


def forward(ctx: typer.Context, number: str = NUMBER,
            to: list[str] = typer.Option(..., "--to", help="forward to this address "
                                                           "(repeatable)"),
            note: str = typer.Option("", "--note", help="a line of text above the forward"),
            inline: bool = typer.Option(False, "--inline", help="quote the mail in the text "
                                        "instead of attaching it (message/rfc822)"),
            message: int = typer.Option(None, "--message", help="forward this stored message "
                                                                "(default: the latest incoming)"),
            from_: str = FROM,
            queue_only: bool = typer.Option(False, "--queue",
                                            help="only queue; `mailtix run` sends"),
            agent: str = AGENT, json: bool = JSON) -> None:
    """Forward a ticket's mail to someone else, by default as an attached original."""
    from mailtix import desk, drafts
    from mailtix.cli.outgoing_cmd import deliver_now, delivery_exit

    st = state(ctx)
    result = drafts.forward(st.config(), st.store(), number, to=list(to), note=note,
                            inline=inline, agent=desk.agent_name(agent), from_=from_,
                            message_row=message)
    if not queue_only:
        result["delivery"] = deliver_now(st, [result["outbox_id"]])
    _sent(result, queue_only, json)
    if not queue_only and delivery_exit(result["delivery"]) != ExitCode.OK:
        raise typer.Exit(int(delivery_exit(result["delivery"])))


def _copies(result: dict) -> str:
    left = result.get("unreachable") or 0
    return " " + _("({n} not found: POP3, deleted or moved on the server)").format(n=left) \
        if left else ""


def _folders(result: dict) -> str:
    return output.mail_text(", ".join(result["folders"])) or "-"


def read(ctx: typer.Context, number: str = NUMBER, agent: str = AGENT,
         json: bool = JSON) -> None:
    """Mark a ticket read: clears its unread marker and sets \\Seen on the server copies."""
    _mark(ctx, number, agent, json, unread=False)


def unread(ctx: typer.Context, number: str = NUMBER, agent: str = AGENT,
           json: bool = JSON) -> None:
    """Mark a ticket unread: sets its unread marker and clears \\Seen on the server copies."""
    _mark(ctx, number, agent, json, unread=True)


def _mark(ctx, number, agent, json, unread):
    from mailtix import desk, mailbox_actions

    st = state(ctx)
    result = mailbox_actions.mark(st.config(), st.store(), number, desk.agent_name(agent),
                                  unread=unread)
    if json:
        print_json(result)
    else:
        text = _("{number}: unread; {n} server copies unseen") if unread else \
            _("{number}: read; {n} server copies seen")
        output.echo(text.format(number=result["ticket"], n=result["server_copies"])
                    + _copies(result))


def move(ctx: typer.Context, number: str = NUMBER,
         folder: str = typer.Option(..., "--folder", autocompletion=complete.folders,
                                    help="an existing folder; '/' between levels"),
         agent: str = AGENT, json: bool = JSON) -> None:
    """Move the server copies of a ticket's mail into another folder."""
    from mailtix import desk, mailbox_actions

    st = state(ctx)
    result = mailbox_actions.move(st.config(), st.store(), number, folder,
                                  desk.agent_name(agent))
    _moved(result, json, _("{number}: {n} server copies moved to {folders}"))


def trash(ctx: typer.Context, number: str = NUMBER, agent: str = AGENT,
          json: bool = JSON) -> None:
    """Move the server copies to the Trash folder and the ticket to the deleted state
    (`ticket restore` undoes it within [general] restore_window)."""
    from mailtix import desk, mailbox_actions

    st = state(ctx)
    result = mailbox_actions.trash(st.config(), st.store(), number, desk.agent_name(agent))
    _moved(result, json, _("{number}: deleted; {n} server copies to {folders}"))


def _moved(result: dict, json: bool, text: str) -> None:
    """`move` and `trash`: the result as JSON, or `text` filled in and the copies' faults."""
    if json:
        print_json(result)
    else:
        output.echo(text.format(number=result["ticket"], n=result["moved"],
                                folders=_folders(result)) + _copies(result))


def restore(ctx: typer.Context, number: str = NUMBER, agent: str = AGENT,
            json: bool = JSON) -> None:
    """Take a trashed ticket back: its status before, its server copies to their folders."""
    from mailtix import desk, mailbox_actions

    st = state(ctx)
    result = mailbox_actions.restore(st.config(), st.store(), number, desk.agent_name(agent))
    if json:
        print_json(result)
    else:
        output.echo(_("{number}: restored ({status}); {n} server copies back").format(
            number=result["ticket"], status=result["status"], n=result["moved"]))


def link(ctx: typer.Context, number: str = NUMBER,
         doc_ref: str = typer.Option(..., "--doc-ref", help="the document's reference "
                                                            "(as given to send / send-batch)"),
         agent: str = AGENT, json: bool = JSON) -> None:
    """Link a ticket to a document by hand: its mails and their answers land on the ticket."""
    from mailtix import desk

    result = desk.link(state(ctx).store(), number, doc_ref, desk.agent_name(agent))
    if json:
        print_json(result)
    else:
        output.echo(_("{number}: linked to document {doc_ref} ({n} mails)").format(
            number=result["ticket"], doc_ref=output.mail_text(result["doc_ref"]),
            n=result["mails"]))


def type_(ctx: typer.Context, number: str = NUMBER,
          value: str = typer.Argument(..., help="one of [general] ticket_types ('' clears)",
                                      autocompletion=complete.ticket_types),
          agent: str = AGENT) -> None:
    """Set a ticket's type (one of [general] ticket_types)."""
    from mailtix import desk

    st = state(ctx)
    changed = desk.set_field(st.config(), st.store(), number, "type", value,
                             desk.agent_name(agent))
    text = _("{number}: type set to {value}") if changed else _("{number}: type unchanged")
    output.echo(text.format(number=output.mail_text(number), value=output.mail_text(value)))


def contact_edit(ctx: typer.Context, email: str = typer.Argument(..., help="the address"),
                 name: str = typer.Option(None, "--name", help="full name"),
                 company: str = typer.Option(None, "--company", help="company"),
                 agent: str = AGENT, json: bool = JSON) -> None:
    """Change a contact's name or company."""
    from mailtix import desk

    row = desk.edit_contact(state(ctx).store(), email, name=name, company=company,
                            agent=desk.agent_name(agent))
    if json:
        print_json(row)
    else:
        output.echo(_("{email}: name {name}, company {company}").format(
            email=output.mail_text(row["email"]), name=output.mail_text(row["name"]) or "-",
            company=output.mail_text(row["company"]) or "-"))
