"""Deliver due outbox rows: one SMTP connection per account, then the Sent-folder copies.

SMTP acceptance and the Sent copy are recorded separately: a failed copy never makes a sent
mail look unsent (the lesson of OpenXE in DESIGN.md).
"""

from __future__ import annotations

import logging
import ssl
import subprocess
from typing import TYPE_CHECKING

from mailtix import secrets
from mailtix.config.model import Account, Config
from mailtix.errors import MailtixError, SecretError
from mailtix.mail import clients
from mailtix.mail.addresses import envelope
from mailtix.record import Factory, Record
from mailtix.store import Store, messages, outbox

if TYPE_CHECKING:  # imported where used: most runs have nothing to send
    import smtplib

log = logging.getLogger("mailtix.delivery")


class DeliveryReport(Record, mutable=True):
    sent: list[int] = Factory(list)
    retry: list[int] = Factory(list)
    failed: list[int] = Factory(list)
    partial: list[int] = Factory(list)  # sent to some recipients, refused for good by others
    copies_failed: list[int] = Factory(list)
    busy: str = ""  # who held the outbox lock, when this delivery had to leave rows queued
    errors: dict[int, str] = Factory(dict)


class Transport:
    """SMTP over one reused connection, or the local sendmail binary."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.client: smtplib.SMTP | None = None

    def send(self, mail_from: str, rcpts: list[str], raw: bytes
             ) -> tuple[str, dict[str, tuple[int, str]]]:
        """Hand one mail over; returns the reply and the recipients refused at RCPT (the
        others accepted it). Raises when no recipient or the mail as a whole was refused."""
        import smtplib

        server = self.account.smtp
        assert server is not None
        if server.protocol == "sendmail":
            # A local MTA takes UTF-8 arguments; an IDN domain still goes as IDNA.
            proc = subprocess.run([server.sendmail_path, "-i", "-f", envelope(mail_from), "--",
                                   *map(envelope, rcpts)],
                                  input=raw, capture_output=True, timeout=120, check=False,
                                  env=secrets.child_environment())
            if proc.returncode != 0:
                # sendmail's exit codes follow sysexits: 75 (EX_TEMPFAIL) is worth a retry.
                code = 451 if proc.returncode == 75 else 550
                raise smtplib.SMTPResponseException(
                    code, proc.stderr.decode(errors="replace").strip()[:300] or
                    f"sendmail exited {proc.returncode}")
            return "accepted by sendmail", {}
        if self.client is None:
            try:
                password: str | None = secrets.lookup(self.account, "smtp", server)
            except SecretError:
                password = None  # a relay that needs no AUTH (a local MTA, a smarthost by IP)
            self.client = clients.open_smtp(server, password)
            if password is None and self.client.has_extn("auth"):
                self.close()
                secrets.lookup(self.account, "smtp", server)  # raises the helpful error
        return self._smtp(self.client, mail_from, rcpts, raw)

    def _smtp(self, client: smtplib.SMTP, mail_from: str, rcpts: list[str], raw: bytes
              ) -> tuple[str, dict[str, tuple[int, str]]]:
        """Envelope addresses in 7-bit where IDNA can make them so; SMTPUTF8 (RFC 6531) for
        the rest when the server offers it, else those recipients are refused for good here
        (smtplib would raise UnicodeEncodeError in RCPT and take the whole run with it)."""
        import smtplib

        outgoing = {r: envelope(r) for r in rcpts}
        sender = envelope(mail_from)
        options: list[str] = []
        unsendable: dict[str, tuple[int, str]] = {}
        if not all(a.isascii() for a in (sender, *outgoing.values())):
            if client.has_extn("smtputf8"):
                options = ["SMTPUTF8"]
            else:
                why = (f"5.6.7 non-ASCII address, and {self.account.smtp.host} does not "
                       "offer SMTPUTF8 (RFC 6531)")
                if not sender.isascii():
                    raise smtplib.SMTPResponseException(553, f"{mail_from}: {why}")
                unsendable = {r: (553, why) for r, a in outgoing.items() if not a.isascii()}
        wanted = {a: r for r, a in outgoing.items() if r not in unsendable}
        if not wanted:
            return "", unsendable
        try:
            refused = client.sendmail(sender, list(wanted), raw, mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:  # named as stored, with ours refused here
            raise smtplib.SMTPRecipientsRefused(
                {**unsendable, **{wanted.get(a, a): v for a, v in exc.recipients.items()}}
            ) from None
        unsendable.update({wanted[a]: (code, _text(msg)) for a, (code, msg) in refused.items()})
        return "250 accepted", unsendable

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
        """Try one row (raw: its bytes, when the caller has them); returns its new state.
        Only the recipients not accepted yet are tried: a retry never reaches one twice."""
        import smtplib

        store = self.store
        row_id = int(row["id"])
        account = self.config.accounts.get(row["account"])
        with store.tx() as conn:
            rcpts = outbox.pending_rcpts(conn, row)
        if account is None or account.smtp is None:
            text = f"account {row['account']!r} is gone or has no SMTP settings"
            with store.tx() as conn:
                outbox.set_pending(conn, row_id, "failed", reply=text)
            return self._settle(row, text)
        if account.name in self.down:
            return self._whole(row, False, "", self.down[account.name])
        if not rcpts:  # every recipient was settled by an attempt that crashed before the row
            return self._settle(row, "")
        transport = self.transports.setdefault(account.name, Transport(account))
        if raw is None:
            raw = messages.get_raw(store.conn, row["raw_sha256"]) or b""
        with store.tx() as conn:
            claimed = outbox.mark_sending(conn, row_id)
        if not claimed:  # another host sent or is sending it (a shared PostgreSQL store)
            return "claimed"
        try:
            reply, refused = transport.send(row["mail_from"], rcpts, raw)
        except smtplib.SMTPRecipientsRefused as exc:
            transport.close()
            refused = {r: (c, _text(m)) for r, (c, m) in exc.recipients.items()}
            return self._recipients(row, account.name, "", refused)
        except smtplib.SMTPResponseException as exc:
            transport.close()
            return self._whole(row, exc.smtp_code >= 500, str(exc.smtp_code),
                               f"{exc.smtp_code} {clients.smtp_reply(exc)}")
        except (MailtixError, OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            # The server is unreachable: the account's other rows wait for the next run.
            text = str(exc) if isinstance(exc, MailtixError) else f"{type(exc).__name__}: {exc}"
            transport.close()
            self.down[account.name] = text
            return self._whole(row, False, "", text)
        with store.tx() as conn:
            for rcpt in rcpts:
                if rcpt not in refused:
                    outbox.set_rcpt(conn, row_id, rcpt, "sent", "250", reply)
        return self._recipients(row, account.name, reply, refused)

    def _recipients(self, row, account: str, reply: str,
                    refused: dict[str, tuple[int, str]]) -> str:
        """Record the recipients refused at RCPT (4xx: retried later, 5xx: refused for good)
        and settle the row; the accepted ones are recorded already."""
        from mailtix.store import tickets

        row_id = int(row["id"])
        text = secrets.redact("; ".join(f"{r}: {c} {m}" for r, (c, m) in refused.items()),
                              secrets.known_secrets())
        with self.store.tx() as conn:
            for rcpt, (code, msg) in refused.items():
                outbox.set_rcpt(conn, row_id, rcpt, "refused" if code >= 500 else "retry",
                                str(code), f"{code} {msg}")
            state = outbox.settle(conn, row_id, error=text, reply=reply or text)
            accepted = [r["rcpt"] for r in outbox.rcpts(conn, row_id) if r["state"] == "sent"]
            if reply:
                tickets.event(conn, "sent", ticket_id=row["ticket_id"], account=account,
                              detail=f"{row['message_id']} to {', '.join(accepted)}"
                                     + (f"; refused: {text}" if refused else ""))
        return self._count(row_id, state, text)

    def _whole(self, row, permanent: bool, code: str, text: str) -> str:
        """The server refused the mail as a whole (or could not be reached): every recipient
        not accepted yet shares the outcome."""
        text = secrets.redact(text, secrets.known_secrets())
        with self.store.tx() as conn:
            outbox.set_pending(conn, int(row["id"]), "failed" if permanent else "retry", code,
                               text)
        return self._settle(row, text)

    def _settle(self, row, text: str) -> str:
        with self.store.tx() as conn:
            state = outbox.settle(conn, int(row["id"]), error=text, reply=text)
        return self._count(int(row["id"]), state, text)

    def _count(self, row_id: int, state: str, text: str) -> str:
        report = self.report
        {"sent": report.sent, "retry": report.retry}.get(state, report.failed).append(row_id)
        if text:
            report.errors[row_id] = text
            log.warning("outbox %d: %s (%s)", row_id, text, state)
            if state == "sent":
                report.partial.append(row_id)
        return state

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


def _text(message: bytes | str) -> str:
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


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
