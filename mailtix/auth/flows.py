"""The OAuth2 protocol, done by authlib (requests client): the device authorization grant
(RFC 8628), the authorization code grant with PKCE (RFC 7636) and a loopback redirect
(RFC 8252), and the refresh grant. mailtix only moves the results in and out of the store.

authlib, not msal: one client for Microsoft, Google and any standard server, and the token set
stays ours to save under our lock (msal keeps its own cache format and decides itself when a
rotated refresh token is written).
"""

from __future__ import annotations

import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mailtix import secrets
from mailtix.auth.providers import Endpoints, endpoints
from mailtix.auth.tokens import login_hint
from mailtix.config.model import OAuth
from mailtix.errors import AuthError, NetworkError, UsageError
from mailtix.record import Record

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
HTTP_TIMEOUT = 30.0
# RFC 6749 5.2 / RFC 8628 3.5: the answers that mean "this grant is gone, sign in again".
DEAD_GRANT = ("invalid_grant", "expired_token", "access_denied", "unauthorized_client")


class DevicePrompt(Record):
    """What the user must do to approve a device login."""

    verification_uri: str
    user_code: str
    verification_uri_complete: str = ""
    expires_in: int = 900


def _client_secret(oauth: OAuth) -> str | None:
    if not oauth.client_secret_cmd:
        return None
    try:
        proc = subprocess.run(shlex.split(oauth.client_secret_cmd), capture_output=True,
                              timeout=30, check=False, env=secrets.child_environment())
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AuthError(f"client_secret_cmd of account {oauth.account!r} failed: "
                        f"{type(exc).__name__}") from None
    if proc.returncode != 0 or not proc.stdout.strip():
        raise AuthError(f"client_secret_cmd of account {oauth.account!r} failed "
                        f"(exit {proc.returncode})")
    return proc.stdout.decode(errors="replace").strip()


def _session(oauth: OAuth, ep: Endpoints, **kwargs: Any):
    from authlib.integrations.requests_client import OAuth2Session

    return OAuth2Session(client_id=oauth.client_id, client_secret=_client_secret(oauth),
                         scope=" ".join(ep.scopes) or None, default_timeout=HTTP_TIMEOUT,
                         **kwargs)


def _network(oauth: OAuth, url: str, exc: BaseException) -> NetworkError:
    host = urlsplit(url).hostname or url
    return NetworkError(f"account {oauth.account!r}: cannot reach the OAuth2 server {host}: "
                        f"{type(exc).__name__}", host, "token")


def _oauth_failure(oauth: OAuth, exc: Any, what: str) -> AuthError:
    error = getattr(exc, "error", None) or type(exc).__name__
    text = f"account {oauth.account!r}: {what} failed: {error}"
    description = getattr(exc, "description", None)
    if description:
        text += f" ({str(description)[:200]})"
    hint = login_hint(oauth.account)
    if error == "invalid_scope" and oauth.provider == "google" and what.startswith("device"):
        # Google's device flow grants only a short list of scopes, and mail is not among them.
        hint = f"Google gives mail access only to `mailtix account login {oauth.account} --browser`"
    return AuthError(text, "", what, str(error), hint=hint)


