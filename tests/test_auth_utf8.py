"""Passwords outside ASCII (issue 16 item 2): IMAP, POP3 and SMTP log in with UTF-8
(AUTHENTICATE / AUTH PLAIN, RFC 4616), and one such account never stops the others."""

from __future__ import annotations

import json
import uuid

from conftest import write_config
from helpers import count
from servers import SMTPServer, simple_message

from mailtix import secrets
from mailtix.errors import ExitCode


def _utf8_user(dovecot) -> tuple[str, str]:
    user = f"umlaut{uuid.uuid4().hex[:8]}"
    password = f"pässwort-€-{uuid.uuid4().hex[:6]}"
    dovecot.add_user(user, password)
    return user, password


def _account(name: str, user: str, protocol: str, port: int) -> str:
    return (f'[accounts.{name}]\nemail = "{user}@example.com"\n'
            f'[accounts.{name}.fetch]\nprotocol = "{protocol}"\nhost = "127.0.0.1"\n'
            f'port = {port}\ntls = "none"\nuser = "{user}"\n')


def test_imap_utf8_password_fetches_and_others_go_on(cli, cfgdir, dovecot, monkeypatch):
    umlaut, secret = _utf8_user(dovecot)
    plain, plain_pw = dovecot.new_user()
    dovecot.deliver(umlaut, simple_message(subject="to the umlaut account"))
    dovecot.deliver(plain, simple_message(subject="to the plain account"))
    write_config(cfgdir, _account("aa", umlaut, "imap", dovecot.imap)
                 + _account("bb", plain, "imap", dovecot.imap))
    monkeypatch.setenv("MAILTIX_PASSWORD_AA", secret)
    monkeypatch.setenv("MAILTIX_PASSWORD_BB", plain_pw)
    result = cli("run", "--json")
    assert result.exit_code == 0, result.stdout
    assert count("SELECT COUNT(*) FROM messages") == 2
    assert secret not in result.stdout


def test_pop3_utf8_password(cli, cfgdir, dovecot, monkeypatch):
    umlaut, secret = _utf8_user(dovecot)
    dovecot.deliver(umlaut, simple_message(subject="over POP3"))
    write_config(cfgdir, _account("pp", umlaut, "pop3", dovecot.pop3))
    monkeypatch.setenv("MAILTIX_PASSWORD_PP", secret)
    result = cli("run")
    assert result.exit_code == 0, result.stdout
    assert count("SELECT COUNT(*) FROM messages") == 1


def test_smtp_utf8_password(cli, cfgdir, monkeypatch):
    secret = "gehéim-€-sender"
    server = SMTPServer(users={"sender@example.com": secret}).start()
    try:
        write_config(cfgdir, '[accounts.s]\nemail = "sender@example.com"\n'
                             f'[accounts.s.smtp]\nhost = "127.0.0.1"\nport = {server.port}\n'
                             'tls = "none"\n')
        monkeypatch.setenv("MAILTIX_PASSWORD_S_SMTP", secret)
        result = cli("account", "test", "s", "--json")
        assert result.exit_code == 0, result.stdout
        steps = {s["name"]: s for s in json.loads(result.stdout)["steps"]}
        assert steps["SMTP AUTH"]["ok"]
        monkeypatch.setenv("MAILTIX_PASSWORD_S_SMTP", secret + "x")
        secrets._cache.clear()  # passwords are looked up once per process
        wrong = cli("account", "test", "s")
        assert wrong.exit_code == ExitCode.AUTH, wrong.stdout
    finally:
        server.stop()
