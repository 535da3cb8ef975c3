"""`mailtix account add` against Dovecot: the account is tested (and baselined) before
anything is written; a failure leaves no file, keyring entry or fetch state (issue 15 item 11)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers import count
from servers import free_port, simple_message

from mailtix.errors import ExitCode


def _add(cli, dovecot, user: str, *extra: str, port: int | None = None, password: str = ""):
    return cli("account", "add", "support", "--email", f"{user}@example.com", "--host",
               "127.0.0.1", "--port", str(port or dovecot.imap), "--tls", "none", "--user", user,
               "--password-stdin", *extra, input=password + "\n")


def _nothing_saved(cfgdir: Path, keyring_data) -> None:
    assert not (cfgdir / "accounts.d" / "support.toml").exists()
    assert not [k for k in keyring_data if "support" in k[1]]
    store = Path(os.environ["MAILTIX_DATA"]) / "mailtix.sqlite3"
    if store.exists():
        assert count("SELECT COUNT(*) FROM folder_state WHERE account = 'support'") == 0


def test_wrong_password_with_baseline_saves_nothing(dovecot, cfgdir, cli, keyring_data):
    user, _ = dovecot.new_user()
    dovecot.deliver(user, simple_message(subject="old mail"))
    result = _add(cli, dovecot, user, "--baseline", password="wrong")
    assert result.exit_code == ExitCode.AUTH, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "not saved" in result.stderr and "--no-test" in result.stderr
    _nothing_saved(cfgdir, keyring_data)
    assert cli("account", "list", "--json").stdout.strip() == "[]"


def test_unreachable_server_saves_nothing_unless_no_test(dovecot, cfgdir, cli, keyring_data):
    user, password = dovecot.new_user()
    port = free_port()
    result = _add(cli, dovecot, user, port=port, password=password)
    assert result.exit_code == ExitCode.NETWORK, result.stdout + result.stderr
    _nothing_saved(cfgdir, keyring_data)
    untested = _add(cli, dovecot, user, "--no-test", port=port, password=password)
    assert untested.exit_code == 0, untested.stderr
    assert (cfgdir / "accounts.d" / "support.toml").exists()


def test_failing_baseline_saves_nothing(dovecot, cfgdir, cli, keyring_data):
    """--no-test skips the test, not the baseline: a baseline that fails still saves nothing."""
    user, _ = dovecot.new_user()
    result = _add(cli, dovecot, user, "--no-test", "--baseline", password="wrong")
    assert result.exit_code == ExitCode.AUTH, result.stdout + result.stderr
    assert "baseline" in result.stderr
    _nothing_saved(cfgdir, keyring_data)


def test_tested_and_baselined_account_imports_no_old_mail(dovecot, cfgdir, cli, keyring_data):
    user, password = dovecot.new_user()
    for i in range(2):
        dovecot.deliver(user, simple_message(subject=f"old {i}"))
    result = _add(cli, dovecot, user, "--baseline", "--json", password=password)
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["tested"] is True and "2 message(s)" in info["baseline"]
    assert keyring_data[("mailtix", "support")] == password
    dovecot.deliver(user, simple_message(subject="new"))
    run = json.loads(cli("run", "--json").stdout)
    assert run["accounts"][0]["fetched"] == 1


def test_exists_already_points_to_edit_and_baseline(dovecot, cfgdir, cli):
    user, password = dovecot.new_user()
    assert _add(cli, dovecot, user, password=password).exit_code == 0
    again = _add(cli, dovecot, user, "--baseline", password=password)
    assert again.exit_code == ExitCode.USAGE
    assert "exists already" in again.stderr
    assert "mailtix account edit support" in again.stderr
    assert "mailtix account baseline support" in again.stderr
