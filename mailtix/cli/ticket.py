"""`mailtix ticket …`: list, search, show, note, assign, status, queue, priority, close."""

from __future__ import annotations

import sys
from datetime import UTC
from pathlib import Path

import typer

from mailtix.cli import complete, output
from mailtix.cli.common import new_app, print_json, state
from mailtix.locale import N_, _

app = new_app("Work tickets: list, search, show, note, assign, set status and queue.")

STATUS_STYLE = {"new": "bold cyan", "open": "green", "waiting-customer": "yellow",
                "waiting-internal": "magenta", "closed": "dim", "spam": "dim red"}


contact_app = new_app("Contacts: every sender and recipient, with their tickets.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="ticket")
    root.add_typer(contact_app, name="contact")


def _ago(value: str | None) -> str:
    """'3d' / '12h' / '30m' before now, as the ISO time stored in the tickets table."""
    if not value:
        return ""
    from datetime import datetime, timedelta

    from mailtix.config.validate import parse_duration
    from mailtix.errors import UsageError

    try:
        seconds = parse_duration(value)
    except ValueError:
        raise UsageError(f"expected an age such as 30m, 12h, 3d or 2w, got {value!r}") from None
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="seconds")


def _filters(status, queue, assignee, account, contact, tag, all_, limit, offset, sort,
             project=None, older=None, newer=None):
    from mailtix.store.queries import Filters

    return Filters(status=list(status or []), queue=queue or "", assignee=assignee or "",
                   account=account or "", project=project or "", contact=contact or "",
                   tag=tag or "", older_than=_ago(older), newer_than=_ago(newer),
                   all=all_, limit=limit, offset=offset, sort=sort)


_status = typer.Option(None, "--status", "-s", help="only these statuses (repeatable)")
_queue = typer.Option(None, "--queue", "-q", autocompletion=complete.queues)
_assignee = typer.Option(None, "--assignee", autocompletion=complete.agents)
_account = typer.Option(None, "--account", autocompletion=complete.accounts)
_contact = typer.Option(None, "--contact", help="part of a contact's address")
_tag = typer.Option(None, "--tag")
_all = typer.Option(False, "--all", help="include closed, spam and deleted tickets")
_limit = typer.Option(50, "--limit", min=1)
_offset = typer.Option(0, "--offset", min=0)
_sort = typer.Option("activity", "--sort", help="activity, created, number or priority")
_project = typer.Option(None, "--project")
_older = typer.Option(None, "--older-than", help="no activity for this long (3d, 12h)")
_newer = typer.Option(None, "--newer-than", help="activity within this time (3d, 12h)")
_number = typer.Argument(..., help="ticket number, a unique end of it, or a pasted [Ticket#…] "
                                   "tag", autocompletion=complete.tickets)


@app.command("list")
def list_(ctx: typer.Context, status: list[str] = _status, queue: str = _queue,
          assignee: str = _assignee, account: str = _account, contact: str = _contact,
          tag: str = _tag, project: str = _project, older_than: str = _older,
          newer_than: str = _newer, all_: bool = _all, limit: int = _limit,
          offset: int = _offset, sort: str = _sort,
          watching: bool = typer.Option(False, "--watching",
                                        help="only tickets the agent (--as) watches"),
          agent: str = typer.Option(None, "--as", autocompletion=complete.agents,
                                    help="the agent for --watching (default: $MAILTIX_AGENT, "
                                         "then $USER)"),
          fmt: str = output.FORMAT, json: bool = output.JSON) -> None:
    """List tickets, newest activity first; closed, spam and deleted are hidden unless asked
    for."""
    from mailtix.desk import agent_name
    from mailtix.store import counts
    from mailtix.store.queries import list_tickets

    fmt = output.choose_format(fmt, json)
    store = state(ctx).store()
    filters = _filters(status, queue, assignee, account, contact, tag, all_, limit, offset, sort,
                       project, older_than, newer_than)
    filters.watching = agent_name(agent) if watching else ""
    rows = list_tickets(store.conn, filters)
    total = counts.tickets(store.conn, filters) if len(rows) == limit else offset + len(rows)
    output.render(rows, TICKET_COLUMNS, fmt, total=total - offset,
                  empty=_("no tickets match"))


