"""`mailtix account test` against Dovecot and aiosmtpd: each step, each usual fault."""

from __future__ import annotations

import json

import pytest
from conftest import write_config
from helpers import server_uids

from mailtix.errors import ExitCode


def account(cfgdir, dovecot, tls, monkeypatch, *, fetch: str, smtp: str = "", user=None):
    if user is None:
        user, password = dovecot.new_user()
    else:
        password = dovecot.users[user]
    write_config(cfgdir, f'[accounts.t]\nemail = "{user}@example.com"\n'
                         f'[accounts.t.fetch]\nhost = "127.0.0.1"\nuser = "{user}"\n{fetch}\n'
                         + (f"[accounts.t.smtp]\n{smtp}\n" if smtp else ""))
    monkeypatch.setenv("MAILTIX_PASSWORD_T", password)
    return user


def steps(result) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads(result.stdout)["steps"]}


def first_failure(result) -> dict:
    return [s for s in json.loads(result.stdout)["steps"] if not s["ok"]][0]


def test_imaps_and_smtp_starttls_succeed(cli, cfgdir, dovecot, tls, smtp_auth, monkeypatch):
    account(cfgdir, dovecot, tls, monkeypatch,
            fetch=f'port = {dovecot.imaps}\ntls = "ssl"\nca_file = "{tls.ca_file}"',
            smtp=f'host = "127.0.0.1"\nport = {smtp_auth.port}\ntls = "starttls"\n'
                 f'user = "sender@example.com"\nca_file = "{tls.ca_file}"')
    monkeypatch.setenv("MAILTIX_PASSWORD_T_SMTP", "smtp-secret-1")
    result = cli("account", "test", "t", "--json")
    assert result.exit_code == 0, result.stdout
    got = steps(result)
    for name in ("IMAP DNS", "IMAP TCP connect", "IMAP TLS handshake", "IMAP login",
                 "IMAP select INBOX", "SMTP EHLO + STARTTLS", "SMTP AUTH"):
        assert got[name]["ok"], name
        assert got[name]["ms"] >= 0
    assert "verified" in got["IMAP TLS handshake"]["detail"]
    assert "smtp-secret-1" not in result.stdout
    human = cli("account", "test", "t")
    assert "IMAP login" in human.stdout and " ms" in human.stdout


def test_wrong_password(cli, cfgdir, dovecot, tls, monkeypatch):
    account(cfgdir, dovecot, tls, monkeypatch, fetch=f'port = {dovecot.imap}\ntls = "none"')
    monkeypatch.setenv("MAILTIX_PASSWORD_T", "definitely-wrong")
    result = cli("account", "test", "t")
    assert result.exit_code == ExitCode.AUTH
    assert "FAIL" in result.stdout and "refused" in result.stdout
    assert "check the user name" in result.stdout
    assert "definitely-wrong" not in result.stdout + result.stderr


def test_tls_on_a_plain_port_suggests_starttls(cli, cfgdir, dovecot, tls, monkeypatch):
    account(cfgdir, dovecot, tls, monkeypatch,
            fetch=f'port = {dovecot.imap}\ntls = "ssl"\nca_file = "{tls.ca_file}"')
    result = cli("account", "test", "t", "--json")
    assert result.exit_code == ExitCode.NETWORK
    failed = first_failure(result)
    assert failed["name"] == "IMAP TLS handshake"
    assert "plain text" in failed["detail"] and "starttls" in failed["hint"]


def test_plain_on_a_tls_port_suggests_ssl(cli, cfgdir, dovecot, tls, monkeypatch):
    account(cfgdir, dovecot, tls, monkeypatch,
            fetch=f'port = {dovecot.imaps}\ntls = "starttls"\ntimeout = 2')
    result = cli("account", "test", "t", "--json")
    assert result.exit_code == ExitCode.NETWORK
    failed = first_failure(result)
    assert failed["name"] == "IMAP greeting"
    assert "expects TLS" in failed["detail"] and 'tls = "ssl"' in failed["hint"]


