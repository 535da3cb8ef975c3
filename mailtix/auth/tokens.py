"""Where an account's OAuth2 tokens live, and a fresh access token from them.

Tokens go to the system keyring when there is one, else to a 0600 JSON file in the data dir's
oauth/ folder; never to the config, a log or any output. A refresh happens under an OS lock
per account and re-reads the tokens after taking it: providers that rotate refresh tokens
(Microsoft, many custom servers) invalidate the old one on use, so a second process refreshing
with the refresh token it read before the first one saved the new one would kill the grant.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mailtix.config.model import OAuth
from mailtix.errors import AuthError
from mailtix.record import Record

# Refresh this long before the access token expires: a login that starts with a token a few
# seconds from its end would be refused by the server half-way through a run.
MARGIN = 300.0
LOCK_WAIT = 60.0
KEYRING_SUFFIX = ":oauth"


def login_hint(account: str) -> str:
    return f"run `mailtix account login {account}`"


class TokenInfo(Record):
    """What may be shown of a token: never the token itself."""

    stored_in: str  # keyring | file
    expires_at: float | None
    scopes: tuple[str, ...]
    has_refresh_token: bool


class TokenStore:
    def __init__(self, oauth: OAuth) -> None:
        self.account = oauth.account
        self.folder = oauth.token_dir
        self.file = self.folder / f"{oauth.account}.json"
        self.source = ""  # where load() found the tokens

    def _keyring(self):
        from mailtix import secrets

        return secrets._keyring()

    def load(self) -> dict[str, Any] | None:
        kr = self._keyring()
        raw: str | None = None
        if kr is not None:
            try:
                raw = kr.get_password(_service(), self.account + KEYRING_SUFFIX)
                self.source = "keyring"
            except Exception:  # a locked keyring: fall back to the file, if there is one
                raw = None
        if raw is None:
            try:
                raw = self.file.read_text()
                self.source = "file"
            except FileNotFoundError:
                return None
        try:
            token = json.loads(raw)
        except ValueError:
            return None
        return token if isinstance(token, dict) and token.get("access_token") else None

    def save(self, token: dict[str, Any]) -> str:
        """Write the token set atomically; returns where it went."""
        data = json.dumps(_kept(token), sort_keys=True)
        kr = self._keyring()
        if kr is not None:
            try:
                kr.set_password(_service(), self.account + KEYRING_SUFFIX, data)
                self.file.unlink(missing_ok=True)  # one copy only: an old file would shadow
                return "keyring"
            except Exception:  # a keyring that refuses: the private file still works
                pass
        from mailtix.fsutil import atomic_write

        atomic_write(self.file, data.encode(), 0o600)
        return "file"

    def delete(self) -> None:
        kr = self._keyring()
        if kr is not None:
            try:
                kr.delete_password(_service(), self.account + KEYRING_SUFFIX)
            except Exception:  # nothing stored there
                pass
        self.file.unlink(missing_ok=True)

    @contextmanager
    def locked(self, wait: float = LOCK_WAIT) -> Iterator[None]:
        from mailtix.fsutil import private_dir
        from mailtix.lock import flock_within

        path = private_dir(self.folder) / f"{self.account}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if not flock_within(fd, wait, poll=0.05):
                raise AuthError(f"account {self.account!r}: another process has been "
                                f"refreshing its OAuth2 token for {wait:g} s")
            yield
        finally:
            os.close(fd)


def _service() -> str:
    from mailtix.secrets import SERVICE

    return SERVICE


def _kept(token: dict[str, Any]) -> dict[str, Any]:
    keep = ("access_token", "refresh_token", "expires_at", "scope", "token_type")
    out = {k: token[k] for k in keep if token.get(k) is not None}
    if "expires_at" not in out and token.get("expires_in") is not None:
        out["expires_at"] = time.time() + float(token["expires_in"])
    return out


def fresh(token: dict[str, Any], now: float | None = None) -> bool:
    expires = token.get("expires_at")
    if expires is None:
        return True  # the provider did not say: use it until the server refuses it
    return float(expires) - MARGIN > (time.time() if now is None else now)


def access_token(oauth: OAuth, stale: str | None = None) -> str:
    """A valid access token for the account, refreshed (and the new tokens saved) if needed.
    `stale` is a token the server just refused: a different one is returned, or a refresh
    is forced."""
    store = TokenStore(oauth)
    token = store.load()
    if token is None:
        raise AuthError(f"account {oauth.account!r} has no OAuth2 token yet: "
                        f"{login_hint(oauth.account)}", "", "login",
                        hint=login_hint(oauth.account))
    if fresh(token) and stale is None:
        return str(token["access_token"])
    with store.locked():
        # Whoever held the lock before us may have refreshed already, spending the refresh
        # token we read above: read again and use theirs.
        token = store.load() or token
        if fresh(token) and token["access_token"] != stale:
            return str(token["access_token"])
        if not token.get("refresh_token"):
            raise AuthError(f"account {oauth.account!r}: the OAuth2 access token is no longer "
                            f"valid and there is no refresh token: {login_hint(oauth.account)}",
                            "", "refresh",
                            hint=login_hint(oauth.account))
        from mailtix.auth.flows import refresh

        new = refresh(oauth, token)
        store.save(new)
        return str(new["access_token"])


def save_login(oauth: OAuth, token: dict[str, Any]) -> str:
    store = TokenStore(oauth)
    with store.locked():
        return store.save(token)


def token_info(oauth: OAuth) -> TokenInfo | None:
    store = TokenStore(oauth)
    token = store.load()
    if token is None:
        return None
    return TokenInfo(store.source, token.get("expires_at"),
                     tuple(str(token.get("scope") or "").split()),
                     bool(token.get("refresh_token")))

