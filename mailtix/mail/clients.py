"""The one seam per protocol: build a connected, logged-in client from an account's server.

Everything else takes the client it is given. Errors come out as AuthError or NetworkError with
the host, the command and the server's reply, never with the password.
"""

from __future__ import annotations

import imaplib
import socket
import ssl
from typing import TYPE_CHECKING

from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import MailboxLoginError

from mailtix.config.model import Server
from mailtix.errors import AuthError, NetworkError

if TYPE_CHECKING:  # smtplib and poplib are imported where used: `mailtix run` needs neither
    import poplib  # unless there is mail to send or a POP3 account
    import smtplib


def _poplib():
    import poplib

    # poplib refuses lines over 2,048 bytes, but real mail has header lines of hundreds of KB
    # (see the corpus' flanker/long-header.eml); RFC 5322's 998 is a SHOULD, not a MUST.
    poplib._MAXLINE = 64 * 1024 * 1024
    return poplib


def ssl_context(server: Server) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(server.ca_file) if server.ca_file else None)
    if not server.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def network_error(server: Server, exc: BaseException, command: str = "connect") -> NetworkError:
    where = f"{server.host}:{server.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return NetworkError(
            f"{where}: TLS certificate not trusted ({exc.verify_message})", server.host, command,
            hint="give the server's CA in ca_file, or (only for a test server) verify_tls = false")
    if isinstance(exc, ssl.SSLError):
        if "WRONG_VERSION_NUMBER" in str(exc) or "record layer failure" in str(exc):
            return NetworkError(
                f"{where}: the server answered in plain text to a TLS handshake", server.host,
                command, hint=f"this port does not speak implicit TLS: use tls = \"starttls\" "
                              f"(usually port {_port(server.protocol, 'starttls')})")
        return NetworkError(f"{where}: TLS failed: {exc.reason or exc}", server.host, command)
    if isinstance(exc, ConnectionRefusedError):
        return NetworkError(f"{where}: connection refused", server.host, command,
                            hint="is the host and port right, and the server running?")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        hint = None
        if server.tls != "ssl":
            hint = (f"no greeting: the port may expect implicit TLS; try tls = \"ssl\" "
                    f"(usually port {_port(server.protocol, 'ssl')})")
        return NetworkError(f"{where}: timed out after {server.timeout:g} s", server.host,
                            command, hint=hint)
    if isinstance(exc, socket.gaierror):
        return NetworkError(f"{server.host}: host name not found ({exc.strerror})",
                            server.host, command)
    return NetworkError(f"{where}: {type(exc).__name__}: {exc}", server.host, command)


def _port(protocol: str, tls: str) -> int:
    from mailtix.config.model import DEFAULT_PORTS

    return DEFAULT_PORTS[(protocol, tls)]


def imap_connect(server: Server):
    """An unauthenticated imap-tools mailbox (TLS negotiated when configured)."""
    try:
        if server.tls == "ssl":
            return MailBox(server.host, server.port, timeout=server.timeout,
                           ssl_context=ssl_context(server))
        if server.tls == "starttls":
            return MailBoxStartTls(server.host, server.port, timeout=server.timeout,
                                   ssl_context=ssl_context(server))
        return MailBoxUnencrypted(server.host, server.port, timeout=server.timeout)
    except (OSError, ssl.SSLError) as exc:
        raise network_error(server, exc) from None
    except Exception as exc:  # imaplib.abort / error on a garbled greeting
        raise network_error(server, exc, "greeting") from None


