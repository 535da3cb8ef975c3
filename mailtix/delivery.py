"""Deliver due outbox rows: one SMTP connection per account, then the Sent-folder copies.

SMTP acceptance and the Sent copy are recorded separately: a failed copy never makes a sent
mail look unsent (the lesson of OpenXE in DESIGN.md).
"""

from __future__ import annotations

import json
import logging
import ssl
import subprocess
from typing import TYPE_CHECKING

from mailtix import secrets
from mailtix.config.model import Account, Config
from mailtix.errors import MailtixError, SecretError
from mailtix.mail import clients
from mailtix.record import Factory, Record
from mailtix.store import Store, messages, outbox

if TYPE_CHECKING:  # imported where used: most runs have nothing to send
    import smtplib

log = logging.getLogger("mailtix.delivery")


class DeliveryReport(Record, mutable=True):
    sent: list[int] = Factory(list)
    retry: list[int] = Factory(list)
    failed: list[int] = Factory(list)
    copies_failed: list[int] = Factory(list)
    busy: str = ""  # who held the outbox lock, when this delivery had to leave rows queued
    errors: dict[int, str] = Factory(dict)


class Transport:
    """SMTP over one reused connection, or the local sendmail binary."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.client: smtplib.SMTP | None = None

    def send(self, mail_from: str, rcpts: list[str], raw: bytes) -> str:
        import smtplib

        server = self.account.smtp
        assert server is not None
        if server.protocol == "sendmail":
            proc = subprocess.run([server.sendmail_path, "-i", "-f", mail_from, "--", *rcpts],
                                  input=raw, capture_output=True, timeout=120, check=False)
            if proc.returncode != 0:
                # sendmail's exit codes follow sysexits: 75 (EX_TEMPFAIL) is worth a retry.
                code = 451 if proc.returncode == 75 else 550
                raise smtplib.SMTPResponseException(
                    code, proc.stderr.decode(errors="replace").strip()[:300] or
                    f"sendmail exited {proc.returncode}")
            return "accepted by sendmail"
        if self.client is None:
            try:
                password: str | None = secrets.lookup(self.account, "smtp", server)
            except SecretError:
                password = None  # a relay that needs no AUTH (a local MTA, a smarthost by IP)
            self.client = clients.open_smtp(server, password)
            if password is None and self.client.has_extn("auth"):
                self.close()
                secrets.lookup(self.account, "smtp", server)  # raises the helpful error
        refused = self.client.sendmail(mail_from, rcpts, raw)
        if refused:
            return "partly refused: " + ", ".join(f"{k} {v[0]}" for k, v in refused.items())
        return "250 accepted"

    def close(self) -> None:
        import smtplib

        if self.client is not None:
            try:
                self.client.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self.client = None


class Session:
    """Delivers outbox rows, keeping one transport (connection) per account open."""

    def __init__(self, config: Config, store: Store, report: DeliveryReport | None = None
                 ) -> None:
        self.config, self.store = config, store
        self.report = report or DeliveryReport()
        self.transports: dict[str, Transport] = {}
        self.down: dict[str, str] = {}  # accounts whose server failed in this session
        secrets.remember_no_keyring_in(store.data_dir)  # SMTP passwords are only read here

    def send(self, row, raw: bytes | None = None) -> str:
        """Try one row (raw: its bytes, when the caller has them); returns its new state."""
        import smtplib

        report, store = self.report, self.store
        account = self.config.accounts.get(row["account"])
        if account is None or account.smtp is None:
            with store.tx() as conn:
                outbox.mark(conn, row["id"], "failed",
                            error=f"account {row['account']!r} is gone or has no SMTP settings")
            report.failed.append(row["id"])
            return "failed"
        if account.name in self.down:
            _fail_or_retry(store, row["id"], report, False, self.down[account.name])
            return "retry"
        transport = self.transports.setdefault(account.name, Transport(account))
        if raw is None:
            raw = messages.get_raw(store.conn, row["raw_sha256"]) or b""
        with store.tx() as conn:
            outbox.mark_sending(conn, row["id"])
        try:
            reply = transport.send(row["mail_from"], json.loads(row["rcpts"]), raw)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [c for c, _m in exc.recipients.values()]
            text = "; ".join(f"{r}: {c} {m.decode(errors='replace')}"
                             for r, (c, m) in exc.recipients.items())
            transport.close()
            return _fail_or_retry(store, row["id"], report, all(c >= 500 for c in codes), text)
        except smtplib.SMTPResponseException as exc:
            text = f"{exc.smtp_code} {clients.smtp_reply(exc)}"
            transport.close()
            return _fail_or_retry(store, row["id"], report, exc.smtp_code >= 500, text)
        except (MailtixError, OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            # The server is unreachable: the account's other rows wait for the next run.
            text = str(exc) if isinstance(exc, MailtixError) else f"{type(exc).__name__}: {exc}"
            transport.close()
            self.down[account.name] = text
            return _fail_or_retry(store, row["id"], report, False, text)
        from mailtix.store import tickets

        with store.tx() as conn:
            outbox.mark(conn, row["id"], "sent", reply=reply)
            tickets.event(conn, "sent", ticket_id=row["ticket_id"], account=account.name,
                          detail=f"{row['message_id']} to {row['rcpts']}")
        report.sent.append(row["id"])
        return "sent"

    def close(self) -> None:
        for transport in self.transports.values():
            transport.close()
            _sent_copies(self.store, transport.account, self.report)
        self.transports.clear()


def deliver(config: Config, store: Store, ids: list[int] | None = None) -> DeliveryReport:
    """Send due rows (or the given ones). When another process is sending (a batch), the
    rows stay queued for a later run: two senders could hand the same row to SMTP twice."""
    from mailtix.lock import Locked, outbox_lock

    try:
        with outbox_lock(store.data_dir):
            return _deliver(config, store, ids)
    except Locked as exc:
        log.info("outbox busy (%s): rows stay queued", exc.holder)
        return DeliveryReport(busy=exc.holder)


def _deliver(config: Config, store: Store, ids: list[int] | None) -> DeliveryReport:
    with store.tx() as conn:
        outbox.recover_interrupted(conn)
    session = Session(config, store)
    try:
        for row in outbox.due(store.conn, ids):
            session.send(row)
    finally:
        session.close()
    return session.report


def _fail_or_retry(store: Store, row_id: int, report: DeliveryReport, permanent: bool,
                   text: str) -> str:
    text = secrets.redact(text, secrets.known_secrets())
    with store.tx() as conn:
        outbox.mark(conn, row_id, "failed" if permanent else "retry", error=text, reply=text)
        state = outbox.get(conn, row_id)["state"]
    (report.failed if state == "failed" else report.retry).append(row_id)
    report.errors[row_id] = text
    log.warning("outbox %d: %s (%s)", row_id, text, state)
    return str(state)


def _sent_copies(store: Store, account: Account, report: DeliveryReport) -> None:
    rows = outbox.pending_copies(store.conn, account.name)
    if not rows:
        return
    if not account.sent_folder or account.fetch is None or account.fetch.protocol != "imap":
        with store.tx() as conn:
            for row in rows:
                outbox.mark_copy(conn, row["id"], False, "no IMAP sent folder configured")
        return
    try:
        mailbox = clients.open_imap(account.fetch,
                                    secrets.lookup(account, "fetch", account.fetch), folder=None)
    except MailtixError as exc:
        with store.tx() as conn:
            for row in rows:
                outbox.mark_copy(conn, row["id"], False, str(exc))
                report.copies_failed.append(row["id"])
        return
    try:
        if not mailbox.folder.exists(account.sent_folder):
            mailbox.folder.create(account.sent_folder)
        for row in rows:
            raw = messages.get_raw(store.conn, row["raw_sha256"]) or b""
            try:
                mailbox.append(raw, account.sent_folder, flag_set=[r"\Seen"])
                ok, err = True, ""
            except Exception as exc:  # imap-tools raises its own errors; the mail stays sent
                ok, err = False, f"{type(exc).__name__}: {exc}"
                report.copies_failed.append(row["id"])
            with store.tx() as conn:
                outbox.mark_copy(conn, row["id"], ok, err)
    finally:
        try:
            mailbox.logout()
        except Exception:  # the copies are recorded already
            pass
