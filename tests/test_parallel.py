"""[general] parallel_accounts: accounts fetched at the same time by one run, on both store
backends, each worker with its own store connection. The latency comes from a delaying proxy
in front of Dovecot; the proof of parallelism is that the proxy saw the accounts' connections
open at the same time (not a timing)."""

from __future__ import annotations

import json

import pytest
from helpers import db
from latency import DelayProxy
from servers import simple_message

pytestmark = pytest.mark.usefixtures("backend")
NAMES = ("acct0", "acct1", "acct2", "acct3")


@pytest.fixture
def slow_accounts(dovecot, mailbox_account, cfgdir):
    proxy = DelayProxy(dovecot.imap, delay=0.05).start()

    def make(parallel: int) -> DelayProxy:
        for name in NAMES:
            user, _ = mailbox_account(name, general=f"parallel_accounts = {parallel}")
            for j in range(2):
                dovecot.deliver(user, simple_message(subject=f"{name} mail {j}"))
        cfg = cfgdir / "config.toml"
        cfg.write_text(cfg.read_text().replace(f"port = {dovecot.imap}", f"port = {proxy.port}"))
        return proxy

    yield make
    proxy.stop()


@pytest.mark.parametrize("parallel", [1, 4])
def test_accounts_fetched_at_once_and_each_completely(slow_accounts, cli, parallel):
    proxy = slow_accounts(parallel)
    report = json.loads(cli("run", "--json").stdout)
    assert {a["account"]: a["fetched"] for a in report["accounts"]} == dict.fromkeys(NAMES, 2)
    assert proxy.connections == len(NAMES)
    # One run, four accounts. With one worker they go in turn: the proxy's thread may notice a
    # closed session a moment after the next one connects, so two can seem open at once, never
    # more. With four workers the sessions (each many delayed round trips long) overlap.
    if parallel == 1:
        assert proxy.peak <= 2
    else:
        assert proxy.peak >= 3
    with db() as conn:
        subjects = sorted(r[0] for r in conn.execute("SELECT subject FROM messages"))
    assert subjects == sorted(f"{n} mail {j}" for n in NAMES for j in range(2))


def test_a_store_error_in_one_worker_stops_the_run(slow_accounts, cli, monkeypatch):
    """Per account the run goes on (invariant 7), but a store failure is everyone's: the
    parallel run reports it as a store error like the sequential one."""
    from mailtix import runner
    from mailtix.errors import ExitCode, StoreError

    slow_accounts(4)
    original = runner.fetch

    def failing(config, account, store, *a, **k):
        if account.name == "acct2":
            raise StoreError("the store broke")
        return original(config, account, store, *a, **k)

    monkeypatch.setattr(runner, "fetch", failing)
    result = cli("run")
    assert result.exit_code == ExitCode.STORE and "the store broke" in result.stderr


def test_a_hanging_server_holds_up_only_its_own_account(dovecot, mailbox_account, cfgdir, cli):
    """A server that accepts but never answers: its account fails on its timeout, the others
    are fetched by the other workers meanwhile."""
    hanging = DelayProxy(dovecot.imap, delay=60).start()  # the greeting never comes in time
    try:
        for name in ("acct0", "acct1", "stuck"):
            user, _ = mailbox_account(name, general="parallel_accounts = 3",
                                      fetch_extra="timeout = 2" if name == "stuck" else "")
            dovecot.deliver(user, simple_message(subject=f"{name} mail"))
        cfg = cfgdir / "config.toml"
        text = cfg.read_text()
        head, tail = text.split("[accounts.stuck.fetch]", 1)
        cfg.write_text(head + "[accounts.stuck.fetch]"
                       + tail.replace(f"port = {dovecot.imap}", f"port = {hanging.port}", 1))
        result = cli("run", "--json")
        report = {a["account"]: a for a in json.loads(result.stdout)["accounts"]}
        assert report["acct0"]["fetched"] == report["acct1"]["fetched"] == 1
        assert report["stuck"]["error"] and report["stuck"]["fetched"] == 0
        assert result.exit_code != 0
    finally:
        hanging.stop()