def device_login(oauth: OAuth, show: Callable[[DevicePrompt], None],
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """RFC 8628: ask for a user code, show it, poll the token endpoint until approved."""
    import requests
    from authlib.integrations.base_client.errors import OAuthError

    ep = endpoints(oauth)
    if not ep.device_url:
        raise UsageError(f"account {oauth.account!r} has no device authorization endpoint",
                         hint="set oauth.device_url, or use `mailtix account login "
                              f"{oauth.account} --browser`")
    session = _session(oauth, ep)
    try:
        resp = session.post(ep.device_url, withhold_token=True,
                            data={"client_id": oauth.client_id, "scope": " ".join(ep.scopes)})
        data = resp.json()
    except requests.RequestException as exc:
        raise _network(oauth, ep.device_url, exc) from None
    except ValueError:
        raise AuthError(f"account {oauth.account!r}: the device endpoint answered "
                        f"HTTP {resp.status_code} without JSON") from None
    if "error" in data or "device_code" not in data:
        raise _oauth_failure(oauth, OAuthError(data.get("error", f"HTTP {resp.status_code}"),
                                               data.get("error_description")),
                             "device authorization")
    prompt = DevicePrompt(
        verification_uri=data.get("verification_uri") or data.get("verification_url", ""),
        user_code=data["user_code"],
        verification_uri_complete=data.get("verification_uri_complete", ""),
        expires_in=int(data.get("expires_in", 900)))
    show(prompt)
    interval = float(data.get("interval", 5))
    deadline = time.monotonic() + prompt.expires_in
    while time.monotonic() < deadline:
        sleep(interval)
        try:
            return dict(session.fetch_token(ep.token_url, grant_type=DEVICE_GRANT,
                                            device_code=data["device_code"]))
        except OAuthError as exc:
            if exc.error == "authorization_pending":
                continue
            if exc.error == "slow_down":
                interval += 5  # RFC 8628 3.5
                continue
            raise _oauth_failure(oauth, exc, "device login") from None
        except requests.RequestException as exc:
            raise _network(oauth, ep.token_url, exc) from None
    raise AuthError(f"account {oauth.account!r}: the code was not approved within "
                    f"{prompt.expires_in} s", hint=login_hint(oauth.account))


def browser_login(oauth: OAuth, open_url: Callable[[str], object],
                  timeout: float = 300.0) -> dict[str, Any]:
    """The authorization code grant with PKCE; the browser comes back to a loopback port."""
    import requests
    from authlib.common.security import generate_token
    from authlib.integrations.base_client.errors import OAuthError

    ep = endpoints(oauth)
    if not ep.authorize_url:
        raise UsageError(f"account {oauth.account!r} has no authorization endpoint",
                         hint="set oauth.authorize_url, or log in without --browser")
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            query = parse_qs(urlsplit(self.path).query)
            if "code" not in query and "error" not in query:
                self.send_error(404)
                return
            received.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"mailtix: signed in. You can close this window.\n")

        def log_message(self, *args: Any) -> None:  # the query holds the code: never log it
            pass

    try:
        server = HTTPServer(("127.0.0.1", oauth.redirect_port), Handler)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{oauth.redirect_port} for the "
                         f"browser's redirect: {exc.strerror}") from None
    redirect = f"http://127.0.0.1:{server.server_port}/"
    session = _session(oauth, ep, redirect_uri=redirect, code_challenge_method="S256")
    verifier = generate_token(64)
    url, state = session.create_authorization_url(ep.authorize_url, code_verifier=verifier)
    thread = threading.Thread(target=_serve_until, args=(server, received, timeout), daemon=True)
    thread.start()
    try:
        open_url(url)
        thread.join(timeout + 1)
    finally:
        server.server_close()
    if not received:
        raise AuthError(f"account {oauth.account!r}: no answer from the browser within "
                        f"{timeout:g} s", hint=login_hint(oauth.account))
    query = parse_qs(urlsplit(received[0]).query)
    if "error" in query:
        raise _oauth_failure(oauth, OAuthError(query["error"][0],
                                               (query.get("error_description") or [""])[0]),
                             "browser login")
    try:
        return dict(session.fetch_token(ep.token_url, authorization_response=redirect.rstrip("/")
                                        + received[0], code_verifier=verifier, state=state))
    except OAuthError as exc:
        raise _oauth_failure(oauth, exc, "browser login") from None
    except requests.RequestException as exc:
        raise _network(oauth, ep.token_url, exc) from None
    except Exception as exc:  # authlib's MismatchingStateException and friends
        raise _oauth_failure(oauth, exc, "browser login") from None


def _serve_until(server: HTTPServer, received: list[str], timeout: float) -> None:
    server.timeout = 0.5
    deadline = time.monotonic() + timeout
    while not received and time.monotonic() < deadline:
        server.handle_request()


def refresh(oauth: OAuth, token: dict[str, Any]) -> dict[str, Any]:
    """The refresh grant; a dead grant becomes an AuthError that names the login command."""
    import requests
    from authlib.integrations.base_client.errors import OAuthError

    ep = endpoints(oauth)
    session = _session(oauth, ep, token=dict(token))
    try:
        new = dict(session.refresh_token(ep.token_url, refresh_token=token["refresh_token"]))
    except OAuthError as exc:
        if exc.error in DEAD_GRANT:
            # The command goes into the message too: `mailtix status` and the log keep only it.
            raise AuthError(
                f"account {oauth.account!r}: the OAuth2 sign-in was revoked or has expired "
                f"({exc.error}); {login_hint(oauth.account)}", "", "refresh", str(exc.error),
                hint=login_hint(oauth.account)) from None
        raise _oauth_failure(oauth, exc, "token refresh") from None
    except requests.RequestException as exc:
        raise _network(oauth, ep.token_url, exc) from None
    new.setdefault("refresh_token", token["refresh_token"])
    if not new.get("scope") and token.get("scope"):
        new["scope"] = token["scope"]
    return new

