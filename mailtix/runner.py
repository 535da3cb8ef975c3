"""One `mailtix run` cycle: lock, fetch every active account, record health.

A failing account is recorded and backed off; the others go on (invariant 7).
"""

from __future__ import annotations

import logging
import sqlite3
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from mailtix import parallel, secrets
from mailtix.config.model import Account, Config
from mailtix.errors import ExitCode, MailtixError, NetworkError, StoreError
from mailtix.mail import clients
from mailtix.record import Factory, Record
from mailtix.store import Store, fetchstate

if TYPE_CHECKING:
    from mailtix.ingest import Outcome

log = logging.getLogger("mailtix.run")
T = TypeVar("T")


class AccountResult(Record, mutable=True):
    account: str
    fetched: int = 0
    new_tickets: int = 0
    threaded: int = 0
    duplicates: int = 0
    quarantined: int = 0
    error: str = ""
    hint: str = ""
    code: int = 0
    skipped: str = ""
    archived: int = 0


class RunReport(Record, mutable=True):
    accounts: list[AccountResult] = Factory(list)
    delivery: object | None = None  # delivery.DeliveryReport

    @property
    def failed(self) -> list[AccountResult]:
        return [a for a in self.accounts if a.error]

    def exit_code(self) -> ExitCode:
        failed = self.failed
        if not failed:
            if self.delivery is not None and getattr(self.delivery, "failed", None):
                return ExitCode.PARTIAL  # a permanent SMTP refusal is worth an alert
            return ExitCode.OK
        worked = [a for a in self.accounts if not a.error and not a.skipped]
        codes = {a.code for a in failed}
        if not worked and len(codes) == 1:
            return ExitCode(codes.pop())
        return ExitCode.PARTIAL


Progress = Callable[[str, int, int | None], None]


def run(config: Config, store: Store, only: list[str] | None = None,
        on_chunk: Callable[[str, list[Outcome]], None] | None = None,
        progress: Progress | None = None) -> RunReport:
    report = RunReport()
    secrets.remember_no_keyring_in(store.data_dir)
    names = only or sorted(config.accounts)
    todo: list[tuple[Account, AccountResult]] = []
    for name in names:
        account = config.account(name)
        if not account.active or account.fetch is None:
            if only:
                report.accounts.append(AccountResult(name, skipped="inactive or no fetch server"))
            continue
        result = AccountResult(name)
        report.accounts.append(result)
        todo.append((account, result))

    if config.general.parallel_accounts > 1 and len(todo) > 1:
        on_chunk, progress = parallel.serialised(on_chunk), parallel.serialised(progress)
        _warm_passwords(todo)

    def one(st: Store, account: Account, result: AccountResult) -> None:
        _account(config, st, account, result, bool(only), on_chunk, progress)

    parallel.each(store, todo, one, config.general.parallel_accounts)
    for name in names:
        account = config.accounts[name]
        if account.active and account.archive.enabled and account.fetch is not None:
            _archive(config, store, account, report)
    from mailtix.delivery import deliver

    report.delivery = deliver(config, store)
    return report


def _account(config: Config, store: Store, account: Account, result: AccountResult, only: bool,
             on_chunk: Callable[[str, list[Outcome]], None] | None,
             progress: Progress | None) -> None:
    """One account's fetch. On a store shared by several hosts the account is fetched by one
    of them at a time (an advisory lock); the others skip it for this run."""
    name = account.name
    until = fetchstate.backoff_until(store.conn, name)
    if until is not None and not only:
        result.skipped = f"backing off until {until:%H:%M:%S} UTC after errors"
        return
    with store.account_lock(name) as mine:
        if not mine:
            result.skipped = "being fetched by another host"
            return
        with store.tx() as conn:
            fetchstate.run_started(conn, name)
        if backup_only(account):
            return  # the archive reads it, read-only; no tickets, no flags
        outcomes = _guarded(config, store, account, result, "fetch",
                            lambda: fetch(config, account, store, on_chunk, progress))
        if outcomes is None:
            return
        result.fetched = sum(not o.duplicate for o in outcomes)
        result.new_tickets = sum(o.new_ticket for o in outcomes)
        result.threaded = sum(bool(o.ticket_id) and not o.new_ticket and not o.duplicate
                              for o in outcomes)
        result.duplicates = sum(o.duplicate for o in outcomes)
        result.quarantined = sum(o.ticket_id is None and o.malformed
                                 for o in outcomes)
        with store.tx() as conn:
            fetchstate.run_ok(conn, name, result.fetched)