def _status_style(value: str) -> str:
    return STATUS_STYLE.get(value, "")


TICKET_COLUMNS = [
    output.Column("number", N_("number")),
    output.Column("status", N_("status"), drop=1, style=_status_style),
    output.Column("unread", N_("unread"), drop=3, mark="*", minimum=1),
    output.Column("priority", N_("prio"), drop=6),
    output.Column("queue", N_("queue"), drop=5, cut=True),
    output.Column("assignee", N_("assignee"), drop=7, cut=True),
    output.Column("contact", N_("contact"), drop=2, cut=True, minimum=12),
    output.Column("subject", N_("subject"), cut=True, minimum=10, want=20),
    output.Column("messages", N_("msgs"), drop=4, right=True),
    output.Column("last_activity_at", N_("activity"), time=True),
]


@app.command("search")
def search(ctx: typer.Context, query: str, status: list[str] = _status, queue: str = _queue,
           assignee: str = _assignee, account: str = _account, contact: str = _contact,
           tag: str = _tag, project: str = _project, older_than: str = _older,
           newer_than: str = _newer, all_: bool = _all, limit: int = _limit,
           offset: int = _offset, fmt: str = output.FORMAT, json: bool = output.JSON) -> None:
    """Full-text search over subject, text and addresses, best matches first."""
    from mailtix.store.queries import search as run_search

    store = state(ctx).store()
    rows = run_search(store.conn, query, _filters(status, queue, assignee, account, contact,
                                                  tag, all_, limit, offset, "activity", project,
                                                  older_than, newer_than))
    output.render(rows, SEARCH_COLUMNS, output.choose_format(fmt, json),
                  empty=_("nothing found"))


SEARCH_COLUMNS = [
    output.Column("number", N_("number")),
    output.Column("status", N_("status"), drop=2, style=_status_style),
    output.Column("subject", N_("subject"), cut=True, minimum=10, want=30),
    output.Column("snippet", N_("match"), cut=True, drop=1, minimum=20),
]


@app.command("show")
def show(ctx: typer.Context, number: str = _number,
         raw: int = typer.Option(None, "--raw", help="print the original bytes of message ID"),
         no_pager: bool = typer.Option(False, "--no-pager",
                                       help="print straight out, not through $PAGER"),
         json: bool = typer.Option(False, "--json")) -> None:
    """Show a ticket: its header block, the thread in order, notes, attachments, history.

    On a terminal the text goes through $PAGER (default `less -FRX`; PAGER=cat or --no-pager
    to print it straight out); never when piped.
    """
    from mailtix import desk

    store = state(ctx).store()
    if raw is not None:
        sys.stdout.buffer.write(desk.raw(store, number, raw))
        return
    t = desk.show(store, number)
    if json:
        print_json(t)
        return
    output.show_lines(_show_lines(t), no_pager)


def _show_lines(t: dict) -> list:
    from rich.text import Text

    m_ = output.mail_text
    dash = "-"
    lines = [Text.assemble((t["number"], "bold"), "  ", m_(t["subject"]))]
    lines.append(Text(_("status {status} · priority {priority} · queue {queue} · assignee "
                        "{assignee} · account {account}").format(
        status=t["status"], priority=t["priority"], queue=m_(t["queue"]) or dash,
        assignee=m_(t["assignee"]) or dash, account=m_(t["account"]))))
    lines.append(Text(_("contact {contact} · watchers {watchers} · tags {tags}").format(
        contact=m_(t["contact"]) or dash, watchers=m_(", ".join(t["watchers"])) or dash,
        tags=m_(", ".join(t["tags"])) or dash)))
    more = [text for on, text in (
        (t.get("type"), lambda: _("type {type}").format(type=m_(t["type"]))),
        (t.get("doc_ref"), lambda: _("document {doc_ref}").format(doc_ref=m_(t["doc_ref"]))),
        (t.get("unread"), lambda: _("marked unread"))) if on]
    if more:
        lines.append(Text(" · ".join(text() for text in more)))
    for m in t["messages"]:
        who = m["author"] if m["direction"] == "note" else (m["from_addr"] or "?")
        arrow = {"in": "←", "out": "→", "note": "✎"}[m["direction"]]
        flags = [k for k in ("bounce", "auto_submitted", "list", "spam", "malformed") if m[k]]
        when = output.local_time(m["date"] or m["created_at"])
        lines.append(Text(f"── {arrow} #{m['id']} {m_(who)} {when}"
                          + (f" [{', '.join(flags)}]" if flags else "") + " ──", style="dim"))
        lines.append(Text(_fold_quotes(output.mail_text(m["body_text"], multiline=True))))
        for a in m["attachments"]:
            lines.append(Text("  📎 " + _("{name} ({type}, {size} bytes)").format(
                name=m_(a["filename"]), type=m_(a["content_type"]), size=a["size"])))
    return lines


