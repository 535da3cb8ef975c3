"""Man pages, systemd units, the event log, logging and exit codes of each failure class."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import write_config

from mailtix import manpage
from mailtix.config.schema import TOP, walk
from mailtix.errors import ExitCode

MAN = Path(__file__).parents[1] / "man"


def test_man_pages_are_current():
    assert (MAN / "mailtix.1").read_text() == manpage.mailtix_1(), "run `make man`"
    assert (MAN / "mailtix-config.5").read_text() == manpage.mailtix_config_5(), "run `make man`"


def test_every_command_and_option_has_a_man_entry():
    page = (MAN / "mailtix.1").read_text()
    for path, cmd in manpage.commands():
        assert f".SS {manpage.esc('mailtix ' + path)}" in page, path
        assert (cmd.help or "").strip(), f"mailtix {path} has no --help text"
        for param in cmd.params:
            for opt in param.opts:
                if opt.startswith("-"):
                    assert manpage.esc(opt) in page, f"{path} {opt}"
    for code in ExitCode:
        assert f"\\fB{int(code)}\\fR" in page, code


def test_every_config_key_has_a_man_entry():
    page = (MAN / "mailtix-config.5").read_text()
    for path, key in walk(TOP):
        assert f"\\fB{manpage.esc(path)}\\fR" in page, path
        assert key.doc, f"{path} has no description"


@pytest.mark.parametrize("page", ["mailtix.1", "mailtix-config.5"])
def test_man_pages_render_without_warnings(page):
    groff = shutil.which("groff")
    assert groff, "groff is part of Debian's base system (groff-base)"
    result = subprocess.run([groff, "-man", "-ww", "-z", str(MAN / page)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_systemd_units(cli):
    out = cli("systemd", "print", "--interval", "5min")
    assert out.exit_code == 0
    assert "Type=oneshot" in out.stdout and "run --quiet" in out.stdout
    assert "OnUnitActiveSec=5min" in out.stdout and "WantedBy=timers.target" in out.stdout
    assert "*/5 * * * *" in out.stdout, "the cron line honours --interval (tests/test_cron.py)"
    assert cli("systemd", "print", "--interval", "soon").exit_code == ExitCode.USAGE


def test_systemd_install_writes_user_units(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    result = cli("systemd", "install")
    assert result.exit_code == 0 and "systemctl --user daemon-reload" in result.stdout
    folder = tmp_path / "xdg" / "systemd" / "user"
    service = (folder / "mailtix.service").read_text()
    assert "--config /" in service and "Environment=MAILTIX_DATA=/" in service
    assert (folder / "mailtix.timer").exists()


def test_log_reads_the_event_log(cli, dovecot, mailbox_account):
    from servers import simple_message

    user, _ = mailbox_account()
    dovecot.deliver(user, simple_message(subject="logged"))
    cli("run")
    rows = json.loads(cli("log", "--json").stdout)
    assert any(r["kind"] == "created" and r["account"] == "support" for r in rows)
    assert json.loads(cli("log", "--kind", "nothing-like-this", "--json").stdout) == []


def test_exit_codes_per_failure_class(cli, cfgdir, tmp_path):
    assert cli("--version").exit_code == 0
    assert cli("ticket", "show").exit_code == ExitCode.USAGE  # missing argument
    write_config(cfgdir, "[accounts.x]\nemail = 'bad'\n")
    assert cli("run").exit_code == ExitCode.CONFIG
    write_config(cfgdir, "[accounts.x]\nemail = 'x@example.com'\n[accounts.x.fetch]\n"
                         "host = '127.0.0.1'\nport = 9\ntls = 'none'\n")
    assert cli("run", "--quiet").exit_code == ExitCode.AUTH  # no password anywhere
    data = tmp_path / "data" / "mailtix.sqlite3"
    data.parent.mkdir(exist_ok=True)
    data.write_bytes(b"this is not a database")
    assert cli("status").exit_code == ExitCode.STORE


def test_log_file_never_holds_the_password(cli, dovecot, mailbox_account, monkeypatch, tmp_path):
    mailbox_account("bad")
    monkeypatch.setenv("MAILTIX_PASSWORD_BAD", "Sup3r-Secret-Value")
    cli("-v", "run")
    text = "".join(p.read_text() for p in (tmp_path / "log").glob("*"))
    assert "account bad failed" in text
    assert "Sup3r-Secret-Value" not in text


def test_log_file_rotates_and_a_read_only_dir_is_no_error(tmp_path, capsys):
    import logging

    from mailtix.logs import RotatingFile

    handler = RotatingFile(tmp_path / "logs" / "mailtix.log", max_bytes=200, backups=2)
    handler.setFormatter(logging.Formatter("%(message)s"))
    assert not (tmp_path / "logs").exists()  # nothing is opened until something is logged
    for i in range(30):
        handler.emit(logging.makeLogRecord({"msg": f"line {i:02d} " + "x" * 40}))
    handler.close()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["mailtix.log", "mailtix.log.1", "mailtix.log.2"]
    assert "line 29" in (tmp_path / "logs" / "mailtix.log").read_text()
    assert all(p.stat().st_size <= 250 for p in (tmp_path / "logs").iterdir())

    not_a_dir = tmp_path / "file"  # unwritable even for root
    not_a_dir.write_text("")
    blocked = RotatingFile(not_a_dir / "sub" / "mailtix.log", max_bytes=200, backups=2)
    blocked.emit(logging.makeLogRecord({"msg": "dropped"}))
    blocked.close()
    assert capsys.readouterr().err == ""