def _warm_passwords(todo: list[tuple[Account, AccountResult]]) -> None:
    """Look the fetch passwords up before the workers start: a worker starting parse
    processes takes MAILTIX_PASSWORD_* out of the environment for a moment
    (secrets.withheld), and another worker's first lookup must not fall into that moment."""
    for account, _result in todo:
        if account.fetch is not None:
            try:
                secrets.lookup(account, "fetch", account.fetch)
            except MailtixError:
                pass  # the account's worker meets it again and records it against the account


def backup_only(account: Account) -> bool:
    """An employee's mailbox kept as a backup: tickets off, archive on. Fetching it for
    tickets would mark the employee's new mail \\Seen and store it a second time."""
    return not account.tickets.enabled and account.archive.enabled


def _archive(config: Config, store: Store, account: Account, report: RunReport) -> None:
    """The mailbox backup rides along with the run; its failure is the account's failure."""
    from mailtix.archive import archive_account

    result = next((a for a in report.accounts if a.account == account.name), None)
    if result is None or result.error or result.skipped:
        return
    with store.account_lock(account.name) as mine:  # hosts sharing a store: one archives it
        if not mine:
            return
        folders = _guarded(config, store, account, result, "archive",
                           lambda: archive_account(store, account))
    if folders is not None:
        result.archived = sum(f.archived for f in folders)
        if backup_only(account):
            with store.tx() as conn:
                fetchstate.run_ok(conn, account.name, 0)


def _guarded(config: Config, store: Store, account: Account, result: AccountResult,
             command: str, work: Callable[[], T]) -> T | None:
    """Run one account's server work; any failure is recorded against the account and the
    run goes on with the next account and the outbox (invariant 7)."""
    assert account.fetch is not None
    try:
        return work()
    except StoreError:
        raise  # the store is unusable, not this account: every account would fail alike
    except MailtixError as exc:
        _failed(config, store, result, exc)
    except (OSError, ssl.SSLError, EOFError) as exc:
        _failed(config, store, result, clients.network_error(account.fetch, exc, command))
    except sqlite3.Error:
        raise  # the store is shared: every later account would fail the same way
    except Exception as exc:
        if type(exc).__module__ in ("imaplib", "poplib", "imap_tools.errors"):
            # imaplib.abort and friends: a server fault, not ours to crash on
            _failed(config, store, result, NetworkError(f"{type(exc).__name__}: {exc}"))
        else:
            # A defect in mailtix: the traceback goes to the log file (INFO: stderr shows it
            # only with --debug); the account's error says where to find it.
            log.info("account %s: unexpected error during %s", account.name, command,
                     exc_info=True)
            _failed(config, store, result, MailtixError(
                f"internal error during {command}: {type(exc).__name__}: {exc}",
                hint="the traceback is in the log file mailtix.log, and on stderr with "
                     "--debug; please report it"))
    return None


def _failed(config: Config, store: Store, result: AccountResult, exc: MailtixError) -> None:
    message = secrets.redact(str(exc), secrets.known_secrets())
    result.error, result.hint, result.code = message, exc.hint or "", int(exc.exit_code)
    with store.tx() as conn:
        delay = fetchstate.run_failed(conn, result.account, message, config.general.backoff_max)
    log.warning("account %s failed: %s (next try in %d s)", result.account, message, delay)


def fetch(config: Config, account: Account, store: Store,
          on_chunk: Callable[[str, list[Outcome]], None] | None = None,
          progress: Progress | None = None) -> list[Outcome]:
    server = account.fetch
    assert server is not None
    if server.protocol == "maildir":  # a local folder: no password, no connection
        from mailtix.intake import fetch_maildir

        return fetch_maildir(config, account, store, on_chunk,
                             progress and (lambda n: progress(account.name, n, None)))
    password = secrets.lookup(account, "fetch", server)

    def step(n: int) -> None:
        if progress is not None:
            progress(account.name, n, None)

    if server.protocol == "pop3":
        from mailtix.intake import fetch_pop3

        client = clients.open_pop3(server, password)
        try:
            return fetch_pop3(config, account, store, client, on_chunk, step)
        finally:
            _close(client.quit)
    from mailtix.intake import fetch_imap

    mailbox = clients.open_imap(server, password, folder=None)
    try:
        return fetch_imap(config, account, store, mailbox, on_chunk, step)
    finally:
        _close(mailbox.logout)


def _close(fn: Callable[[], object]) -> None:
    try:
        fn()
    except (TimeoutError, OSError, EOFError):
        pass
    except Exception as exc:  # a half-dead connection at logout changes nothing we stored
        log.debug("closing the connection failed: %s", exc)
