"""`mailtix ticket …`: list, search, show, note, assign, status, queue, priority, close."""

from __future__ import annotations

import sys
from datetime import UTC
from pathlib import Path

import typer

from mailtix.cli import complete
from mailtix.cli.common import console, new_app, print_json, state

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
_all = typer.Option(False, "--all", help="include closed and spam tickets")
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
          json: bool = typer.Option(False, "--json")) -> None:
    """List tickets, newest activity first; closed, spam and deleted are hidden unless asked
    for."""
    from mailtix.desk import agent_name
    from mailtix.store.queries import list_tickets

    store = state(ctx).store()
    filters = _filters(status, queue, assignee, account, contact, tag, all_, limit, offset, sort,
                       project, older_than, newer_than)
    filters.watching = agent_name(agent) if watching else ""
    rows = list_tickets(store.conn, filters)
    if json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("number", "status", "prio", "queue", "assignee", "contact", "subject", "msgs",
                  "activity")
    for r in rows:
        table.add_row(r["number"], f"[{STATUS_STYLE.get(r['status'], '')}]{r['status']}[/]",
                      r["priority"], r["queue"], r["assignee"], r["contact"] or "",
                      _cut(r["subject"], 50), str(r["messages"]), r["last_activity_at"][:16])
    console().print(table) if rows else typer.echo("no tickets match")


def _cut(text: str, n: int) -> str:
    text = text.replace("[", "\\[")
    return text if len(text) <= n else text[: n - 1] + "…"


@app.command("search")
def search(ctx: typer.Context, query: str, status: list[str] = _status, queue: str = _queue,
           assignee: str = _assignee, account: str = _account, contact: str = _contact,
           tag: str = _tag, project: str = _project, older_than: str = _older,
           newer_than: str = _newer, all_: bool = _all, limit: int = _limit,
           offset: int = _offset, json: bool = typer.Option(False, "--json")) -> None:
    """Full-text search over subject, text and addresses, best matches first."""
    from mailtix.store.queries import search as run_search

    store = state(ctx).store()
    rows = run_search(store.conn, query, _filters(status, queue, assignee, account, contact,
                                                  tag, all_, limit, offset, "activity", project,
                                                  older_than, newer_than))
    if json:
        print_json(rows)
        return
    out = console()
    for r in rows:
        out.print(f"[bold]{r['number']}[/] [{STATUS_STYLE.get(r['status'], '')}]{r['status']}[/]"
                  f" {_cut(r['subject'], 70)}")
        out.print("    " + r["snippet"].replace("\n", " "), markup=False)
    if not rows:
        typer.echo("nothing found")


@app.command("show")
def show(ctx: typer.Context, number: str = _number,
         raw: int = typer.Option(None, "--raw", help="print the original bytes of message ID"),
         json: bool = typer.Option(False, "--json")) -> None:
    """Show a ticket: its header block, the thread in order, notes, attachments, history."""
    from mailtix import desk

    store = state(ctx).store()
    if raw is not None:
        sys.stdout.buffer.write(desk.raw(store, number, raw))
        return
    t = desk.show(store, number)
    if json:
        print_json(t)
        return
    out = console()
    out.print(f"[bold]{t['number']}[/]  {t['subject']}", markup=True, highlight=False)
    out.print(f"status {t['status']} · priority {t['priority']} · queue {t['queue'] or '-'} · "
              f"assignee {t['assignee'] or '-'} · account {t['account']}", markup=False)
    out.print(f"contact {t['contact'] or '-'} · watchers {', '.join(t['watchers']) or '-'} · "
              f"tags {', '.join(t['tags']) or '-'}", markup=False)
    for m in t["messages"]:
        who = m["author"] if m["direction"] == "note" else (m["from_addr"] or "?")
        arrow = {"in": "←", "out": "→", "note": "✎"}[m["direction"]]
        flags = [k for k in ("bounce", "auto_submitted", "list", "spam", "malformed") if m[k]]
        out.rule(f"{arrow} #{m['id']} {who} {m['date'] or m['created_at']}"
                 + (f" [{', '.join(flags)}]" if flags else ""), style="dim")
        out.print(_fold_quotes(m["body_text"]), markup=False, highlight=False)
        for a in m["attachments"]:
            out.print(f"  📎 {a['filename']} ({a['content_type']}, {a['size']} bytes)",
                      markup=False)


def _fold_quotes(text: str) -> str:
    lines, out, quoted = text.splitlines(), [], 0
    for line in lines:
        if line.startswith(">"):
            quoted += 1
            continue
        if quoted:
            out.append(f"  [… {quoted} quoted line(s)]")
            quoted = 0
        out.append(line)
    if quoted:
        out.append(f"  [… {quoted} quoted line(s)]")
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
    typer.echo(f"note {row} added to {number}")


def _setter(field: str, doc: str):
    values = {"queue": complete.queues, "assignee": complete.agents}.get(field)

    def command(ctx: typer.Context, number: str = _number,
                value: str = typer.Argument(..., autocompletion=values),
                agent: str = _as) -> None:
        from mailtix import desk

        st = state(ctx)
        changed = desk.set_field(st.config(), st.store(), number, field, value,
                                 desk.agent_name(agent))
        typer.echo(f"{number}: {field} {'set to ' + value if changed else 'unchanged'}")

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
    typer.echo(f"{number}: tags {', '.join(tags) or '-'}")


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
        typer.echo(f"{number}: spam" + (f"; sender rule for {result['sender_rule']}"
                                         if result["sender_rule"] else "")
                   + (f"; {result['moved']} moved to Junk" if junk else ""))


@app.command("merge")
def merge(ctx: typer.Context, target: str, source: str, agent: str = _as) -> None:
    """Merge ticket SOURCE into TARGET: messages, contacts, watchers, tags and history move;
    later mail for SOURCE lands on TARGET."""
    from mailtix import desk

    result = desk.merge(state(ctx).store(), target, source, desk.agent_name(agent))
    typer.echo(f"merged {result['merged']} into {result['into']} ({result['messages']} messages)")


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
        typer.echo(str(save / name))
    typer.echo(f"{len(names)} attachment(s) saved")


@contact_app.command("list")
def contact_list(ctx: typer.Context, query: str = typer.Argument("", help="part of an address"),
                 limit: int = _limit, json: bool = typer.Option(False, "--json")) -> None:
    """List contacts with their number of tickets."""
    from mailtix.store.queries import contacts

    rows = contacts(state(ctx).store().conn, query, limit)
    if json:
        print_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['email']:<40} {r['name']:<30} {r['tickets']:>4} ticket(s)")


@contact_app.command("show")
def contact_show(ctx: typer.Context, email: str, json: bool = typer.Option(False, "--json")
                 ) -> None:
    """Show a contact's tickets."""
    from mailtix.store.queries import contact_tickets

    rows = contact_tickets(state(ctx).store().conn, email.lower())
    if json:
        print_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['number']} {r['status']:<17} {r['role']:<5} {r['subject']}")
    if not rows:
        typer.echo(f"no tickets for {email}")
