"""Real mail servers on loopback for tests, the demo and the benchmarks.

Dovecot (IMAP, IMAPS, STARTTLS, POP3, POP3S) runs from a private config in a temporary directory;
aiosmtpd runs in-process. Nothing here fakes a protocol: clients talk to the real servers.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVECOT_HINT = (
    "Dovecot is not installed: run `make test` (installs dovecot-imapd and dovecot-pop3d "
    "with apt-get as root), or install them by hand."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on 127.0.0.1:{port} did not come up within {timeout}s")


@dataclass
class TLSFiles:
    """A private CA and a server certificate for 127.0.0.1/localhost signed by it."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def create(cls, folder: Path) -> TLSFiles:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        folder.mkdir(parents=True, exist_ok=True)
        ca_file = folder / "ca.pem"
        cert_file = folder / "server.pem"
        key_file = folder / "server.key"
        ca.cert_pem.write_to_path(str(ca_file))
        cert.private_key_pem.write_to_path(str(key_file))
        with open(cert_file, "wb") as fh:
            for blob in cert.cert_chain_pems:
                fh.write(blob.bytes())
        return cls(ca_file, cert_file, key_file)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx


DOVECOT_CONF = """\
protocols = imap pop3
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{root}/mail/%u/Maildir
mail_uid = {uid}
mail_gid = {gid}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox Junk {{
    special_use = \\Junk
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd.d/%u
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
protocol pop3 {{
  mail_max_userip_connections = 100
  pop3_uidl_format = %08Xu%08Xv
}}
"""


@dataclass
class Dovecot:
    """A private Dovecot on loopback; users are added with `add_user` before or after start."""

    root: Path
    tls: TLSFiles
    imap: int = field(default_factory=free_port)
    imaps: int = field(default_factory=free_port)
    pop3: int = field(default_factory=free_port)
    pop3s: int = field(default_factory=free_port)
    users: dict[str, str] = field(default_factory=dict)
    # Variants as other servers are set up: '.' between folder levels, and what IMAP announces
    # (Dovecot's imap_capability replaces its own list, e.g. without MOVE, UIDPLUS or IDLE).
    separator: str = "/"
    capabilities: str = ""
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.root / "dovecot.conf"

    def start(self) -> Dovecot:
        if not os.path.exists(DOVECOT):
            raise RuntimeError(DOVECOT_HINT)
        if os.geteuid() != 0:
            raise RuntimeError("the Dovecot fixture runs Dovecot as root (as `make test` does)")
        pw = pwd.getpwnam("dovecot")
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        for sub in ("run", "state", "mail", "passwd.d"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # Dovecot's auth and mail processes run as the `dovecot` user and must reach the files.
        for folder in (self.root, *self.root.parents):
            mode = folder.stat().st_mode
            if not mode & 0o001:
                os.chmod(folder, mode | 0o711)
        os.chown(self.root / "mail", self.uid, self.gid)
        self.conf.write_text(self.config_text())
        self._proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL, stderr=open(self.root / "stderr.log", "wb"),
        )
        for port in (self.imap, self.imaps, self.pop3, self.pop3s):
            try:
                wait_port(port)
            except RuntimeError:
                log = (self.root / "stderr.log").read_text() + self.log()
                self.stop()
                raise RuntimeError(f"Dovecot did not start:\n{log}") from None
        return self

    def config_text(self) -> str:
        text = DOVECOT_CONF.format(
            root=self.root, cert=self.tls.cert_file, key=self.tls.key_file,
            uid=self.uid, gid=self.gid, imap=self.imap, imaps=self.imaps,
            pop3=self.pop3, pop3s=self.pop3s,
        )
        text = text.replace("separator = /", f"separator = {self.separator}")
        if self.capabilities:
            imap = "protocol imap {\n  mail_max_userip_connections = 100\n"
            assert text.count(imap) == 1
            text = text.replace(imap, f"{imap}  imap_capability = {self.capabilities}\n")
        return text

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def add_user(self, user: str, password: str) -> None:
        self.users[user] = password
        # One passwd file per user: Dovecot re-checks a shared file at most once a second,
        # so a user added just after a login elsewhere would be unknown for that second.
        (self.root / "passwd.d" / user).write_text(f"{user}:{{PLAIN}}{password}::::::\n")
        self.maildir(user).mkdir(parents=True, exist_ok=True)
        for sub in ("cur", "new", "tmp"):
            (self.maildir(user) / sub).mkdir(exist_ok=True)
        for dirpath, _dirs, _files in os.walk(self.root / "mail" / user):
            os.chown(dirpath, self.uid, self.gid)

    def new_user(self, prefix: str = "user") -> tuple[str, str]:
        user = f"{prefix}{uuid.uuid4().hex[:8]}"
        password = f"pw-{uuid.uuid4().hex}"
        self.add_user(user, password)
        return user, password

    def maildir(self, user: str, folder: str = "INBOX") -> Path:
        from imap_tools.imap_utf7 import utf7_encode

        base = self.root / "mail" / user / "Maildir"
        if folder == "INBOX":
            return base
        # Maildir++ on disk: '.' between levels, names in IMAP's modified UTF-7.
        return base / ("." + utf7_encode(folder).decode().replace("/", "."))

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX",
                mtime: float | None = None) -> Path:
        """Drop a message into the user's Maildir, as a local delivery agent does."""
        box = self.maildir(user, folder)
        if not box.exists():
            for sub in ("", "cur", "new", "tmp"):
                (box / sub).mkdir(parents=True, exist_ok=True)
                os.chown(box / sub, self.uid, self.gid)
        name = f"{time.time():.6f}.{uuid.uuid4().hex}.mailtix-test"
        tmp = box / "tmp" / name
        tmp.write_bytes(raw)
        os.chown(tmp, self.uid, self.gid)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        final = box / "new" / name
        os.rename(tmp, final)
        return final

    def reset_uidvalidity(self, user: str, folder: str = "INBOX") -> None:
        """Make Dovecot renumber a folder with a new UIDVALIDITY, as after a server restore."""
        box = self.maildir(user, folder)
        for path in box.iterdir():
            if path.name.startswith(("dovecot-uidlist", "dovecot.index")):
                path.unlink()
        time.sleep(1.1)  # UIDVALIDITY is a timestamp; make sure the new one differs

    def imap_client(self, user: str):
        """A plain imaplib client for tests to look at the server side."""
        import imaplib

        client = imaplib.IMAP4("127.0.0.1", self.imap, timeout=10)
        client.login(user, self.users[user])
        return client


