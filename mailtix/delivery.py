"""Deliver due outbox rows: one SMTP connection per account, then the Sent-folder copies.

SMTP acceptance and the Sent copy are recorded separately: a failed copy never makes a sent
mail look unsent (the lesson of OpenXE in DESIGN.md).
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from mailtix import secrets
from mailtix.config.model import Account, Config
from mailtix.errors import MailtixError
from mailtix.mail import clients
from mailtix.store import Store, messages, outbox

log = logging.getLogger("mailtix.delivery")


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    copies_failed: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)


class Transport:
    """SMTP over one reused connection, or the local sendmail binary."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.client: smtplib.SMTP | None = None

    def send(self, mail_from: str, rcpts: list[str], raw: bytes) -> str:
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
            password = secrets.lookup(self.account, "smtp", server) if server.user else None
            self.client = clients.open_smtp(server, password)
        refused = self.client.sendmail(mail_from, rcpts, raw)
        if refused:
            return "partly refused: " + ", ".join(f"{k} {v[0]}" for k, v in refused.items())
        return "250 accepted"

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self.client = None


def deliver(config: Config, store: Store, ids: list[int] | None = None,
            pace: Callable[[str], None] | None = None,
            on_sent: Callable[[int], None] | None = None) -> DeliveryReport:
    report = DeliveryReport()
    with store.tx() as conn:
        outbox.recover_interrupted(conn)
    rows = outbox.due(store.conn, ids)
    by_account: dict[str, list] = {}
    for row in rows:
        by_account.setdefault(row["account"], []).append(row)
    for name, account_rows in by_account.items():
        account = config.accounts.get(name)
        if account is None or account.smtp is None:
            with store.tx() as conn:
                for row in account_rows:
                    outbox.mark(conn, row["id"], "failed",
                                error=f"account {name!r} is gone or has no SMTP settings")
                    report.failed.append(row["id"])
            continue
        _deliver_account(store, account, account_rows, report, pace, on_sent)
        _sent_copies(store, account, report)
    return report


def _deliver_account(store: Store, account: Account, rows: list, report: DeliveryReport,
                     pace: Callable[[str], None] | None,
                     on_sent: Callable[[int], None] | None) -> None:
    transport = Transport(account)
    try:
        for i, row in enumerate(rows):
            if pace is not None:
                pace(account.name)
            raw = messages.get_raw(store.conn, row["raw_sha256"]) or b""
            with store.tx() as conn:
                conn.execute("UPDATE outbox SET state = 'sending' WHERE id = ?", (row["id"],))
            try:
                reply = transport.send(row["mail_from"], json.loads(row["rcpts"]), raw)
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [c for c, _m in exc.recipients.values()]
                text = "; ".join(f"{r}: {c} {m.decode(errors='replace')}"
                                 for r, (c, m) in exc.recipients.items())
                _fail_or_retry(store, row["id"], report, all(c >= 500 for c in codes), text)
                transport.close()
                continue
            except smtplib.SMTPResponseException as exc:
                text = f"{exc.smtp_code} " + (exc.smtp_error.decode(errors="replace")
                                              if isinstance(exc.smtp_error, bytes)
                                              else str(exc.smtp_error))
                _fail_or_retry(store, row["id"], report, exc.smtp_code >= 500, text)
                transport.close()
                continue
            except (MailtixError, OSError, smtplib.SMTPException, ssl.SSLError) as exc:
                # The server is unreachable: every remaining row waits for the next run.
                text = str(exc) if isinstance(exc, MailtixError) else \
                    f"{type(exc).__name__}: {exc}"
                for rest in rows[i:]:
                    _fail_or_retry(store, rest["id"], report, False, text)
                return
            with store.tx() as conn:
                outbox.mark(conn, row["id"], "sent", reply=reply)
                from mailtix.store import tickets

                tickets.event(conn, "sent", ticket_id=row["ticket_id"], account=account.name,
                              detail=f"{row['message_id']} to {row['rcpts']}")
            report.sent.append(row["id"])
            if on_sent is not None:
                on_sent(row["id"])
    finally:
        transport.close()


def _fail_or_retry(store: Store, row_id: int, report: DeliveryReport, permanent: bool,
                   text: str) -> None:
    text = secrets.redact(text, secrets.known_secrets())
    with store.tx() as conn:
        outbox.mark(conn, row_id, "failed" if permanent else "retry", error=text, reply=text)
        state = outbox.get(conn, row_id)["state"]
    (report.failed if state == "failed" else report.retry).append(row_id)
    report.errors[row_id] = text
    log.warning("outbox %d: %s (%s)", row_id, text, state)


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
