"""`mailtix run --loop` with IMAP IDLE against Dovecot: an APPENDed mail is stored while the
loop runs (bounded wait, no timing assertion), a dropped IDLE connection is reconnected and
mail appended after the drop is stored too; SIGTERM ends the loop cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import write_config
from helpers import count
from servers import Dovecot, simple_message

ROOT = Path(__file__).resolve().parents[1]


def until(check, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def stored(subject: str) -> bool:
    try:
        return count("SELECT COUNT(*) FROM messages WHERE subject = ?", subject) == 1
    except Exception:  # noqa: BLE001 - the store may not exist yet
        return False


def append(dovecot, user: str, raw: bytes) -> None:
    client = dovecot.imap_client(user)
    try:
        client.append("INBOX", None, None, raw)
    finally:
        client.logout()


def test_idle_loop_stores_appended_mail_and_survives_a_drop(dovecot, mailbox_account,
                                                            monkeypatch):
    from mailtix import watch
    from mailtix.config import data_dir, load
    from mailtix.lock import run_lock
    from mailtix.runner import run
    from mailtix.sources import idle
    from mailtix.store import Store

    monkeypatch.setattr(idle, "BACKOFF_FIRST", 0.2)
    user, _ = mailbox_account()
    cfg = load()
    made: list[watch.Watch] = []
    real = watch.Watch

    def capture(*args):
        made.append(real(*args))
        return made[-1]

    monkeypatch.setattr(watch, "Watch", capture)
    cycles: list[list[str] | None] = []
    finished: list[int] = []

    def cycle(only):
        cycles.append(only)
        with run_lock(data_dir(cfg)):
            store = Store.open(data_dir(cfg))
            try:
                run(cfg, store, only)
            finally:
                store.close()
        finished.append(1)
        return True

    def settled(n: int) -> bool:
        """n cycles ran and none is running: the next store can only come from a wake."""
        return len(cycles) >= n and len(finished) == len(cycles)

    stop = threading.Event()
    loop = threading.Thread(target=watch.serve, args=(cfg, None, cycle, 3600.0, stop))
    loop.start()
    try:
        assert until(lambda: made and made[0].watchers[0].connects >= 1), "IDLE never started"
        watcher = made[0].watchers[0]
        assert watcher.supported is True
        # the full run and the run woken by the (re)connect, both done before the APPEND
        assert until(lambda: settled(2))
        time.sleep(0.3)
        before = len(cycles)
        append(dovecot, user, simple_message("appended while idling"))
        assert until(lambda: stored("appended while idling")), "IDLE did not wake the loop"
        assert len(cycles) > before
        # The server drops the IDLE connection (as after a restart or a NAT timeout).
        subprocess.run(["doveadm", "-c", str(dovecot.conf), "kick", user], check=True,
                       capture_output=True)
        assert until(lambda: watcher.drops >= 1 and watcher.connects >= 2), watcher.error
        assert until(lambda: settled(before + 2))
        time.sleep(0.3)
        append(dovecot, user, simple_message("appended after the drop"))
        assert until(lambda: stored("appended after the drop")), "not recovered after a drop"
    finally:
        stop.set()
        loop.join(timeout=30)
    assert not loop.is_alive(), "the loop did not stop"
    assert not any(w.is_alive() for w in made[0].watchers)
    # Woken runs fetch only the woken account; the full run happened once (interval 1 h).
    assert cycles.count(None) == 1 and all(c == ["support"] for c in cycles if c is not None)
    assert count("SELECT COUNT(*) FROM messages") == 2


def test_run_loop_cli_stores_appended_mail_and_stops_on_sigterm(dovecot, mailbox_account):
    user, password = mailbox_account()
    from mailtix.secrets import env_name

    env = {**os.environ, "PYTHONPATH": str(ROOT), env_name("support", "fetch"): password}
    proc = subprocess.Popen([sys.executable, "-m", "mailtix", "run", "--loop", "--interval",
                             "600", "--quiet"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert until(lambda: _idling(dovecot, user)), "the loop never started IDLE"
        append(dovecot, user, simple_message("appended to the CLI loop"))
        assert until(lambda: stored("appended to the CLI loop"))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err


def _idling(dovecot, user: str) -> bool:
    result = subprocess.run(["doveadm", "-c", str(dovecot.conf), "who", user],
                            capture_output=True, text=True)
    return user in result.stdout


@pytest.fixture(scope="module")
def dovecot_no_idle(tls):
    """A server without IDLE (imap_capability replaces what Dovecot announces)."""
    server = Dovecot(Path(tempfile.mkdtemp(prefix="mailtix-dovecot-noidle-")), tls,
                     capabilities="IMAP4rev1 LITERAL+ SASL-IR ID ENABLE UIDPLUS").start()
    yield server
    server.stop()


def test_without_idle_the_loop_polls_on_the_interval(dovecot_no_idle, cfgdir, monkeypatch):
    from mailtix import watch
    from mailtix.config import data_dir, load
    from mailtix.runner import run
    from mailtix.store import Store

    server = dovecot_no_idle
    user, password = server.new_user()
    write_config(cfgdir, f'[accounts.support]\nemail = "{user}@example.com"\n'
                         f'[accounts.support.fetch]\nhost = "127.0.0.1"\n'
                         f'port = {server.imap}\ntls = "none"\nuser = "{user}"\n')
    monkeypatch.setenv("MAILTIX_PASSWORD_SUPPORT", password)
    cfg = load()
    made: list[watch.Watch] = []
    real = watch.Watch
    monkeypatch.setattr(watch, "Watch", lambda *a: made.append(real(*a)) or made[-1])
    cycles: list = []

    def cycle(only):
        cycles.append(only)
        store = Store.open(data_dir(cfg))
        try:
            run(cfg, store, only)
        finally:
            store.close()
        return True

    stop = threading.Event()
    loop = threading.Thread(target=watch.serve, args=(cfg, None, cycle, 1.0, stop))
    loop.start()
    try:
        assert until(lambda: made and made[0].watchers[0].supported is False)
        assert until(lambda: not made[0].watchers[0].is_alive()), "the watcher gave up quietly"
        append(server, user, simple_message("polled"))
        assert until(lambda: stored("polled")), "the interval's run did not fetch it"
    finally:
        stop.set()
        loop.join(timeout=30)
    assert not loop.is_alive()
    assert all(c is None for c in cycles), "only full runs: nothing woke the loop"
