"""`mailtix account test`: each connection step timed, each usual fault diagnosed."""

from __future__ import annotations

import socket
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from mailtix import secrets
from mailtix.config.model import Account, Server
from mailtix.errors import MailtixError
from mailtix.mail import clients
from mailtix.record import replace


@dataclass
class Step:
    name: str
    ok: bool
    ms: float
    detail: str = ""
    hint: str = ""


@dataclass
class Report:
    account: str
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)


class _Stop(Exception):
    pass


class _Runner:
    def __init__(self, report: Report, prefix: str) -> None:
        self.report, self.prefix = report, prefix

    def step(self, name: str, fn: Callable[[], str | None]) -> None:
        start = time.perf_counter()
        try:
            detail = fn() or ""
        except MailtixError as exc:
            self.report.steps.append(Step(f"{self.prefix} {name}", False, _ms(start), str(exc),
                                          exc.hint or ""))
            raise _Stop from None
        self.report.steps.append(Step(f"{self.prefix} {name}", True, _ms(start), detail))


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


def test_account(account: Account, *, fetch: bool = True, smtp: bool = True,
                 timeout: float | None = None, roundtrip: bool = False,
                 roundtrip_wait: float = 60.0) -> Report:
    report = Report(account.name)
    servers = []
    if fetch and account.fetch is not None and account.fetch.protocol == "maildir":
        _test_maildir(report, account.fetch)
    elif fetch and account.fetch is not None:
        servers.append(("fetch", account.fetch))
    if smtp and account.smtp is not None and account.smtp.protocol == "smtp":
        servers.append(("smtp", account.smtp))
    if not servers and not report.steps:
        report.steps.append(Step("config", False, 0, "the account has no server to test"))
        return report
    for role, server in servers:
        if timeout:
            server = replace(server, timeout=timeout)
        try:
            _test_server(report, account, role, server)
        except _Stop:
            pass
    if roundtrip and report.ok:
        if account.fetch is None or account.smtp is None:
            report.steps.append(Step("roundtrip", False, 0, "needs both fetch and smtp"))
        else:
            _roundtrip(report, account, roundtrip_wait)
    return report


def _test_maildir(report: Report, server: Server) -> None:
    """A local Maildir: every folder there, and writable (post_fetch renames files)."""
    import os

    from mailtix.sources.maildir import folder_path, is_maildir

    start = time.perf_counter()
    assert server.path is not None
    for folder in server.folders:
        box = folder_path(server.path, folder)
        if not is_maildir(box):
            report.steps.append(Step(f"maildir {folder}", False, _ms(start),
                                     f"{box} is not a Maildir (needs cur/, new/, tmp/)",
                                     "check fetch.path and folders"))
            return
        if not all(os.access(box / sub, os.R_OK | os.W_OK | os.X_OK) for sub in ("cur", "new")):
            report.steps.append(Step(f"maildir {folder}", False, _ms(start),
                                     f"{box}: cur/ or new/ is not readable and writable",
                                     "run mailtix as the Maildir's owner"))
            return
        count = sum(not name.startswith(".") for sub in ("cur", "new")
                    for name in os.listdir(box / sub))
        report.steps.append(Step(f"maildir {folder}", True, _ms(start),
                                 f"{box}: {count} message(s)"))


