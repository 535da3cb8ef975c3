"""OAuth2 accounts against real parts on loopback: a local OAuth2 server (tests/oauth_server.py),
Dovecot whose oauth2 passdb checks every token by introspection, and aiosmtpd taking XOAUTH2 /
OAUTHBEARER checked against the same endpoint. The test plays the user approving the login."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import write_config
from helpers import count
from oauth_server import OAuthServer
from servers import BearerSMTPServer, OAuthDovecot, simple_message

from mailtix.errors import ExitCode

CLIENT_ID = "mailtix-test-client"


@pytest.fixture(scope="module")
def oauth_server():
    server = OAuthServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def oauth_dovecot(tls, oauth_server):
    server = OAuthDovecot(Path(tempfile.mkdtemp(prefix="mailtix-oauth-dovecot-")), tls,
                          oauth_server.introspection_url).start()
    yield server
    server.stop()


def introspect(oauth_server):
    """aiosmtpd's token check: the introspection endpoint over HTTP, as Dovecot does it."""

    def check(token: str) -> str | None:
        request = urllib.request.Request(
            oauth_server.introspection_url.replace("dovecot:introspect-secret@", ""),
            data=f"token={token}".encode(), method="POST")
        request.add_header("Authorization", "Basic ZG92ZWNvdDppbnRyb3NwZWN0LXNlY3JldA==")
        with urllib.request.urlopen(request, timeout=5) as resp:
            data = json.loads(resp.read())
        return data.get("username") if data.get("active") else None

    return check


@pytest.fixture(scope="module")
def bearer_smtp(oauth_server):
    server = BearerSMTPServer(introspect(oauth_server)).start()
    yield server
    server.stop()


def oauth_account(name: str, user: str, url: str, *, fetch: str = "", smtp: str = "",
                  oauth_extra: str = "") -> str:
    text = (f'[accounts.{name}]\nemail = "{user}@example.com"\nauth = "oauth2"\n'
            f'[accounts.{name}.oauth]\nprovider = "custom"\nclient_id = "{CLIENT_ID}"\n'
            f'token_url = "{url}/token"\ndevice_url = "{url}/device"\n'
            f'authorize_url = "{url}/authorize"\nscopes = ["mail.read", "mail.send"]\n'
            f"{oauth_extra}\n")
    if fetch:
        text += (f'[accounts.{name}.fetch]\nhost = "127.0.0.1"\ntls = "none"\n'
                 f'user = "{user}"\n{fetch}\n')
    if smtp:
        text += (f'[accounts.{name}.smtp]\nhost = "127.0.0.1"\ntls = "none"\n'
                 f'user = "{user}"\n{smtp}\n')
    return text


