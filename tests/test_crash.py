"""Crash injection: `mailtix run` killed with SIGKILL at random moments (fixed seeds) over
accounts with post-fetch seen, move and delete against Dovecot, then run to completion.

Every message on the server must end up stored exactly once, every post-fetch action done on
the server, and no process of a killed run (parse workers, resource tracker) left behind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import count, db, server_flags, server_uids
from servers import simple_message

ROOT = Path(__file__).resolve().parents[1]
BACKLOG = 430  # above sources.imap.PARALLEL_MIN: the first runs parse in worker processes
KILLS = [3, 17, 29, 41]  # seeds of the kills after the first (which waits for the workers)
MORE = 15  # new mails per account after each kill, so later kills still hit work


def session(sid: int) -> list[tuple[int, bytes]]:
    """(pid, command line) of every process in the session sid."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[3]) == sid:
            found.append((int(entry.name), cmdline))
    return found


def wait_empty(sid: int, limit: float = 15.0) -> list[tuple[int, bytes]]:
    deadline = time.monotonic() + limit
    while (left := session(sid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def start_run(errors: Path) -> subprocess.Popen:
    # Output to a file, not a pipe: a process left behind would keep a pipe open forever.
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(errors, "wb") as err:
        return subprocess.Popen([sys.executable, "-m", "mailtix", "run", "--quiet"], env=env,
                                cwd=ROOT, start_new_session=True, stdout=err, stderr=err)


def kill(proc: subprocess.Popen, when) -> bool:
    """SIGKILL the run when `when()` says so (or leave it if it ends first); True if killed.
    Afterwards nothing of it may remain."""
    while proc.poll() is None and not when():
        time.sleep(0.02)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(60)
    left = wait_empty(proc.pid)
    for pid, _cmdline in left:  # do not leave them to the next tests either
        os.kill(pid, signal.SIGKILL)
    assert not left, f"left behind by the killed run: {left}"
    return killed


def test_sigkill_at_random_points_loses_and_duplicates_nothing(dovecot, mailbox_account,
                                                              tmp_path):
    users = {
        "seen": mailbox_account("seen")[0],
        "moved": mailbox_account("moved", extra='post_fetch = "move"\n'
                                                'move_to = "Done/Tickets"')[0],
        "deleted": mailbox_account("deleted", extra='post_fetch = "delete"')[0],
    }
    delivered: dict[str, set[str]] = {name: set() for name in users}

    def deliver(name: str, n: int) -> None:
        for _ in range(n):
            raw = simple_message(subject=f"to {name}")
            mid = raw.split(b"Message-ID: ", 1)[1].split(b"\n", 1)[0].strip().decode()
            delivered[name].add(mid)
            dovecot.deliver(users[name], raw)

    deliver("seen", BACKLOG)
    deliver("moved", 40)
    deliver("deleted", 40)

    # First kill: while the parse workers run, at a seeded moment.
    rng = random.Random(1)
    proc = start_run(tmp_path / "run.out")
    workers_at: list[float] = []

    def in_pool() -> bool:
        if not workers_at and any(b"spawn_main" in c for _p, c in session(proc.pid)):
            workers_at.append(time.monotonic() + rng.uniform(0.0, 0.4))
        return bool(workers_at) and time.monotonic() >= workers_at[0]

    assert kill(proc, in_pool) and workers_at, "killed while parsing in worker processes"
    for seed in KILLS:
        for name in users:
            deliver(name, MORE)
        delay = random.Random(seed).uniform(0.2, 2.5)
        proc = start_run(tmp_path / "run.out")
        start = time.monotonic()
        kill(proc, lambda s=start, d=delay: time.monotonic() - s >= d)

    # Then runs to completion.
    for _ in range(3):
        proc = start_run(tmp_path / "run.out")
        assert proc.wait(120) == 0, (tmp_path / "run.out").read_text()
        assert not wait_empty(proc.pid)
        if count("SELECT COUNT(*) FROM pending_actions") == 0:
            break
    assert count("SELECT COUNT(*) FROM pending_actions") == 0

    with db() as conn:
        for name, mids in delivered.items():
            rows = conn.execute("SELECT message_id, COUNT(*) AS n FROM messages WHERE "
                                "account = ? GROUP BY message_id", (name,)).fetchall()
            stored = {r["message_id"]: r["n"] for r in rows}
            assert set(stored) == mids, f"{name}: lost {len(mids - set(stored))}"
            assert max(stored.values()) == 1, f"{name}: stored twice"
        sources = conn.execute("SELECT COUNT(*) FROM message_sources").fetchone()[0]
    assert sources == sum(len(m) for m in delivered.values())
    flags = server_flags(dovecot, users["seen"])
    assert len(flags) == len(delivered["seen"])
    assert all("\\Seen" in f for f in flags.values()), "every fetched mail flagged seen"
    assert server_uids(dovecot, users["moved"]) == []
    assert len(server_uids(dovecot, users["moved"], "Done/Tickets")) == len(delivered["moved"])
    assert server_uids(dovecot, users["deleted"]) == []
