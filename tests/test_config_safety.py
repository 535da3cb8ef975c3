"""Configuration others could change is refused (issue 16 item 8); addresses compared as mail
systems do (issue 16 item 11, issue 15 item 11's duplicate check)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import write_config

from mailtix.errors import ExitCode

NOBODY = 65534  # a non-root user that owns none of the test's files
ACCOUNT = '[accounts.support]\nemail = "support@example.com"\n'


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_config_writable_by_others_is_refused(mode, cfgdir, cli):
    path = write_config(cfgdir, ACCOUNT)
    path.chmod(mode)
    for args in (("config", "check"), ("run", "--quiet"), ("account", "list")):
        result = cli(*args)
        assert result.exit_code == ExitCode.CONFIG, (args, result.stdout, result.stderr)
        assert str(path) in result.stderr and f"chmod 600 {path}" in result.stderr
        assert "Traceback" not in result.stderr


def test_accounts_d_file_owned_by_another_user_is_refused(cfgdir, cli, tmp_path):
    write_config(cfgdir, "")
    folder = cfgdir / "accounts.d"
    folder.mkdir(mode=0o700)
    # A password_cmd another user planted would run as whoever runs mailtix (root here).
    marker = tmp_path / "ran"
    planted = folder / "evil.toml"
    planted.write_text(f'email = "e@example.com"\n[fetch]\nhost = "127.0.0.1"\ntls = "none"\n'
                       f'password_cmd = "touch {marker}"\n')
    planted.chmod(0o600)
    os.chown(planted, NOBODY, NOBODY)
    result = cli("run")
    assert result.exit_code == ExitCode.CONFIG
    assert str(planted) in result.stderr and "chown" in result.stderr
    assert not marker.exists()
    os.chown(planted, 0, 0)
    planted.chmod(0o644)
    folder.chmod(0o777)
    result = cli("config", "check")
    assert result.exit_code == ExitCode.CONFIG
    assert f"chmod 700 {folder}" in result.stderr


def test_data_dir_open_to_others_is_refused(cfgdir, cli):
    write_config(cfgdir, ACCOUNT)
    data = Path(os.environ["MAILTIX_DATA"])
    data.mkdir(mode=0o700)
    data.chmod(0o777)
    result = cli("ticket", "list")
    assert result.exit_code == ExitCode.CONFIG and f"chmod 700 {data}" in result.stderr
    data.chmod(0o700)
    os.chown(data, NOBODY, NOBODY)
    result = cli("run")
    assert result.exit_code == ExitCode.CONFIG and str(data) in result.stderr
    assert "nobody" in result.stderr or str(NOBODY) in result.stderr
    os.chown(data, 0, 0)
    assert cli("ticket", "list").exit_code == 0


def test_private_and_root_owned_files_pass(cfgdir, cli):
    path = write_config(cfgdir, ACCOUNT)
    for mode in (0o600, 0o644, 0o400):
        path.chmod(mode)
        assert cli("config", "check").exit_code == 0, mode


ADDRESSES = [
    ("alice@example.org", "Alice@EXAMPLE.ORG"),
    ("alice@example.org", "alice@Example.Org"),
    ("Info@Example.com", "info@example.com"),
]


@pytest.mark.parametrize(("one", "two"), ADDRESSES)
def test_two_accounts_with_one_address_are_refused(one, two, cfgdir, cli):
    write_config(cfgdir, f'[accounts.a]\nemail = "{one}"\n[accounts.b]\nemail = "{two}"\n')
    result = cli("config", "check")
    assert result.exit_code == ExitCode.CONFIG
    assert "accounts.b.email" in result.stderr and "'a'" in result.stderr


def test_case_sensitive_local_part_is_a_choice(cfgdir, cli):
    write_config(cfgdir, '[general]\ncase_sensitive_local_part = true\n'
                         '[accounts.a]\nemail = "alice@example.org"\n'
                         '[accounts.b]\nemail = "Alice@example.org"\n'
                         '[accounts.c]\nemail = "alice@EXAMPLE.org"\n')
    result = cli("config", "check")
    assert result.exit_code == ExitCode.CONFIG
    assert "accounts.c.email" in result.stderr and "accounts.b.email" not in result.stderr


def test_account_add_with_an_existing_address_is_refused(cfgdir, cli):
    write_config(cfgdir, '[accounts.a]\nemail = "alice@example.org"\n')
    result = cli("account", "add", "b", "--email", "ALICE@example.org")
    assert result.exit_code == ExitCode.CONFIG and "'a'" in result.stderr
    assert not (cfgdir / "accounts.d" / "b.toml").exists()