def simple_message(
    subject: str = "Hello",
    sender: str = "customer@example.org",
    to: str = "support@example.com",
    body: str = "Hello, I need help.\n",
    **headers: str,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = headers.pop("Date", "Sun, 22 Nov 2026 10:00:00 +0000")
    msg["Message-ID"] = headers.pop("message_id", f"<{uuid.uuid4().hex}@example.org>")
    for key, value in headers.items():
        msg[key.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


class RecordingHandler:
    """aiosmtpd handler that keeps every envelope; optional scripted replies per RCPT."""

    def __init__(self) -> None:
        self.messages: list[dict[str, object]] = []
        self.replies: list[str] = []  # consumed one per DATA, e.g. "451 try later"
        self.deliver_to: Dovecot | None = None
        self.mailbox_users: dict[str, str] = {}
        self.before = None  # called with the count received so far; may return a reply
        self.refuse: dict[str, str] = {}  # recipient -> reply at RCPT, e.g. "550 5.1.1 unknown"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        reply = self.refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if self.before is not None:
            reply = self.before(len(self.messages))
            if reply:
                return reply
        if self.replies:
            reply = self.replies.pop(0)
            if not reply.startswith("250"):
                return reply
        raw = envelope.original_content or envelope.content
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "raw": bytes(raw), "at": time.monotonic(),
                              "options": list(envelope.mail_options)})
        if self.deliver_to is not None:
            for rcpt in envelope.rcpt_tos:
                user = self.mailbox_users.get(rcpt.lower())
                if user:
                    self.deliver_to.deliver(user, bytes(raw))
        return "250 OK"


class SMTPServer:
    """aiosmtpd on loopback: plain, STARTTLS, or implicit TLS, optionally with AUTH."""

    def __init__(
        self, tls: TLSFiles | None = None, mode: str = "none",
        users: dict[str, str] | None = None, smtputf8: bool = False,
    ) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.handler = RecordingHandler()
        self.tls = tls
        self.port = free_port()
        self.mode = mode
        self.users = users or {}

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                mechanism in ("LOGIN", "PLAIN")
                and self.users.get(auth_data.login.decode()) == auth_data.password.decode()
            )
            return AuthResult(success=ok, handled=False)  # handled=True would send no 535

        kwargs: dict[str, object] = {"hostname": "127.0.0.1", "port": self.port,
                                     "enable_SMTPUTF8": smtputf8}
        if self.users:
            kwargs["authenticator"] = authenticator
            kwargs["auth_required"] = True
            kwargs["auth_require_tls"] = mode == "starttls"  # implicit TLS is already encrypted
        if mode == "starttls":
            assert tls is not None
            kwargs["tls_context"] = tls.server_context()
            kwargs["require_starttls"] = True
        elif mode == "ssl":
            assert tls is not None
            kwargs["ssl_context"] = tls.server_context()
        self.controller = Controller(self.handler, **kwargs)

    @property
    def messages(self) -> list[dict[str, object]]:
        return self.handler.messages

    def start(self) -> SMTPServer:
        if self.mode == "ssl":
            # Controller's readiness probe would wrap with the server context; probe as a client.
            def trigger() -> None:
                ctx = ssl.create_default_context(cafile=str(self.tls.ca_file))  # type: ignore[union-attr]
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
                    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
                        conn.recv(1024)

            self.controller._trigger_server = trigger  # type: ignore[method-assign]
        self.controller.start()
        wait_port(self.port)
        return self

    def stop(self) -> None:
        self.controller.stop()


OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/dovecot-oauth2.conf.ext
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u allow_all_users=yes
}}
"""
OAUTH2_EXT = """\
introspection_mode = post
introspection_url = {url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
"""


class OAuthDovecot(Dovecot):
    """Dovecot that accepts only bearer tokens (XOAUTH2, OAUTHBEARER), checked against an
    OAuth2 server's introspection endpoint; no password login at all."""

    def __init__(self, root: Path, tls: TLSFiles, introspection_url: str) -> None:
        super().__init__(root, tls)
        self.introspection_url = introspection_url

    def config_text(self) -> str:
        text = super().config_text()
        (self.root / "dovecot-oauth2.conf.ext").write_text(
            OAUTH2_EXT.format(url=self.introspection_url))
        start = text.index("passdb {")
        end = text.index("service imap-login")
        text = (text[:start] + OAUTH2_PASSDB.format(root=self.root, uid=self.uid, gid=self.gid)
                + text[end:])
        text = text.replace("auth_mechanisms = plain login",
                            "auth_mechanisms = xoauth2 oauthbearer")
        # Every refused login would otherwise delay the next one from 127.0.0.1 by seconds.
        return text.replace("service anvil {\n  chroot =\n}",
                            "service anvil {\n  chroot =\n  unix_listener anvil-auth-penalty {\n"
                            "    mode = 0\n  }\n}")


class BearerHandler(RecordingHandler):
    """aiosmtpd handler whose AUTH XOAUTH2 / OAUTHBEARER asks `check(token)` for the user."""

    def __init__(self, check, mechanisms: tuple[str, ...] = ("XOAUTH2", "OAUTHBEARER")) -> None:
        super().__init__()
        self.check = check
        self.logins: list[tuple[str, str]] = []  # (mechanism, user) of accepted logins
        if "XOAUTH2" in mechanisms:
            self.auth_XOAUTH2 = self._xoauth2
        if "OAUTHBEARER" in mechanisms:
            self.auth_OAUTHBEARER = self._oauthbearer

    async def _read(self, server, args):
        import base64

        if len(args) == 2:
            return base64.b64decode(args[1])
        blob = await server.challenge_auth("")
        return blob if isinstance(blob, bytes) else b""

    async def _finish(self, server, mechanism: str, user: str, token: str):
        from aiosmtpd.smtp import AuthResult

        if user and self.check(token) == user:
            self.logins.append((mechanism, user))
            return AuthResult(success=True, auth_data=user)
        # RFC 7628 / XOAUTH2: an error challenge, the client's dummy reply, then 535.
        await server.challenge_auth('{"status":"invalid_token"}')
        return AuthResult(success=False, handled=False)

    async def _xoauth2(self, server, args):
        fields = dict(part.split("=", 1) for part in
                      (await self._read(server, args)).decode().split("\x01") if "=" in part)
        return await self._finish(server, "XOAUTH2", fields.get("user", ""),
                                  fields.get("auth", "").removeprefix("Bearer "))

    async def _oauthbearer(self, server, args):
        raw = (await self._read(server, args)).decode()
        header, _, rest = raw.partition("\x01")
        user = next((p[2:] for p in header.split(",") if p.startswith("a=")), "")
        fields = dict(part.split("=", 1) for part in rest.split("\x01") if "=" in part)
        return await self._finish(server, "OAUTHBEARER", user.replace("=2C", ",").replace(
            "=3D", "="), fields.get("auth", "").removeprefix("Bearer "))


class BearerSMTPServer(SMTPServer):
    """aiosmtpd on loopback (plain) that takes only bearer tokens, checked with `check`."""

    def __init__(self, check, mechanisms: tuple[str, ...] = ("XOAUTH2", "OAUTHBEARER")) -> None:
        from aiosmtpd.controller import Controller

        self.handler = BearerHandler(check, mechanisms)
        self.tls = None
        self.port = free_port()
        self.mode = "none"
        self.users = {}
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, auth_required=True,
            auth_require_tls=False, auth_exclude_mechanism=["PLAIN", "LOGIN"])
