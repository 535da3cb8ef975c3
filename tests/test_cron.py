"""Cron and set-up must not fail silently (issue 15 item 10): a run with no config (wrong HOME)
or no active account exits 3 with one line even under --quiet; systemd print pins the config
and data dir; the cron line honours --interval; run --json always prints JSON."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_config


def test_run_quiet_without_a_config_file_exits_3_with_one_line(cli, tmp_path):
    res = cli("run", "--quiet")
    assert res.exit_code == 3
    lines = res.stderr.strip().splitlines()
    path = tmp_path / "cfg" / "config.toml"
    assert lines[0] == f"error: {path}: no config file here: nothing to run"
    assert len(lines) == 2 and "--config" in lines[1]
    res = cli("run", "--json")
    assert res.exit_code == 3 and json.loads(res.stdout)["exit_code"] == 3


def test_cron_with_the_wrong_home_is_not_silent(tmp_path):
    """As cron starts it: another HOME, no MAILTIX_* variables, a real process."""
    env = {"HOME": str(tmp_path / "nobody"), "PATH": os.environ["PATH"],
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run([sys.executable, "-m", "mailtix", "run", "--quiet"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 3 and "no config file" in res.stderr and res.stdout == ""


def test_run_quiet_without_an_active_account_exits_3(cli, cfgdir):
    write_config(cfgdir, '[accounts.old]\nemail = "old@example.com"\nactive = false\n')
    res = cli("run", "--quiet")
    assert res.exit_code == 3 and "no active account" in res.stderr


def test_run_json_prints_json_when_another_run_is_active(cli, mailbox_account):
    mailbox_account()
    data = Path(os.environ["MAILTIX_DATA"])
    data.mkdir(parents=True, exist_ok=True)
    fd = os.open(data / "run.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        res = cli("run", "--json")
        assert res.exit_code == 0
        report = json.loads(res.stdout)
        assert report["ok"] is True and report["skipped"] == "another mailtix run is active"
        res = cli("archive", "run", "--json")
        assert res.exit_code == 0
        assert json.loads(res.stdout)["skipped"] == "another mailtix run is active"
    finally:
        os.close(fd)


@pytest.mark.parametrize(("interval", "when"), [("1min", "* * * * *"), ("5min", "*/5 * * * *"),
                                                ("30s", "* * * * *"), ("2h", "0 */2 * * *"),
                                                ("1d", "0 0 * * *")])
def test_systemd_print_pins_config_and_data_dir(cli, cfgdir, interval, when):
    write_config(cfgdir, '[accounts.a]\nemail = "a@example.com"\n')
    res = cli("systemd", "print", "--interval", interval)
    assert res.exit_code == 0, res.stderr
    config = str((cfgdir / "config.toml").absolute())
    data = os.environ["MAILTIX_DATA"]
    assert f"--config {config} run --quiet" in res.stdout
    assert f"Environment=MAILTIX_DATA={data}\n" in res.stdout
    cron = [ln for ln in res.stdout.splitlines() if "MAILTIX_DATA=" in ln and ln.startswith("# ")
            and "Environment" not in ln]
    assert len(cron) == 1
    line = cron[0][2:]
    assert line.startswith(when + " ")
    words = shlex.split(line[len(when):])
    assert words[0] == f"MAILTIX_DATA={data}" and words[words.index("--config") + 1] == config


def test_cron_line_quotes_paths_for_sh_and_cron(cli, cfgdir, tmp_path, monkeypatch):
    write_config(cfgdir, '[accounts.a]\nemail = "a@example.com"\n')
    odd = tmp_path / "my data 100%"
    monkeypatch.setenv("MAILTIX_DATA", str(odd))
    out = cli("systemd", "print").stdout
    line = next(ln[2:] for ln in out.splitlines() if ln.startswith("# * * * * * "))
    assert "%" not in line.replace("\\%", ""), "cron would cut the line at a bare %"
    words = shlex.split(line.replace("\\%", "%")[len("* * * * * "):])
    assert words[0] == f"MAILTIX_DATA={odd}"
    assert f'Environment="MAILTIX_DATA={str(odd).replace("%", "%%")}"' in out, "systemd: %%"
