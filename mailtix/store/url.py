"""The store's URL as it may be shown: never with its password."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def redact(url: str) -> str:
    """The URL with a password in it (user:PASSWORD@ or ?password=) replaced by ***."""
    try:
        parts = urlsplit(url)
        secret = parts.password is not None
    except ValueError:
        return "postgresql://***"
    if secret:
        user, host = parts.netloc.rsplit("@", 1)
        parts = parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}")
    if "password" in parts.query:
        query = [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


__all__ = ["redact"]
