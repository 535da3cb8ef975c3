"""`mailtix account …` through the CLI: CRUD, secrets kept out of files and output."""

from __future__ import annotations

import json
import os
import tomllib

import pytest
from conftest import write_config

from mailtix.errors import ExitCode

SECRET = "s3cr3t-Pa55word!"


def add(cli, name="support", *extra, input=SECRET + "\n"):
    return cli("account", "add", name, "--email", f"{name}@example.com", "--host",
               "imap.example.com", "--smtp-host", "smtp.example.com", "--password-stdin",
               "--no-test", *extra, input=input)


def test_add_list_show(cli, cfgdir, keyring_data):
    result = add(cli, "support", "--name", "Example Support", "--queue", "")
    assert result.exit_code == 0, result.stderr
    file = cfgdir / "accounts.d" / "support.toml"
    data = tomllib.loads(file.read_text())
    assert data["email"] == "support@example.com" and data["fetch"]["host"] == "imap.example.com"
    assert keyring_data[("mailtix", "support")] == SECRET
    assert oct(file.stat().st_mode & 0o777) == "0o600"
    listed = json.loads(cli("account", "list", "--json").stdout)
    assert listed[0]["name"] == "support" and listed[0]["active"] is True
    shown = cli("account", "show", "support", "--json")
    info = json.loads(shown.stdout)
    assert info["password"]["fetch"] == "keyring"
    assert info["password"]["smtp"] == "keyring (fetch password)"
    table = cli("account", "list")
    assert "support" in table.stdout and "imap://imap.example.com:993" in table.stdout


def test_password_never_in_files_or_output(cli, cfgdir, tmp_path):
    outputs = [add(cli, "support"), cli("account", "list", "--json"),
               cli("account", "show", "support"), cli("account", "show", "support", "--json"),
               cli("config", "check", "--json")]
    for result in outputs:
        assert SECRET not in result.stdout + result.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_add_rejects_bad_input_and_writes_nothing(cli, cfgdir):
    result = cli("account", "add", "x", "--email", "not-an-address", "--host", "h",
                 "--port", "0")
    assert result.exit_code == ExitCode.CONFIG
    assert "not an e-mail address" in result.stderr and "out of range" in result.stderr
    assert not (cfgdir / "accounts.d" / "x.toml").exists()
    assert cli("account", "add", "bad name", "--email", "a@b.c").exit_code == ExitCode.USAGE


def test_add_twice_is_refused(cli):
    assert add(cli).exit_code == 0
    again = add(cli)
    assert again.exit_code == ExitCode.USAGE and "exists already" in again.stderr


def test_without_keyring_the_error_explains_password_cmd(cli, cfgdir):
    import keyring
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())
    result = add(cli)
    assert result.exit_code == ExitCode.AUTH
    assert "password_cmd" in result.stderr
    assert not (cfgdir / "accounts.d" / "support.toml").exists()
    ok = cli("account", "add", "support", "--email", "s@example.com", "--host", "imap.x",
             "--password-cmd", "cat /etc/mailtix/pw", "--no-test")
    assert ok.exit_code == 0


def test_edit_validates_before_writing(cli, cfgdir):
    add(cli)
    assert cli("account", "edit", "support", "--set", "fetch.port=1993",
               "--set", 'post_fetch="move"', "--set", "move_to=Archive").exit_code == 0
    data = tomllib.loads((cfgdir / "accounts.d" / "support.toml").read_text())
    assert data["fetch"]["port"] == 1993 and data["move_to"] == "Archive"
    before = (cfgdir / "accounts.d" / "support.toml").read_text()
    bad = cli("account", "edit", "support", "--set", "fetch.tls=bogus")
    assert bad.exit_code == ExitCode.CONFIG
    assert (cfgdir / "accounts.d" / "support.toml").read_text() == before
    assert cli("account", "edit", "support", "--set", "password=x").exit_code == ExitCode.USAGE


def test_disable_enable_remove(cli, cfgdir, keyring_data):
    add(cli)
    assert cli("account", "disable", "support").exit_code == 0
    assert json.loads(cli("account", "list", "--json").stdout)[0]["active"] is False
    assert cli("account", "enable", "support").exit_code == 0
    refused = cli("account", "remove", "support")
    assert refused.exit_code == ExitCode.USAGE and "--yes" in refused.stderr
    assert cli("account", "remove", "support", "--yes").exit_code == 0
    assert not (cfgdir / "accounts.d" / "support.toml").exists()
    assert ("mailtix", "support") not in keyring_data


def test_hand_written_accounts_are_not_rewritten(cli, cfgdir):
    write_config(cfgdir, '[accounts.manual]\nemail = "m@example.com"\n')
    result = cli("account", "edit", "manual", "--set", "active=false")
    assert result.exit_code == ExitCode.USAGE and "by hand" in result.stderr
    assert cli("account", "remove", "manual", "--yes").exit_code == ExitCode.USAGE


def test_unknown_account(cli):
    result = cli("account", "show", "ghost")
    assert result.exit_code == ExitCode.USAGE and "no account named 'ghost'" in result.stderr


@pytest.mark.parametrize("source", ["password_cmd", "env"])
def test_password_sources(source, cfgdir, monkeypatch):
    from mailtix import secrets
    from mailtix.config import load

    cmd = f'\npassword_cmd = "printf {SECRET}"' if source == "password_cmd" else ""
    write_config(cfgdir, f'[accounts.a]\nemail = "a@example.com"\n[accounts.a.fetch]\n'
                         f'host = "h"{cmd}\n')
    if source == "env":
        monkeypatch.setenv("MAILTIX_PASSWORD_A", SECRET)
    acct = load().accounts["a"]
    assert secrets.lookup(acct, "fetch", acct.fetch) == SECRET


def test_failing_password_cmd_does_not_leak_stdout(cfgdir):
    from mailtix import secrets
    from mailtix.config import load
    from mailtix.errors import SecretError

    write_config(cfgdir, '[accounts.a]\nemail = "a@example.com"\n[accounts.a.fetch]\n'
                         f'host = "h"\npassword_cmd = "echo {SECRET}; exit 3"\n')
    acct = load().accounts["a"]
    with pytest.raises(SecretError) as info:
        secrets.lookup(acct, "fetch", acct.fetch)
    assert "exit 3" in str(info.value) and SECRET not in str(info.value)


def test_run_remembers_that_there_is_no_keyring(tmp_path, monkeypatch):
    """Headless servers: the ~100 ms keyring probe is not repeated on every cron run, but a
    changed environment (here a D-Bus session appearing) asks the keyring again."""
    import keyring
    from keyring.backends import fail

    from mailtix import secrets

    keyring.set_keyring(fail.Keyring())
    secrets.remember_no_keyring_in(tmp_path)
    assert secrets._keyring() is None
    assert (tmp_path / secrets.NO_KEYRING_FILE).exists()

    def probe_again():
        raise AssertionError("the keyring was probed again")

    monkeypatch.setattr(keyring, "get_keyring", probe_again)
    assert secrets._keyring() is None  # answered from the file
    with pytest.raises(AssertionError):
        secrets.require_keyring()  # storing a password always asks the keyring itself

    original = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/0/bus-new")
    with pytest.raises(AssertionError):
        secrets._keyring()
    if original is None:
        monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS")
    else:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", original)
    assert secrets._known_absent()
    data = json.loads((tmp_path / secrets.NO_KEYRING_FILE).read_text())
    data["at"] -= secrets.NO_KEYRING_TTL + 1
    (tmp_path / secrets.NO_KEYRING_FILE).write_text(json.dumps(data))
    assert not secrets._known_absent()  # an old answer is not trusted