def test_untrusted_certificate(cli, cfgdir, dovecot, tls, monkeypatch):
    account(cfgdir, dovecot, tls, monkeypatch, fetch=f'port = {dovecot.imaps}\ntls = "ssl"')
    result = cli("account", "test", "t", "--json")
    assert result.exit_code == ExitCode.NETWORK
    failed = first_failure(result)
    assert "not trusted" in failed["detail"] and "ca_file" in failed["hint"]


def test_connection_refused_and_missing_folder(cli, cfgdir, dovecot, tls, monkeypatch):
    from servers import free_port

    account(cfgdir, dovecot, tls, monkeypatch, fetch=f'port = {free_port()}\ntls = "none"')
    refused = cli("account", "test", "t")
    assert refused.exit_code == ExitCode.NETWORK and "connection refused" in refused.stdout
    account(cfgdir, dovecot, tls, monkeypatch,
            fetch=f'port = {dovecot.imap}\ntls = "none"\nfolders = ["INBOX", "Nope"]')
    missing = cli("account", "test", "t", "--json")
    failed = first_failure(missing)
    assert failed["name"] == "IMAP select Nope" and "does not exist" in failed["detail"]
    assert "INBOX" in failed["hint"]


def test_pop3_starttls(cli, cfgdir, dovecot, tls, monkeypatch):
    account(cfgdir, dovecot, tls, monkeypatch,
            fetch=f'protocol = "pop3"\nport = {dovecot.pop3}\ntls = "starttls"\n'
                  f'ca_file = "{tls.ca_file}"')
    result = cli("account", "test", "t", "--json")
    assert result.exit_code == 0, result.stdout
    assert steps(result)["POP3 STAT"]["detail"].startswith("0 messages")


def test_smtp_implicit_tls_wrong_password(cli, cfgdir, dovecot, tls, smtp_ssl, monkeypatch):
    account(cfgdir, dovecot, tls, monkeypatch,
            fetch=f'port = {dovecot.imap}\ntls = "none"',
            smtp=f'host = "127.0.0.1"\nport = {smtp_ssl.port}\ntls = "ssl"\n'
                 f'user = "sender@example.com"\nca_file = "{tls.ca_file}"')
    monkeypatch.setenv("MAILTIX_PASSWORD_T_SMTP", "nope")
    result = cli("account", "test", "t", "--only", "smtp", "--json")
    assert result.exit_code == ExitCode.AUTH, result.stdout
    assert not steps(result)["SMTP AUTH"]["ok"]


@pytest.fixture
def delivering_smtp(smtp_plain, dovecot):
    smtp_plain.handler.deliver_to = dovecot
    yield smtp_plain
    smtp_plain.handler.deliver_to = None
    smtp_plain.handler.mailbox_users.clear()


def test_roundtrip_probe_arrives_and_is_removed(cli, cfgdir, dovecot, tls, delivering_smtp,
                                                 monkeypatch):
    user = account(cfgdir, dovecot, tls, monkeypatch,
                   fetch=f'port = {dovecot.imap}\ntls = "none"',
                   smtp=f'host = "127.0.0.1"\nport = {delivering_smtp.port}\ntls = "none"')
    delivering_smtp.handler.mailbox_users[f"{user}@example.com"] = user
    result = cli("account", "test", "t", "--roundtrip", "--wait", "20", "--json")
    assert result.exit_code == 0, result.stdout
    got = steps(result)
    assert got["roundtrip probe arrived"]["ok"] and "probe removed" in \
        got["roundtrip probe arrived"]["detail"]
    assert server_uids(dovecot, user) == []
    raw = delivering_smtp.messages[-1]["raw"]
    assert b"Subject: mailtix probe" in raw and b"Auto-Submitted: auto-generated" in raw
