"""Logging in with an OAuth2 bearer token (SASL XOAUTH2 / OAUTHBEARER) over IMAP, POP3 and
SMTP; clients.py calls these for servers whose account has auth = "oauth2".

A server that refuses a token mailtix still holds for valid (a clock off by minutes, a token
the provider dropped early) gets one more try with a freshly refreshed token, on the same
connection; when the refresh itself is refused, the error says the sign-in is gone and which
command brings it back.
"""

from __future__ import annotations

import base64
import imaplib
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from mailtix.config.model import Server
from mailtix.errors import AuthError

if TYPE_CHECKING:
    import poplib
    import smtplib

# mechanism, token -> None when logged in, else the server's refusal
Attempt = Callable[[str, str], "str | None"]


def _login(server: Server, protocol: str, offered: list[str], attempt: Attempt) -> str:
    """Choose the mechanism, log in, retry once after a refresh; returns the mechanism."""
    from mailtix import auth
    from mailtix.auth import sasl

    assert server.oauth is not None
    mechanism = sasl.choose(offered, server.oauth.mechanism, server.host)
    token = auth.access_token(server.oauth)
    refused = attempt(mechanism, token)
    if refused is not None:
        again = auth.access_token(server.oauth, stale=token)
        if again != token:
            refused = attempt(mechanism, again)
    if refused is not None:
        raise _token_refused(server, protocol, mechanism, refused)
    return mechanism


def _token_refused(server: Server, protocol: str, mechanism: str, reply: str) -> AuthError:
    assert server.oauth is not None
    return AuthError(f"{server.host}: {protocol} {mechanism} login as {server.user!r} refused: "
                     f"{reply[:300]}", server.host, mechanism, reply[:300],
                     hint=f"the server did not accept the OAuth2 token: check that the user is "
                          f"the account that signed in and the scopes; `mailtix account login "
                          f"{server.oauth.account}` signs in again")


def imap_token_login(mailbox, server: Server, folder: str | None):
    from mailtix.auth import sasl
    from mailtix.mail.clients import network_error

    def attempt(mechanism: str, token: str) -> str | None:
        try:
            mailbox.client.authenticate(mechanism, sasl.responder(
                mechanism, server.user, token, server.host, server.port))
        except imaplib.IMAP4.error as exc:
            return str(exc)
        return None

    offered = [c[5:] for c in mailbox.client.capabilities if c.upper().startswith("AUTH=")]
    try:
        mailbox.mechanism = _login(server, "IMAP", offered, attempt)  # shown by `account test`
    except (OSError, ssl.SSLError) as exc:
        raise network_error(server, exc, "AUTHENTICATE") from None
    if folder is not None:
        mailbox.folder.set(folder)
    return mailbox


def pop3_token_login(client: poplib.POP3, server: Server) -> None:
    """RFC 5034 AUTH with a bearer token; poplib has no SASL of its own."""
    import poplib

    from mailtix.auth import sasl
    from mailtix.mail.clients import _quit

    def attempt(mechanism: str, token: str) -> str | None:
        answer = sasl.responder(mechanism, server.user, token, server.host, server.port)
        try:
            reply = client._shortcmd(f"AUTH {mechanism}")
            for _ in range(3):  # "+ <challenge>": the token, then the error reply
                if reply.startswith(b"+OK"):
                    return None
                reply = client._shortcmd(base64.b64encode(answer(reply[2:])).decode("ascii"))
            return None if reply.startswith(b"+OK") else reply.decode(errors="replace")
        except poplib.error_proto as exc:
            return exc.args[0].decode(errors="replace") if exc.args and isinstance(
                exc.args[0], bytes) else str(exc)

    try:
        offered = client.capa().get("SASL", [])
    except poplib.error_proto:
        offered = []
    try:
        client.mechanism = _login(server, "POP3", offered, attempt)  # type: ignore[attr-defined]
    except AuthError:
        _quit(client)
        raise


def smtp_token_login(client: smtplib.SMTP, server: Server) -> None:
    import smtplib

    from mailtix.auth import sasl
    from mailtix.mail.clients import network_error, smtp_reply

    def attempt(mechanism: str, token: str) -> str | None:
        answer = sasl.responder(mechanism, server.user, token, server.host, server.port)
        try:
            # smtplib base64-encodes what the callback returns; these bytes are ASCII.
            client.auth(mechanism, lambda challenge=None: answer(challenge).decode("ascii"),
                        initial_response_ok=True)
        except smtplib.SMTPAuthenticationError as exc:
            return f"{exc.smtp_code} {smtp_reply(exc)}"
        return None

    offered = client.esmtp_features.get("auth", "").split()
    try:
        client.mechanism = _login(server, "SMTP", offered, attempt)  # type: ignore[attr-defined]
    except (OSError, smtplib.SMTPException) as exc:
        raise network_error(server, exc, "AUTH") from None