def imap_login(mailbox, server: Server, password: str, folder: str | None = None):
    if server.oauth is not None:
        from mailtix.mail.token_login import imap_token_login

        return imap_token_login(mailbox, server, folder)
    try:
        if _ascii(server.user, password):
            mailbox.login(server.user, password, initial_folder=folder)
        else:
            # imaplib sends LOGIN arguments as ASCII; RFC 4616 PLAIN carries UTF-8.
            _require_plain(server, "AUTH=PLAIN" in mailbox.client.capabilities, "IMAP")
            mailbox.login_utf8(server.user, password, initial_folder=folder)
    except (MailboxLoginError, imaplib.IMAP4.error) as exc:
        reply = _reply(exc)
        raise AuthError(f"{server.host}: IMAP login as {server.user!r} refused: {reply}",
                        server.host, "LOGIN", reply,
                        hint="check the user name and the stored password") from None
    except (OSError, ssl.SSLError) as exc:
        raise network_error(server, exc, "LOGIN") from None
    return mailbox


def _ascii(*texts: str) -> bool:
    return all(text.isascii() for text in texts)


def _require_plain(server: Server, offered: bool, protocol: str) -> None:
    if not offered:
        raise AuthError(
            f"{server.host}: the {protocol} password or user name of {server.user!r} has "
            f"non-ASCII characters, and the server offers no PLAIN login that can carry them",
            server.host, "AUTH", hint="ask the server's admin to offer AUTH PLAIN (over TLS), "
                                      "or set an ASCII-only password")


def open_imap(server: Server, password: str, folder: str | None = None):
    return imap_login(imap_connect(server), server, password, folder)


def _reply(exc: BaseException) -> str:
    result = getattr(exc, "command_result", None)
    if isinstance(result, tuple) and len(result) == 2:
        typ, data = result
        parts = [d.decode(errors="replace") if isinstance(d, bytes) else str(d)
                 for d in (data or []) if d is not None]
        return f"{typ} {' '.join(parts)}"[:300]
    return str(exc)[:300]


def open_pop3(server: Server, password: str) -> poplib.POP3:
    poplib = _poplib()
    try:
        if server.tls == "ssl":
            client: poplib.POP3 = poplib.POP3_SSL(server.host, server.port, timeout=server.timeout,
                                                  context=ssl_context(server))
        else:
            client = poplib.POP3(server.host, server.port, timeout=server.timeout)
            if server.tls == "starttls":
                client.stls(ssl_context(server))
    except (OSError, ssl.SSLError, poplib.error_proto) as exc:
        raise network_error(server, exc) from None
    if server.oauth is not None:
        from mailtix.mail.token_login import pop3_token_login

        try:
            pop3_token_login(client, server)
        except (OSError, ssl.SSLError) as exc:
            raise network_error(server, exc, "AUTH") from None
        return client
    try:
        client.user(server.user)
        client.pass_(password)
    except poplib.error_proto as exc:
        reply = exc.args[0].decode(errors="replace") if exc.args and isinstance(
            exc.args[0], bytes) else str(exc)
        _quit(client)
        raise AuthError(f"{server.host}: POP3 login as {server.user!r} refused: {reply}",
                        server.host, "PASS", reply,
                        hint="check the user name and the stored password") from None
    except (OSError, ssl.SSLError) as exc:
        raise network_error(server, exc, "PASS") from None
    return client


def _quit(client: poplib.POP3) -> None:
    try:
        client.close()
    except OSError:
        pass


def smtp_login(client: smtplib.SMTP, user: str, password: str) -> None:
    """AUTH with one mechanism: smtplib's login() tries every mechanism in turn, so a wrong
    password would count two or three times against the server's lockout limit."""
    import smtplib

    advertised = client.esmtp_features.get("auth", "").upper().split()
    client.user, client.password = user, password
    if "PLAIN" in advertised:
        _smtp_plain(client, user, password)
        return
    for mechanism, method in (("LOGIN", client.auth_login), ("CRAM-MD5", client.auth_cram_md5)):
        if mechanism in advertised:
            client.auth(mechanism, method, initial_response_ok=True)
            return
    raise smtplib.SMTPException("no supported AUTH mechanism (PLAIN, LOGIN, CRAM-MD5)")


