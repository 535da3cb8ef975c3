"""`mailtix deliver` (one message from an MTA on stdin) and `mailtix import` (an mbox or a
Maildir of old mail)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from mailtix.cli.common import console, json_mode, print_json, state
from mailtix.errors import ExitCode
from mailtix.locale import _


def register(app: typer.Typer) -> None:
    app.command("deliver")(deliver)
    app.command("import")(import_)


def deliver(
    ctx: typer.Context,
    account: str = typer.Option(None, "--account", "-a",
                                help="store as this account's mail (default: [general] "
                                     "default_account, the only account, or 'local')"),
    folder: str = typer.Option("INBOX", "--folder", help="folder name recorded with the mail"),
) -> None:
    """Store one message read from standard input (Postfix pipe, alias, .forward, procmail).

    Exit codes for the MTA (sysexits.h): 0 once the message is committed (or was stored
    before), 75 (EX_TEMPFAIL) for everything else, so the MTA keeps the mail and retries:
    a busy or broken store, a broken config. Content is never refused: mail that does not
    parse is stored raw and flagged. Does not wait for a running `mailtix run`.
    """
    from mailtix.intake import account_for
    from mailtix.intake import deliver as deliver_one
    from mailtix.sources.stdin import StdinSource

    st = state(ctx)
    try:
        source = StdinSource(sys.stdin.buffer, folder)
        cfg = st.config()
        acct = account_for(cfg, account)
        store = st.store()
        try:
            outcome = deliver_one(cfg, acct, store, source)
        finally:
            store.close()
    except KeyboardInterrupt:
        _tempfail("interrupted", st.debug)
    except Exception as exc:  # noqa: BLE001 - every failure must become "try again later"
        _tempfail(exc, st.debug)
    if st.verbose:
        if outcome is None:
            typer.echo(_("already stored (a retry)"))
        elif outcome.ticket_number:
            typer.echo(_("stored as message {row} (ticket {number})").format(
                row=outcome.message_row, number=outcome.ticket_number))
        else:
            typer.echo(_("stored as message {row} (quarantine)").format(row=outcome.message_row))


def _tempfail(exc: BaseException | str, debug: bool) -> None:
    """One line on stderr, which Postfix and Exim put into their log and the deferral reason."""
    from mailtix.cli.common import as_mailtix_error
    from mailtix.secrets import known_secrets, redact

    if debug and isinstance(exc, BaseException):
        import traceback

        traceback.print_exc()
    error = as_mailtix_error(exc) if isinstance(exc, BaseException) else None
    text = str(error if error is not None else exc) or type(exc).__name__
    text = redact(text.splitlines()[0] if text else "", known_secrets())
    typer.echo(_("mailtix deliver: temporary failure, the MTA should retry: {error}").format(
        error=text), err=True)
    raise typer.Exit(int(ExitCode.TEMPFAIL))


def import_(
    ctx: typer.Context,
    mbox: Path = typer.Option(None, "--mbox", help="an mbox file (Thunderbird, an export)"),
    maildir: Path = typer.Option(None, "--maildir", help="a Maildir (cur/, new/, tmp/)"),
    account: str = typer.Option(None, "--account", "-a",
                                help="store as this account's mail (default as for deliver)"),
    as_closed: bool = typer.Option(False, "--as-closed",
                                   help="tickets made by the import start closed"),
    json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Import old mail into the store, with the same dedupe as every other way in.

    Imported mail never gets an autoresponse. The files are only read; running the import
    again stores nothing twice.
    """
    from mailtix.errors import UsageError
    from mailtix.intake import account_for, history

    json_mode(ctx, json)
    if (mbox is None) == (maildir is None):
        raise UsageError(_("give exactly one of --mbox FILE or --maildir DIR"))
    st = state(ctx)
    cfg = st.config()
    acct = account_for(cfg, account)
    source = _open_source(mbox, maildir)
    store = st.store()
    try:
        total = source.count()
        if sys.stderr.isatty() and not json:
            outcomes = _with_bar(cfg, acct, store, source, as_closed, total)
        else:
            outcomes = history(cfg, acct, store, source, as_closed=as_closed)
    finally:
        store.close()
        source.close()
    summary = {"source": source.name, "account": acct.name, "messages": total,
               "stored": sum(not o.duplicate for o in outcomes),
               "new_tickets": sum(o.new_ticket for o in outcomes),
               "duplicates": sum(o.duplicate for o in outcomes),
               "known": total - len(outcomes),
               "quarantined": sum(o.ticket_id is None and o.malformed for o in outcomes)}
    if json:
        print_json(summary)
        return
    typer.echo(_("{source}: {stored} stored, {tickets} new ticket(s), {duplicates} "
                 "duplicate(s), {known} imported before").format(
        source=source.name, stored=summary["stored"], tickets=summary["new_tickets"],
        duplicates=summary["duplicates"], known=summary["known"])
        + (_(", {n} quarantined").format(n=summary["quarantined"])
           if summary["quarantined"] else ""))


def _open_source(mbox: Path | None, maildir: Path | None):
    from mailtix.errors import UsageError
    from mailtix.sources import SourceError

    try:
        if mbox is not None:
            from mailtix.sources.mbox import MboxSource

            return MboxSource(mbox.expanduser())
        from mailtix.sources.maildir import MaildirSource, is_maildir

        assert maildir is not None
        root = maildir.expanduser()
        if not is_maildir(root):
            raise UsageError(f"{root} is not a Maildir (it needs cur/, new/ and tmp/)")
        # Its own key space: an import must not mark mail of a maildir account as known.
        return MaildirSource(root, keyspace=f"import:{root.resolve()}")
    except SourceError as exc:
        raise UsageError(str(exc)) from None


def _with_bar(cfg, acct, store, source, as_closed: bool, total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from mailtix.intake import history

    with Progress(TextColumn(_("importing")), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.elapsed:.0f}s"), console=console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task("import", total=total)
        return history(cfg, acct, store, source, as_closed=as_closed,
                       progress=lambda n: bar.advance(task, n))
