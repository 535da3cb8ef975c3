"""The SASL initial responses for bearer tokens: XOAUTH2 (Google's and Microsoft's) and
OAUTHBEARER (RFC 7628). Both carry the token, so neither string may ever be logged."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mailtix.errors import AuthError

# Tried in this order when the config says "auto": XOAUTH2 is the one Microsoft 365 and Google
# both speak; OAUTHBEARER is the standard one, for servers that offer only it.
PREFERENCE = ("XOAUTH2", "OAUTHBEARER")


def choose(offered: Iterable[str], wanted: str, host: str) -> str:
    """The mechanism to use, from what the server advertised and the account's setting."""
    offered = {m.upper() for m in offered}
    candidates = PREFERENCE if wanted == "auto" else (wanted.upper(),)
    for mechanism in candidates:
        if mechanism in offered:
            return mechanism
    shown = " ".join(sorted(offered)) or "none"
    raise AuthError(f"{host}: the server offers no {' or '.join(candidates)} login "
                    f"(it offers: {shown})", host, "AUTH",
                    hint="check the host and port; with mechanism = \"auto\" mailtix picks what "
                         "the server advertises")


def initial_response(mechanism: str, user: str, token: str, host: str, port: int) -> bytes:
    if mechanism == "XOAUTH2":
        return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    # RFC 7628 3.1: a GS2 header naming the user (',' and '=' escaped), then key=value pairs.
    authzid = user.replace("=", "=3D").replace(",", "=2C")
    return (f"n,a={authzid},\x01host={host}\x01port={port}\x01"
            f"auth=Bearer {token}\x01\x01").encode()


def error_reply(mechanism: str) -> bytes:
    """What the client answers to the server's error challenge so that it sends its final NO:
    RFC 7628 3.2.3 asks for a single ^A; XOAUTH2 for an empty response."""
    return b"\x01" if mechanism == "OAUTHBEARER" else b""


def responder(mechanism: str, user: str, token: str, host: str, port: int
              ) -> Callable[[bytes | None], bytes]:
    """A challenge -> response function: the initial response first, the error reply after."""
    sent: list[bool] = []

    def answer(_challenge: bytes | None = None) -> bytes:
        if sent:
            return error_reply(mechanism)
        sent.append(True)
        return initial_response(mechanism, user, token, host, port)

    return answer