def _smtp_plain(client: smtplib.SMTP, user: str, password: str) -> None:
    """AUTH PLAIN with the initial response in UTF-8 (RFC 4616): smtplib's own auth()
    encodes it as ASCII and so cannot send a password such as 'pässwort'."""
    import base64
    import smtplib

    response = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
    code, reply = client.docmd("AUTH", "PLAIN " + response)
    if code == 334:  # a server that ignores the initial response asks for it once more
        code, reply = client.docmd(response)
    if code not in (235, 503):
        raise smtplib.SMTPAuthenticationError(code, reply)


def open_smtp(server: Server, password: str | None, local_hostname: str | None = None
              ) -> smtplib.SMTP:
    import smtplib

    plain, implicit_tls = _smtp_classes()
    try:
        if server.tls == "ssl":
            client: smtplib.SMTP = implicit_tls(
                server.host, server.port, timeout=server.timeout, context=ssl_context(server),
                local_hostname=local_hostname)
            client.ehlo()  # smtplib learns the extensions (AUTH) only from an EHLO
        else:
            client = plain(server.host, server.port, timeout=server.timeout,
                           local_hostname=local_hostname)
            client.ehlo()
            if server.tls == "starttls":
                client.starttls(context=ssl_context(server))
                client.ehlo()
    except (OSError, ssl.SSLError, smtplib.SMTPException) as exc:
        raise network_error(server, exc) from None
    if password is not None and client.has_extn("auth"):
        try:
            smtp_authenticate(client, server, password)
        except AuthError:
            client.close()
            raise
    return client


def dot_stuff(data: bytes) -> bytes:
    """RFC 5321 4.5.2 transparency for CRLF-ended bytes: a leading '.' on a line doubled,
    the data ended with CRLF.CRLF. The same result as smtplib's multiline regex, from one
    C-level replace (the regex cost ~0.4 ms per 140 KB document mail)."""
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\n.", b"\n..")
    return data + (b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n")


_SMTP_CLASSES: tuple[type, type] | None = None


def _smtp_classes() -> tuple[type, type]:
    """smtplib's SMTP and SMTP_SSL with DATA sent through dot_stuff (built on first use:
    smtplib is imported only when there is mail to send)."""
    global _SMTP_CLASSES
    if _SMTP_CLASSES is None:
        import smtplib

        def data(self, msg):
            if isinstance(msg, str):  # never from mailtix; smtplib's own path for it
                return smtplib.SMTP.data(self, msg)
            self.putcmd("data")
            code, reply = self.getreply()
            if code != 354:
                raise smtplib.SMTPDataError(code, reply)
            self.send(dot_stuff(msg))
            return self.getreply()

        _SMTP_CLASSES = (type("SMTP", (smtplib.SMTP,), {"data": data}),
                         type("SMTP_SSL", (smtplib.SMTP_SSL,), {"data": data}))
    return _SMTP_CLASSES


def smtp_reply(exc: smtplib.SMTPResponseException) -> str:
    """The server's reply text of an SMTP error, whatever type smtplib left it in."""
    error = exc.smtp_error
    return error.decode(errors="replace") if isinstance(error, bytes) else str(error)


def smtp_authenticate(client: smtplib.SMTP, server: Server, password: str) -> None:
    """AUTH on an open connection; a refusal is an AuthError, anything else a NetworkError."""
    import smtplib

    if server.oauth is not None:
        from mailtix.mail.token_login import smtp_token_login

        smtp_token_login(client, server)
        return
    if not _ascii(server.user, password):
        _require_plain(server, "PLAIN" in client.esmtp_features.get("auth", "").upper().split(),
                       "SMTP")
    try:
        smtp_login(client, server.user, password)
    except smtplib.SMTPAuthenticationError as exc:
        reply = smtp_reply(exc)
        raise AuthError(f"{server.host}: SMTP AUTH as {server.user!r} refused: "
                        f"{exc.smtp_code} {reply}", server.host, "AUTH", reply,
                        hint="check the user name and the stored password") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise network_error(server, exc, "AUTH") from None