def _test_server(report: Report, account: Account, role: str, server: Server) -> None:
    run = _Runner(report, server.protocol.upper())
    addr: list[tuple] = []

    def dns() -> str:
        try:
            infos = socket.getaddrinfo(server.host, server.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise clients.network_error(server, exc, "DNS") from None
        addr.append(infos[0][4])
        return str(infos[0][4][0])

    def tcp() -> str:
        try:
            socket.create_connection((server.host, server.port), timeout=server.timeout).close()
        except OSError as exc:
            raise clients.network_error(server, exc, "connect") from None
        return f"{server.host}:{server.port}"

    run.step("DNS", dns)
    run.step("TCP connect", tcp)
    if server.tls == "ssl":
        run.step("TLS handshake", lambda: _tls_handshake(server))
    else:
        run.step("greeting", lambda: _greeting(server))
    password = _password(run, account, role, server)
    if server.protocol == "imap":
        _test_imap(run, server, password,
                   account.move_to if role == "fetch" and account.post_fetch == "move" else "")
    elif server.protocol == "pop3":
        _test_pop3(run, server, password)
    else:
        _test_smtp(run, server, password)


def _password(run: _Runner, account: Account, role: str, server: Server) -> str:
    if server.oauth is not None:
        run.step("OAuth2 token", lambda: _token_detail(server))
        return ""
    box: list[str] = []
    run.step("password", lambda: box.append(secrets.lookup(account, role, server)) or "found")
    return box[0]


def _token_detail(server: Server) -> str:
    """Refreshes the token when due (as a run would) and says what it is, never the token."""
    from mailtix import auth

    assert server.oauth is not None
    auth.access_token(server.oauth)
    info = auth.token_info(server.oauth)
    assert info is not None
    expires = "no expiry given" if info.expires_at is None else "expires " + datetime.fromtimestamp(
        info.expires_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (f"{expires}; scopes: {' '.join(info.scopes) or '(not stated)'}; "
            f"stored in the {info.stored_in}")


def _who(server: Server, client: object) -> str:
    mechanism = getattr(client, "mechanism", None)
    return f"{server.user} via {mechanism}" if mechanism else server.user


def _tls_handshake(server: Server) -> str:
    ctx = clients.ssl_context(server)
    try:
        with socket.create_connection((server.host, server.port), timeout=server.timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=server.host) as conn:
                cert = conn.getpeercert() or {}
                subject = dict(x[0] for x in cert.get("subject", ())) if cert else {}
                verified = "verified" if server.verify_tls else "NOT verified"
                return f"{conn.version()}, certificate {verified} {subject.get('commonName', '')}"
    except (OSError, ssl.SSLError) as exc:
        raise clients.network_error(server, exc, "TLS") from None


def _greeting(server: Server) -> str:
    """Read the plain-text greeting; silence usually means the port wants implicit TLS."""
    wait = min(server.timeout, 5.0)
    try:
        with socket.create_connection((server.host, server.port), timeout=wait) as sock:
            data = sock.recv(512)
    except TimeoutError:
        if _speaks_tls(server, wait):
            from mailtix.errors import NetworkError

            raise NetworkError(
                f"{server.host}:{server.port} expects TLS from the first byte, but tls = "
                f"\"{server.tls}\"", server.host, "greeting",
                hint=f"set tls = \"ssl\" for this port (or use port "
                     f"{clients._port(server.protocol, server.tls)} with {server.tls})") from None
        raise clients.network_error(server, TimeoutError(), "greeting") from None
    except OSError as exc:
        raise clients.network_error(server, exc, "greeting") from None
    return data.decode(errors="replace").strip()[:80]


def _speaks_tls(server: Server, wait: float) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((server.host, server.port), timeout=wait) as raw:
            with ctx.wrap_socket(raw, server_hostname=server.host):
                return True
    except (OSError, ssl.SSLError):
        return False


def _test_imap(run: _Runner, server: Server, password: str, move_to: str = "") -> None:
    box: list = []
    label = "connect + STARTTLS" if server.tls == "starttls" else "connect"
    run.step(label, lambda: box.append(clients.imap_connect(server)) or "ok")
    mailbox = box[0]
    try:
        run.step("login", lambda: clients.imap_login(mailbox, server, password)
                 and _who(server, mailbox))
        for folder in server.folders:
            run.step(f"select {folder}", lambda f=folder: _select(mailbox, server, f))
        if move_to:
            run.step("move_to", lambda: _check_move_to(mailbox, server, move_to))
    finally:
        try:
            mailbox.logout()
        except Exception:  # the connection may be gone after a failed step
            pass


def _select(mailbox, server: Server, folder: str) -> str:
    from mailtix.errors import NetworkError

    if not mailbox.folder.exists(folder):
        names = ", ".join(f.name for f in mailbox.folder.list())
        raise NetworkError(f"folder {folder!r} does not exist on {server.host}", server.host,
                           "SELECT", hint=f"folders there: {names}")
    status = mailbox.folder.status(folder, ["MESSAGES", "UIDVALIDITY", "UIDNEXT"])
    return f"{status.get('MESSAGES', 0)} messages, UIDVALIDITY {status.get('UIDVALIDITY')}"


def _check_move_to(mailbox, server: Server, move_to: str) -> str:
    """The post-fetch move target, in the server's notation, exists or can be created (it
    is created now, as the first move would)."""
    import imaplib

    from imap_tools.errors import UnexpectedCommandStatusError

    from mailtix.errors import NetworkError
    from mailtix.mail import imap_ops

    caps = imap_ops.refresh_capabilities(mailbox.client)
    sep = imap_ops.separator(mailbox.client, server.host)
    name = imap_ops.server_name(move_to, sep)
    try:
        created = imap_ops.ensure_folder(mailbox, name, server.host)
    except (NetworkError, UnexpectedCommandStatusError, imaplib.IMAP4.error) as exc:
        if isinstance(exc, imaplib.IMAP4.abort):
            raise clients.network_error(server, exc, "CREATE") from None
        reply = getattr(exc, "reply", "") or str(exc)
        names = ", ".join(f.name for f in mailbox.folder.list())
        raise NetworkError(f"move_to {move_to!r}: {server.host} refuses the folder {name!r}: "
                           f"{reply}"[:400], server.host, "CREATE", reply,
                           hint=f"levels are separated by {sep!r} there (mailtix translates "
                                f"'/'); folders there: {names}") from None
    how = "created" if created else "exists"
    method = "MOVE" if "MOVE" in caps else "COPY, then expunge"
    return f"{name} {how} (separator {sep!r}, moved by {method})"


def _test_pop3(run: _Runner, server: Server, password: str) -> None:
    box: list = []
    run.step("login", lambda: box.append(clients.open_pop3(server, password))
             or _who(server, box[0]))
    client = box[0]
    try:
        run.step("STAT", lambda: "{} messages, {} bytes".format(*client.stat()))
    finally:
        client.quit()


def _test_smtp(run: _Runner, server: Server, password: str) -> None:
    box: list = []
    label = "EHLO + STARTTLS" if server.tls == "starttls" else "EHLO"
    run.step(label, lambda: box.append(clients.open_smtp(server, None)) or "ok")
    client = box[0]
    try:
        if client.has_extn("auth"):
            run.step("AUTH", lambda: _smtp_auth(client, server, password))
    finally:
        try:
            client.quit()
        except Exception:  # already closed after a refused AUTH
            pass


def _smtp_auth(client, server: Server, password: str) -> str:
    clients.smtp_authenticate(client, server, password)
    return _who(server, client)


def _roundtrip(report: Report, account: Account, wait: float) -> None:
    """Send a probe to the account's own address and wait until it can be fetched."""
    assert account.fetch is not None and account.smtp is not None
    run = _Runner(report, "roundtrip")
    token = uuid.uuid4().hex
    domain = account.email.rsplit("@", 1)[-1]
    msg = EmailMessage()
    now = datetime.now(UTC)
    msg["From"] = account.email
    msg["To"] = account.email
    msg["Subject"] = f"mailtix probe {now:%Y-%m-%d %H:%M:%S} UTC"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<probe.{token}@{domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Mailtix-Probe"] = token
    msg.set_content("A probe sent by `mailtix account test --roundtrip`; it is removed again.\n")
    sent_at: list[float] = []

    def send() -> str:
        smtp_pw = secrets.lookup(account, "smtp", account.smtp)
        client = clients.open_smtp(account.smtp, smtp_pw)
        try:
            client.send_message(msg)
        finally:
            client.quit()
        sent_at.append(time.monotonic())
        return msg["Message-ID"]

    run.step("send probe", send)
    pw = secrets.lookup(account, "fetch", account.fetch)
    try:
        run.step("probe arrived", lambda: _await_probe(account.fetch, pw, token, wait, sent_at[0]))
    except _Stop:
        pass


def _await_probe(server: Server, password: str, token: str, wait: float, sent: float) -> str:
    from mailtix.errors import NetworkError

    deadline = sent + wait
    while time.monotonic() < deadline:
        if server.protocol == "imap":
            found = _imap_take_probe(server, password, token)
        else:
            found = _pop3_take_probe(server, password, token)
        if found:
            return f"after {time.monotonic() - sent:.1f} s; probe removed"
        time.sleep(0.5)
    raise NetworkError(f"the probe did not arrive within {wait:g} s", server.host, "roundtrip",
                       hint="check the SMTP server's queue and the account's spam filter")


def _imap_take_probe(server: Server, password: str, token: str) -> bool:
    mailbox = clients.open_imap(server, password, folder="INBOX")
    try:
        uids = mailbox.uids(f'HEADER X-Mailtix-Probe "{token}"')
        if uids:
            from mailtix.mail import imap_ops

            # Not imap-tools' delete: its plain EXPUNGE would also remove mail another client
            # flagged \Deleted and kept.
            imap_ops.refresh_capabilities(mailbox.client)
            numbers = [int(u) for u in uids]
            imap_ops.check(mailbox.client.uid("STORE", imap_ops.uid_set(numbers), "+FLAGS.SILENT",
                                              r"(\Deleted)"), "UID STORE", server.host)
            imap_ops.expunge(mailbox.client, numbers, server.host)
            return True
        return False
    finally:
        mailbox.logout()


def _pop3_take_probe(server: Server, password: str, token: str) -> bool:
    client = clients.open_pop3(server, password)
    try:
        count = len(client.list()[1])
        for number in range(count, 0, -1):
            head = b"\n".join(client.top(number, 0)[1])
            if token.encode() in head:
                client.dele(number)
                return True
        return False
    finally:
        client.quit()
