"""A small OAuth2 authorization server on loopback for the tests (stdlib http.server).

It speaks what mailtix and Dovecot use of the real providers: device authorization (RFC 8628),
the authorization code grant with PKCE S256 (RFC 7636), the token endpoint with refresh-token
rotation (the old refresh token dies on use; using it again revokes the whole grant, as
Microsoft and most providers do on reuse), revocation (RFC 7009) and introspection (RFC 7662)
behind HTTP basic auth for Dovecot. The test plays the user: it approves a device code by
posting it to the verification URL, as a person would in the browser.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

INTROSPECT_USER = "dovecot"
INTROSPECT_PASSWORD = "introspect-secret"


@dataclass
class Grant:
    user: str
    scope: str
    refresh_token: str = ""
    revoked: bool = False
    used_refresh_tokens: set[str] = field(default_factory=set)


class OAuthServer:
    def __init__(self, access_lifetime: int = 3600, interval: float = 0.05,
                 token_delay: float = 0.0) -> None:
        self.access_lifetime = access_lifetime
        self.interval = interval
        self.token_delay = token_delay  # widens the window in which two refreshes overlap
        self.lock = threading.Lock()
        self.grants: list[Grant] = []
        self.access: dict[str, tuple[Grant, float]] = {}  # token -> grant, expiry
        self.devices: dict[str, dict] = {}  # device_code -> {user_code, user, scope}
        self.codes: dict[str, dict] = {}  # authorization code -> request
        self.browser_user = ""  # who is signed in at /authorize
        self.refreshes = 0
        self.reuse_detected = 0
        self.introspections = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> OAuthServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def introspection_url(self) -> str:
        return f"http://{INTROSPECT_USER}:{INTROSPECT_PASSWORD}@127.0.0.1:{self.port}/introspect"

    # --- what the test does as the user or as the provider's admin ---------------------------

    def approve(self, user_code: str, user: str) -> None:
        with self.lock:
            for device in self.devices.values():
                if device["user_code"] == user_code:
                    device["user"] = user
                    return
        raise KeyError(user_code)

    def revoke(self, user: str) -> None:
        with self.lock:
            for grant in self.grants:
                if grant.user == user:
                    grant.revoked = True

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access = {t: (g, 0.0) for t, (g, _exp) in self.access.items()}

    def live_refresh_token(self, user: str) -> str:
        with self.lock:
            live = [g.refresh_token for g in self.grants if g.user == user and not g.revoked]
        assert len(live) == 1, live
        return live[0]

    # --- protocol ---------------------------------------------------------------------------

    def _issue(self, grant: Grant) -> dict:
        access = secrets.token_urlsafe(24)
        grant.refresh_token = secrets.token_urlsafe(24)
        self.access[access] = (grant, time.time() + self.access_lifetime)
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.access_lifetime,
                "refresh_token": grant.refresh_token, "scope": grant.scope}

    def _token(self, form: dict[str, str]) -> tuple[int, dict]:
        if self.token_delay:
            time.sleep(self.token_delay)
        kind = form.get("grant_type")
        with self.lock:
            if kind == "urn:ietf:params:oauth:grant-type:device_code":
                device = self.devices.get(form.get("device_code", ""))
                if device is None:
                    return 400, {"error": "expired_token"}
                if device["user"] is None:
                    return 400, {"error": "authorization_pending"}
                del self.devices[form["device_code"]]
                grant = Grant(device["user"], device["scope"])
                self.grants.append(grant)
                return 200, self._issue(grant)
            if kind == "authorization_code":
                request = self.codes.pop(form.get("code", ""), None)
                if request is None or request["redirect_uri"] != form.get("redirect_uri"):
                    return 400, {"error": "invalid_grant"}
                digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                if challenge != request["code_challenge"]:
                    return 400, {"error": "invalid_grant", "error_description": "PKCE failed"}
                grant = Grant(request["user"], request["scope"])
                self.grants.append(grant)
                return 200, self._issue(grant)
            if kind == "refresh_token":
                token = form.get("refresh_token", "")
                for grant in self.grants:
                    if token in grant.used_refresh_tokens:
                        grant.revoked = True  # reuse: someone replayed a rotated token
                        self.reuse_detected += 1
                        return 400, {"error": "invalid_grant",
                                     "error_description": "refresh token reused"}
                    if token == grant.refresh_token:
                        if grant.revoked:
                            return 400, {"error": "invalid_grant",
                                         "error_description": "grant revoked"}
                        grant.used_refresh_tokens.add(token)
                        self.refreshes += 1
                        return 200, self._issue(grant)
                return 400, {"error": "invalid_grant"}
        return 400, {"error": "unsupported_grant_type"}

    def _introspect(self, token: str) -> dict:
        with self.lock:
            self.introspections += 1
            found = self.access.get(token)
            if found is None:
                return {"active": False}
            grant, expires = found
            if grant.revoked or expires < time.time():
                return {"active": False}
            return {"active": True, "username": grant.user, "scope": grant.scope,
                    "exp": int(expires)}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _form(self) -> dict[str, str]:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                return {k: v[0] for k, v in parse_qs(body).items()}

            def _json(self, status: int, data: dict) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802
                path = urlsplit(self.path).path
                form = self._form()
                if path == "/device":
                    code = secrets.token_urlsafe(16)
                    user_code = secrets.token_hex(4).upper()
                    with server.lock:
                        server.devices[code] = {"user_code": user_code, "user": None,
                                                "scope": form.get("scope", "")}
                    self._json(200, {"device_code": code, "user_code": user_code,
                                     "verification_uri": f"{server.url}/activate",
                                     "expires_in": 600, "interval": server.interval})
                elif path == "/token":
                    self._json(*server._token(form))
                elif path == "/activate":  # the user types the code into the page
                    try:
                        server.approve(form["user_code"], form["user"])
                        self._json(200, {"approved": True})
                    except KeyError:
                        self._json(404, {"approved": False})
                elif path == "/introspect":
                    expected = base64.b64encode(
                        f"{INTROSPECT_USER}:{INTROSPECT_PASSWORD}".encode()).decode()
                    if self.headers.get("Authorization") != f"Basic {expected}":
                        self._json(401, {"error": "unauthorized"})
                        return
                    self._json(200, server._introspect(form.get("token", "")))
                elif path == "/revoke":
                    with server.lock:
                        for grant in server.grants:
                            if form.get("token") in (grant.refresh_token,):
                                grant.revoked = True
                    self._json(200, {})
                else:
                    self._json(404, {"error": "not_found"})

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                if parts.path != "/authorize":
                    self._json(404, {"error": "not_found"})
                    return
                q = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
                    self._json(400, {"error": "invalid_request", "error_description": "PKCE"})
                    return
                code = secrets.token_urlsafe(16)
                with server.lock:
                    server.codes[code] = {"user": server.browser_user, "scope": q.get("scope", ""),
                                          "redirect_uri": q["redirect_uri"],
                                          "code_challenge": q["code_challenge"]}
                target = q["redirect_uri"] + "?" + urlencode({"code": code,
                                                              "state": q.get("state", "")})
                self.send_response(302)
                self.send_header("Location", target)
                self.end_headers()

        return Handler