@contextmanager
def approving(oauth_server: OAuthServer, user: str):
    """The user at the browser: approves every device code that shows up, as `user`."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            with oauth_server.lock:
                pending = [d["user_code"] for d in oauth_server.devices.values()
                           if d["user"] is None]
            for code in pending:
                data = f"user_code={code}&user={user}".encode()
                urllib.request.urlopen(f"{oauth_server.url}/activate", data=data, timeout=5)
            stop.wait(0.02)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def stored_token(keyring_data, name: str) -> dict:
    return json.loads(keyring_data[("mailtix", f"{name}:oauth")])


def test_device_login_then_imap_fetch_with_xoauth2_and_oauthbearer(
        cli, cfgdir, oauth_server, oauth_dovecot, keyring_data):
    user = oauth_dovecot.new_user("oa")[0]
    config = oauth_account("m365", user, oauth_server.url, fetch=f"port = {oauth_dovecot.imap}")
    write_config(cfgdir, config)
    with approving(oauth_server, user):
        login = cli("account", "login", "m365")
    assert login.exit_code == 0, login.stdout
    assert f"open {oauth_server.url}/activate and enter the code" in login.stdout
    assert "tokens stored in the keyring" in login.stdout
    token = stored_token(keyring_data, "m365")
    assert token["refresh_token"] and token["access_token"] not in login.stdout
    assert not (Path(os.environ["MAILTIX_DATA"]) / "oauth" / "m365.json").exists()

    oauth_dovecot.deliver(user, simple_message(subject="over XOAUTH2"))
    first = cli("run")
    assert first.exit_code == 0, first.stdout
    assert count("SELECT COUNT(*) FROM messages") == 1
    test = json.loads(cli("account", "test", "m365", "--json").stdout)
    steps = {s["name"]: s for s in test["steps"]}
    assert test["ok"] and steps["IMAP login"]["detail"] == f"{user} via XOAUTH2"
    assert "mail.read mail.send" in steps["IMAP OAuth2 token"]["detail"]
    assert "expires 20" in steps["IMAP OAuth2 token"]["detail"]

    write_config(cfgdir, config.replace('scopes = [', 'mechanism = "oauthbearer"\nscopes = ['))
    oauth_dovecot.deliver(user, simple_message(subject="over OAUTHBEARER"))
    second = cli("run")
    assert second.exit_code == 0, second.stdout
    assert count("SELECT COUNT(*) FROM messages") == 2
    test = json.loads(cli("account", "test", "m365", "--json").stdout)
    assert [s["detail"] for s in test["steps"] if s["name"] == "IMAP login"] == [
        f"{user} via OAUTHBEARER"]
    human = cli("account", "test", "m365")
    shown = cli("account", "show", "m365", "--json")
    for output in (human, shown, first, second):
        assert token["access_token"] not in output.stdout + output.stderr
        assert token["refresh_token"] not in output.stdout + output.stderr
    # Secrets scan: with a keyring the tokens are on no file on disk (config, data, logs).
    for path in Path(os.environ["MAILTIX_DATA"]).parent.rglob("*"):
        if path.is_file():
            assert token["refresh_token"].encode() not in path.read_bytes(), path


def test_pop3_fetch_and_smtp_send_with_the_token(cli, cfgdir, oauth_server, oauth_dovecot,
                                                 bearer_smtp, keyring_data):
    user = oauth_dovecot.new_user("op")[0]
    write_config(cfgdir, oauth_account(
        "gw", user, oauth_server.url, fetch=f'protocol = "pop3"\nport = {oauth_dovecot.pop3}',
        smtp=f"port = {bearer_smtp.port}"))
    (cfgdir / "templates").mkdir()
    (cfgdir / "templates" / "hello.txt").write_text("subject: Hello\n---\nHello there.\n")
    with approving(oauth_server, user):
        assert cli("account", "login", "gw").exit_code == 0
    oauth_dovecot.deliver(user, simple_message(subject="over POP3"))
    assert cli("run").exit_code == 0
    assert count("SELECT COUNT(*) FROM messages") == 1
    before = len(bearer_smtp.messages)
    sent = cli("send", "--to", "customer@example.org", "--template", "hello", "--from", "gw")
    assert sent.exit_code == 0, sent.stdout
    assert len(bearer_smtp.messages) == before + 1
    assert bearer_smtp.handler.logins[-1] == ("XOAUTH2", user)
    test = json.loads(cli("account", "test", "gw", "--json").stdout)
    details = {s["name"]: s["detail"] for s in test["steps"]}
    assert test["ok"], test
    assert details["POP3 login"] == f"{user} via XOAUTH2"
    assert details["SMTP AUTH"] == f"{user} via XOAUTH2"


def test_smtp_server_offering_only_oauthbearer(cli, cfgdir, oauth_server, keyring_data):
    user = "bearer-only"
    smtp = BearerSMTPServer(introspect(oauth_server), mechanisms=("OAUTHBEARER",)).start()
    try:
        write_config(cfgdir, oauth_account("ob", user, oauth_server.url,
                                           smtp=f"port = {smtp.port}"))
        with approving(oauth_server, user):
            assert cli("account", "login", "ob").exit_code == 0
        test = json.loads(cli("account", "test", "ob", "--json").stdout)
        assert test["ok"], test
        assert {s["name"]: s["detail"] for s in test["steps"]}["SMTP AUTH"] == \
            f"{user} via OAUTHBEARER"
        assert smtp.handler.logins == [("OAUTHBEARER", user)]
    finally:
        smtp.stop()


def test_expired_token_is_refreshed_silently_and_the_rotated_one_kept(
        cli, cfgdir, oauth_server, oauth_dovecot, keyring_data):
    user = oauth_dovecot.new_user("ox")[0]
    write_config(cfgdir, oauth_account("exp", user, oauth_server.url,
                                       fetch=f"port = {oauth_dovecot.imap}"))
    with approving(oauth_server, user):
        assert cli("account", "login", "exp").exit_code == 0
    old = stored_token(keyring_data, "exp")
    # An hour later: the server no longer accepts the access token, and mailtix knows it.
    oauth_server.expire_access_tokens()
    keyring_data[("mailtix", "exp:oauth")] = json.dumps({**old, "expires_at": time.time() - 1})
    refreshes = oauth_server.refreshes
    oauth_dovecot.deliver(user, simple_message(subject="after the refresh"))
    result = cli("run")
    assert result.exit_code == 0, result.stdout
    assert count("SELECT COUNT(*) FROM messages") == 1
    assert oauth_server.refreshes == refreshes + 1
    new = stored_token(keyring_data, "exp")
    assert new["refresh_token"] != old["refresh_token"]
    assert new["refresh_token"] == oauth_server.live_refresh_token(user)
    assert new["expires_at"] > time.time() + 600


def test_token_refused_before_its_expiry_is_refreshed_once_mid_run(
        cli, cfgdir, oauth_server, oauth_dovecot, bearer_smtp, keyring_data):
    """The server drops the access token while mailtix still holds it for valid (clock skew,
    early expiry at the provider): each login gets one retry with a refreshed token, and the
    run fetches over IMAP and then sends over SMTP without a word to the user."""
    user = oauth_dovecot.new_user("os")[0]
    write_config(cfgdir, oauth_account("skew", user, oauth_server.url,
                                       fetch=f"port = {oauth_dovecot.imap}",
                                       smtp=f"port = {bearer_smtp.port}"))
    (cfgdir / "templates").mkdir()
    (cfgdir / "templates" / "hi.txt").write_text("subject: Hi\n---\nHi.\n")
    with approving(oauth_server, user):
        assert cli("account", "login", "skew").exit_code == 0
    queued = cli("send", "--to", "c@example.org", "--template", "hi", "--from", "skew", "--queue")
    assert queued.exit_code == 0, queued.stdout
    oauth_dovecot.deliver(user, simple_message(subject="fetched after a retry"))
    oauth_server.expire_access_tokens()
    refreshes, sent = oauth_server.refreshes, len(bearer_smtp.messages)
    result = cli("run")
    assert result.exit_code == 0, result.stdout
    assert count("SELECT COUNT(*) FROM messages") == 1
    assert len(bearer_smtp.messages) == sent + 1
    assert oauth_server.refreshes == refreshes + 1  # the SMTP login used the refreshed token
    assert stored_token(keyring_data, "skew")["refresh_token"] == \
        oauth_server.live_refresh_token(user)


CONCURRENT = """
import sys, time
from pathlib import Path
from mailtix.config import load
from mailtix.auth import access_token
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.005)
oauth = load().account("twin").smtp.oauth
print(access_token(oauth)[:4] and "ok")
"""


def test_two_processes_refreshing_at_once_keep_the_newest_refresh_token(
        cli, cfgdir, tmp_path, monkeypatch):
    """A cron run and a `send` refresh at the same moment: with rotation, whoever refreshes
    second with the already-spent refresh token would kill the grant (reuse detection)."""
    import keyring
    from keyring.backends import fail

    # Tokens short-lived enough that every access refreshes, and a slow token endpoint so
    # that the two refreshes overlap.
    server = OAuthServer(access_lifetime=60, token_delay=0.3).start()
    try:
        user = "twin-user"
        write_config(cfgdir, oauth_account("twin", user, server.url, smtp="port = 2525"))
        keyring.set_keyring(fail.Keyring())  # a headless server: tokens go to the 0600 file
        with approving(server, user):
            login = cli("account", "login", "twin")
        assert "tokens stored in the file" in login.stdout, login.stdout
        token_file = Path(os.environ["MAILTIX_DATA"]) / "oauth" / "twin.json"
        assert token_file.stat().st_mode & 0o777 == 0o600
        go = tmp_path / "go"
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
               "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
        import subprocess
        import sys

        procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(go)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(2)]
        time.sleep(0.5)  # both are waiting for the signal (imports done)
        go.touch()
        outputs = [p.communicate(timeout=60) for p in procs]
        for proc, (out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err.decode()
            assert out.decode().strip() == "ok"
        assert server.reuse_detected == 0
        assert server.refreshes == 2
        saved = json.loads(token_file.read_text())
        assert saved["refresh_token"] == server.live_refresh_token(user)
        # Secrets scan: the tokens are in the one 0600 file and nowhere else on disk.
        for path in tmp_path.rglob("*"):
            if path.is_file() and path != token_file:
                data = path.read_bytes()
                assert saved["refresh_token"].encode() not in data, path
                assert saved["access_token"].encode() not in data, path
    finally:
        server.stop()


def test_revoked_grant_fails_that_account_with_the_login_hint_others_go_on(
        cli, cfgdir, oauth_server, oauth_dovecot, dovecot, mailbox_account, keyring_data):
    plain_user, _ = mailbox_account("plain")
    dovecot.deliver(plain_user, simple_message(subject="for the password account"))
    user = oauth_dovecot.new_user("or")[0]
    config = (cfgdir / "config.toml").read_text() + oauth_account(
        "revoked", user, oauth_server.url, fetch=f"port = {oauth_dovecot.imap}")
    write_config(cfgdir, config)
    with approving(oauth_server, user):
        assert cli("account", "login", "revoked").exit_code == 0
    oauth_dovecot.deliver(user, simple_message(subject="never fetched"))
    oauth_server.revoke(user)
    old = stored_token(keyring_data, "revoked")
    keyring_data[("mailtix", "revoked:oauth")] = json.dumps({**old, "expires_at": 0})

    result = cli("run", "--json")
    report = json.loads(result.stdout)
    accounts = {a["account"]: a for a in report["accounts"]}
    assert accounts["plain"]["fetched"] == 1 and not accounts["plain"]["error"]
    assert accounts["revoked"]["code"] == ExitCode.AUTH
    assert "revoked or has expired" in accounts["revoked"]["error"]
    assert "run `mailtix account login revoked`" in accounts["revoked"]["hint"]
    assert result.exit_code == ExitCode.PARTIAL  # one account failed, another worked
    status = json.dumps(json.loads(cli("status", "--json").stdout))
    assert "run `mailtix account login revoked`" in status
    alone = cli("run", "--account", "revoked")
    assert alone.exit_code == ExitCode.AUTH
    assert "mailtix account login revoked" in alone.stdout + alone.stderr
    test = cli("account", "test", "revoked")
    assert test.exit_code == ExitCode.AUTH
    assert "mailtix account login revoked" in test.stdout

    # A token the server stopped accepting before it expired: the login itself is refused.
    keyring_data[("mailtix", "revoked:oauth")] = json.dumps(old)
    refused = cli("run", "--account", "revoked")
    assert refused.exit_code == ExitCode.AUTH
    assert "revoked or has expired" in refused.stdout + refused.stderr
    assert "mailtix account login revoked" in refused.stdout + refused.stderr

    with approving(oauth_server, user):  # signing in again repairs it
        assert cli("account", "login", "revoked").exit_code == 0
    assert cli("run", "--account", "revoked").exit_code == 0
    assert count("SELECT COUNT(*) FROM messages") == 2


def test_browser_login_with_pkce_and_loopback_redirect(cli, cfgdir, oauth_server, oauth_dovecot,
                                                       keyring_data, monkeypatch):
    import webbrowser

    user = oauth_dovecot.new_user("ob")[0]
    write_config(cfgdir, oauth_account("web", user, oauth_server.url,
                                       fetch=f"port = {oauth_dovecot.imap}"))
    oauth_server.browser_user = user
    opened: list[str] = []

    def browser(url: str) -> bool:  # the user's browser: follows the redirect to loopback
        opened.append(url)
        threading.Thread(target=lambda: urllib.request.urlopen(url, timeout=10).read(),
                         daemon=True).start()
        return True

    monkeypatch.setattr(webbrowser, "open", browser)
    login = cli("account", "login", "web", "--browser")
    assert login.exit_code == 0, login.stdout
    assert "code_challenge_method=S256" in opened[0] and "redirect_uri=http" in opened[0]
    assert stored_token(keyring_data, "web")["refresh_token"]
    assert cli("account", "test", "web").exit_code == 0


def test_account_add_with_oauth2_signs_in_right_away(cli, cfgdir, oauth_server, oauth_dovecot,
                                                     keyring_data):
    user = oauth_dovecot.new_user("oadd")[0]
    write_config(cfgdir, "")
    with approving(oauth_server, user):
        added = cli("account", "add", "new365", "--email", f"{user}@example.com",
                    "--host", "127.0.0.1", "--port", str(oauth_dovecot.imap), "--tls", "none",
                    "--user", user, "--auth", "oauth2", "--provider", "custom",
                    "--client-id", CLIENT_ID, "--token-url", f"{oauth_server.url}/token",
                    "--device-url", f"{oauth_server.url}/device", "--scope", "mail.read")
    assert added.exit_code == 0, added.stdout
    assert "enter the code" in added.stdout
    saved = (cfgdir / "accounts.d" / "new365.toml").read_text()
    token = stored_token(keyring_data, "new365")
    assert 'auth = "oauth2"' in saved and token["scope"] == "mail.read"
    assert token["access_token"] not in saved and token["refresh_token"] not in saved
    shown = cli("account", "show", "new365", "--json")
    assert json.loads(shown.stdout)["password"]["fetch"] == "OAuth2 token (keyring)"
    assert cli("account", "test", "new365").exit_code == 0
    assert cli("account", "remove", "new365", "--yes").exit_code == 0
    assert ("mailtix", "new365:oauth") not in keyring_data


def test_login_and_add_refuse_what_does_not_fit(cli, cfgdir, dovecot, mailbox_account):
    mailbox_account("pw")
    result = cli("account", "login", "pw")
    assert result.exit_code == ExitCode.USAGE
    assert "does not use OAuth2" in result.stderr
    mixed = cli("account", "add", "x", "--email", "x@example.com", "--host", "127.0.0.1",
                "--auth", "oauth2", "--provider", "microsoft", "--client-id", "id",
                "--password-stdin", input="secret\n")
    assert mixed.exit_code == ExitCode.USAGE and "no password" in mixed.stderr
    assert not (cfgdir / "accounts.d" / "x.toml").exists()
    incomplete = cli("account", "add", "y", "--email", "y@example.com", "--auth", "oauth2")
    assert incomplete.exit_code == ExitCode.USAGE and "--client-id" in incomplete.stderr


def test_config_checks_for_oauth(cli, cfgdir, oauth_dovecot):
    write_config(cfgdir, '[accounts.a]\nemail = "a@example.com"\nauth = "oauth2"\n')
    result = cli("config", "check")
    assert result.exit_code == ExitCode.CONFIG
    assert "accounts.a.oauth" in result.stdout + result.stderr
    write_config(cfgdir, '[accounts.a]\nemail = "a@example.com"\nauth = "oauth2"\n'
                         '[accounts.a.oauth]\nprovider = "custom"\nclient_id = "x"\n'
                         'token_url = "http://login.example.com/token"\n')
    result = cli("config", "check")
    assert result.exit_code == ExitCode.CONFIG
    assert "must be an https:// URL" in result.stdout + result.stderr
    write_config(cfgdir, '[accounts.a]\nemail = "a@example.com"\nauth = "oauth2"\n'
                         '[accounts.a.oauth]\nprovider = "microsoft"\nclient_id = "x"\n'
                         f'[accounts.a.fetch]\nhost = "127.0.0.1"\nport = {oauth_dovecot.imap}\n'
                         'tls = "none"\n')
    assert cli("config", "check").exit_code == 0
    no_token = cli("run")
    assert no_token.exit_code == ExitCode.AUTH
    assert "mailtix account login a" in no_token.stdout + no_token.stderr


def test_non_ascii_password_without_plain_fails_that_account_alone(
        cli, cfgdir, oauth_dovecot, dovecot, mailbox_account, monkeypatch):
    """Issue 16 item 2, the other half: a server that offers no PLAIN cannot take a UTF-8
    password; that account fails with a clear message and the next one is fetched."""
    plain_user, _ = mailbox_account("ok")
    dovecot.deliver(plain_user, simple_message(subject="still fetched"))
    config = (cfgdir / "config.toml").read_text() + (
        '[accounts.umlaut]\nemail = "u@example.com"\n[accounts.umlaut.fetch]\n'
        f'host = "127.0.0.1"\nport = {oauth_dovecot.imap}\ntls = "none"\nuser = "u"\n')
    write_config(cfgdir, config)
    monkeypatch.setenv("MAILTIX_PASSWORD_UMLAUT", "pässwort")
    result = cli("run", "--json")
    accounts = {a["account"]: a for a in json.loads(result.stdout)["accounts"]}
    assert accounts["ok"]["fetched"] == 1
    assert accounts["umlaut"]["code"] == ExitCode.AUTH
    assert "non-ASCII" in accounts["umlaut"]["error"]
    assert "pässwort" not in result.stdout


def test_provider_presets_and_sasl_strings(tmp_path):
    from mailtix.auth import sasl
    from mailtix.auth.providers import endpoints
    from mailtix.config.model import OAuth

    ms = endpoints(OAuth("a", "microsoft", "id", tmp_path, tenant="contoso.example"))
    assert ms.device_url == \
        "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/devicecode"
    assert "offline_access" in ms.scopes  # else Microsoft issues no refresh token
    assert "https://outlook.office.com/SMTP.Send" in ms.scopes
    google = endpoints(OAuth("g", "google", "id", tmp_path, scopes=("x",)))
    assert google.token_url == "https://oauth2.googleapis.com/token" and google.scopes == ("x",)
    # RFC 7628: ',' and '=' in the user name are escaped in the GS2 header.
    assert sasl.initial_response("OAUTHBEARER", "a,b=c@example.com", "T", "h", 993) == \
        b"n,a=a=2Cb=3Dc@example.com,\x01host=h\x01port=993\x01auth=Bearer T\x01\x01"
    assert sasl.initial_response("XOAUTH2", "u@example.com", "T", "h", 993) == \
        b"user=u@example.com\x01auth=Bearer T\x01\x01"
    assert sasl.choose(["PLAIN", "OAUTHBEARER"], "auto", "h") == "OAUTHBEARER"
