"""Loose ends left by the other helpers: one address parser for compose and manifests, the
autoresponder on a cut-off header block, sendmail's environment, and more."""

from __future__ import annotations

import pytest

# --- one address parser (compose, manifest) ---------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ('"Müller, Jürgen" <j@x.example>', ["j@x.example"]),
    ("Müller, Jürgen <j@x.example>", ["j@x.example"]),
    ("=?utf-8?q?victim=40example.org?= <real@sender.example>", ["real@sender.example"]),
    ("a@x.example; b@y.example", ["a@x.example", "b@y.example"]),
])
def test_compose_reads_address_lists_like_the_parser(value, expected):
    from mailtix.mail.compose import addresses, bare

    assert [bare(a) for a in addresses([value])] == expected


def test_manifest_keeps_an_unquoted_last_first_name_as_one_recipient():
    from mailtix.manifest import split_addresses

    assert split_addresses("Müller, Jürgen <j@x.example>, b@y.example") == [
        "Müller, Jürgen <j@x.example>", "b@y.example"]


# --- the autoresponder on a header block the parser could not read whole ----------------------

AUTO = "[accounts.support.autoresponder]\nenabled = true\n"
FUTURE = "Mon, 23 Nov 2099 10:00:00 +0000"


def _overlong_head(tail: str) -> bytes:
    """120 KB of fields before `tail`: past the parser's header cap, so `tail` is dropped."""
    filler = "".join(f"X-Filler-{i}: {'x' * 900}\r\n" for i in range(130))
    return (f"From: robot@vendor.example\r\nTo: support@example.com\r\nSubject: status\r\n"
            f"Date: {FUTURE}\r\nMessage-ID: <long-head@vendor.example>\r\n{filler}{tail}"
            "\r\nAll systems go.\r\n").encode()


def test_no_autoresponse_when_the_header_block_was_cut_off(
        mailbox_account, dovecot, smtp, cli, tmp_path):
    import json

    user, _ = mailbox_account(extra=AUTO + f'[accounts.support.smtp]\nhost = "127.0.0.1"\n'
                                           f'port = {smtp.port}\ntls = "none"\n')
    raw = _overlong_head("Auto-Submitted: auto-generated\r\nList-Id: <status.vendor.example>\r\n")
    eml = tmp_path / "long.eml"
    eml.write_bytes(raw)
    explained = json.loads(cli("explain", str(eml), "--account", "support", "--json").stdout)
    assert explained["autoresponse"].startswith("no: ") and "header" in explained["autoresponse"]
    dovecot.deliver(user, raw)
    assert cli("run").exit_code == 0
    assert smtp.messages == [], "a robot whose Auto-Submitted was cut off is not answered"


# --- the sendmail child gets no passwords ------------------------------------------------------

def test_sendmail_child_does_not_inherit_passwords(dovecot, mailbox_account, cli, tmp_path,
                                                   monkeypatch):
    from helpers import only_ticket
    from servers import simple_message

    spool = tmp_path / "spool"
    spool.mkdir()
    fake = tmp_path / "sendmail"
    fake.write_text(f'#!/bin/sh\nenv > {spool}/env\ncat > {spool}/message\n')
    fake.chmod(0o755)
    user, password = mailbox_account(extra=f'[accounts.support.smtp]\nprotocol = "sendmail"\n'
                                           f'sendmail_path = "{fake}"\n')
    monkeypatch.setenv("MAILTIX_PASSWORD_SUPPORT_SMTP", "smtp-secret-value")
    dovecot.deliver(user, simple_message(subject="via sendmail", sender="jane@cust.example"))
    cli("run")
    assert cli("ticket", "reply", only_ticket(cli), input="hello\n").exit_code == 0
    env = (spool / "env").read_text()
    assert "PATH=" in env
    assert "MAILTIX_PASSWORD" not in env
    assert password not in env and "smtp-secret-value" not in env