def _fold_quotes(text: str) -> str:
    lines, out, quoted = text.splitlines(), [], 0
    for line in lines:
        if line.startswith(">"):
            quoted += 1
            continue
        if quoted:
            out.append("  " + _("[… {n} quoted line(s)]").format(n=quoted))
            quoted = 0
        out.append(line)
    if quoted:
        out.append("  " + _("[… {n} quoted line(s)]").format(n=quoted))
    return "\n".join(out).strip()


_as = typer.Option(None, "--as", help="agent name (default: $MAILTIX_AGENT, then $USER)",
                   autocompletion=complete.agents)


@app.command("note")
def note(ctx: typer.Context, number: str = _number, text: str = typer.Argument(None),
         agent: str = _as) -> None:
    """Add an internal note (never mailed); the text from the argument or stdin."""
    from mailtix import desk

    if text is None:
        text = sys.stdin.read()
    row = desk.note(state(ctx).store(), number, text, desk.agent_name(agent))
    typer.echo(_("note {row} added to {number}").format(row=row, number=number))


# The fields _setter() names in its messages, for the catalogues (translated when shown).
SETTABLE = (N_("assignee"), N_("status"), N_("queue"), N_("priority"))


def _setter(field: str, doc: str):
    values = {"queue": complete.queues, "assignee": complete.agents}.get(field)

    def command(ctx: typer.Context, number: str = _number,
                value: str = typer.Argument(..., autocompletion=values),
                agent: str = _as) -> None:
        from mailtix import desk

        st = state(ctx)
        changed = desk.set_field(st.config(), st.store(), number, field, value,
                                 desk.agent_name(agent))
        message = _("{number}: {field} set to {value}") if changed else _(
            "{number}: {field} unchanged")
        typer.echo(message.format(number=number, field=_(field), value=value))

    command.__doc__ = doc
    return command


app.command("assign")(_setter("assignee", "Assign a ticket to an agent ('' unassigns)."))
app.command("status")(_setter("status", "Set the status: new, open, waiting-customer, "
                                        "waiting-internal, closed, spam."))
app.command("queue")(_setter("queue", "Move a ticket to a queue."))
app.command("priority")(_setter("priority", "Set the priority: low, normal, high, urgent."))


@app.command("close")
def close(ctx: typer.Context, number: str = _number, agent: str = _as) -> None:
    """Close a ticket (a customer reply reopens it)."""
    _setter("status", "")(ctx, number, "closed", agent)


@app.command("reopen")
def reopen(ctx: typer.Context, number: str = _number, agent: str = _as) -> None:
    """Reopen a ticket."""
    _setter("status", "")(ctx, number, "open", agent)


@app.command("tag")
def tag(ctx: typer.Context, number: str = _number,
        changes: list[str] = typer.Argument(..., help="+name adds, -name removes"),
        agent: str = _as) -> None:
    """Add and remove tags: `mailtix ticket tag N +vip -- -billing`."""
    from mailtix import desk

    tags = desk.tag(state(ctx).store(), number, changes, desk.agent_name(agent))
    output.echo(_("{number}: tags {tags}").format(
        number=number, tags=output.mail_text(", ".join(tags)) or "-"))


@app.command("spam")
def spam(ctx: typer.Context, number: str = _number,
         block_sender: bool = typer.Option(False, "--block-sender",
                                           help="flag future mail from this sender as spam"),
         junk: bool = typer.Option(False, "--junk",
                                   help="move the server copies to the Junk folder"),
         agent: str = _as, json: bool = typer.Option(False, "--json")) -> None:
    """Mark a ticket as spam (hidden from the default list)."""
    from mailtix import desk

    st = state(ctx)
    result = desk.spam(st.config(), st.store(), number, desk.agent_name(agent),
                       block_sender=block_sender, junk=junk)
    if json:
        print_json(result)
    else:
        typer.echo(f"{number}: spam" + (f"; sender rule for "
                                         f"{output.mail_text(result['sender_rule'])}"
                                         if result["sender_rule"] else "")
                   + (f"; {result['moved']} moved to Junk" if junk else ""))


@app.command("merge")
def merge(ctx: typer.Context, target: str, source: str, agent: str = _as) -> None:
    """Merge ticket SOURCE into TARGET: messages, contacts, watchers, tags and history move;
    later mail for SOURCE lands on TARGET."""
    from mailtix import desk

    result = desk.merge(state(ctx).store(), target, source, desk.agent_name(agent))
    typer.echo(_("merged {source} into {target} ({n} messages)").format(
        source=result["merged"], target=result["into"], n=result["messages"]))


_force = typer.Option(False, "--force", help="replace files that exist already")


@app.command("export")
def export(ctx: typer.Context, number: str = _number,
           eml: Path = typer.Option(None, "--eml", help="a folder for one .eml per message "
                                                        "(made if missing; its parent must exist)"),
           mbox: Path = typer.Option(None, "--mbox", help="an mbox file (mboxrd)"),
           force: bool = _force) -> None:
    """Export a ticket's messages byte-exact (files 0600; existing files kept unless --force)."""
    from mailtix import desk

    n = desk.export(state(ctx).store(), number, eml_dir=eml, mbox_file=mbox, force=force)
    typer.echo(f"exported {n} message(s) to {eml or mbox}")


@app.command("attachments")
def attachments(ctx: typer.Context, number: str = _number,
                save: Path = typer.Option(..., "--save", help="folder to save them into (made if "
                                                              "missing; its parent must exist)"),
                force: bool = _force) -> None:
    """Save every attachment of a ticket (safe, unique names; files 0600; existing files kept
    unless --force)."""
    from mailtix import desk

    names = desk.save_attachments(state(ctx).store(), number, save, force)
    for name in names:
        output.echo(output.mail_text(str(save / name)))
    typer.echo(f"{len(names)} attachment(s) saved")


@contact_app.command("list")
def contact_list(ctx: typer.Context, query: str = typer.Argument("", help="part of an address"),
                 limit: int = _limit, fmt: str = output.FORMAT, json: bool = output.JSON) -> None:
    """List contacts with their number of tickets."""
    from mailtix.store import counts
    from mailtix.store.queries import contacts

    conn = state(ctx).store().conn
    rows = contacts(conn, query, limit)
    total = counts.contacts(conn, query) if len(rows) == limit else len(rows)
    output.render(rows, CONTACT_COLUMNS, output.choose_format(fmt, json), total=total,
                  empty=_("no contacts"))


CONTACT_COLUMNS = [
    output.Column("email", N_("address"), cut=True, minimum=20),
    output.Column("name", N_("name"), cut=True, drop=2),
    output.Column("tickets", N_("tickets"), right=True),
    output.Column("last_activity", N_("activity"), time=True, drop=1),
]


@contact_app.command("show")
def contact_show(ctx: typer.Context, email: str, fmt: str = output.FORMAT,
                 json: bool = output.JSON) -> None:
    """Show a contact's tickets."""
    from mailtix.store.queries import contact_tickets

    rows = contact_tickets(state(ctx).store().conn, email.lower())
    output.render(rows, CONTACT_TICKET_COLUMNS, output.choose_format(fmt, json),
                  empty=_("no tickets for {email}").format(email=email))


CONTACT_TICKET_COLUMNS = [
    output.Column("number", N_("number")),
    output.Column("status", N_("status"), style=_status_style),
    output.Column("role", N_("role"), drop=1),
    output.Column("subject", N_("subject"), cut=True, want=30),
]
