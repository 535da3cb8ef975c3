"""`mailtix run --loop`: a full run every interval (every account, the outbox), and in between
a run of just the account whose IMAP folder reported new mail over IDLE.

The watchers (sources/idle.py) only wake this loop; every fetch is an ordinary run cycle under
the run lock, so IDLE adds no second way of storing mail and no new failure mode: a folder
whose IDLE is missing or broken is still fetched on the interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mailtix.config.model import Account, Config

log = logging.getLogger("mailtix.watch")

RETRY_LOCKED = 2.0  # a woken run that found the lock taken tries again this much later


class Watch:
    def __init__(self, config: Config, names: list[str] | None, stop: threading.Event) -> None:
        from mailtix.sources.idle import IdleWatcher

        self.stop = stop
        self._cond = threading.Condition()
        self._woken: set[str] = set()
        self.watchers: list[IdleWatcher] = []
        for name in names or sorted(config.accounts):
            account = config.accounts[name]
            server = account.fetch
            if not account.active or server is None or server.protocol != "imap":
                continue
            for folder in server.folders:
                self.watchers.append(IdleWatcher(name, folder, _connector(account),
                                                 self.wake, stop))

    def start(self) -> Watch:
        for w in self.watchers:
            w.start()
        return self

    def wake(self, name: str) -> None:
        with self._cond:
            self._woken.add(name)
            self._cond.notify_all()

    def take(self) -> set[str]:
        with self._cond:
            woken, self._woken = self._woken, set()
            return woken

    def wait(self, timeout: float) -> set[str]:
        """Accounts woken within `timeout` seconds (empty on timeout or stop)."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while not self._woken and not self.stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                # short waits: a stop set from a signal handler needs no notify
                self._cond.wait(min(left, 1.0))
        return self.take()

    def close(self) -> None:
        self.stop.set()
        for w in self.watchers:
            w.join(timeout=10)


def _connector(account: Account) -> Callable[[], object]:
    def connect():
        from mailtix import secrets
        from mailtix.mail import clients

        server = account.fetch
        assert server is not None
        return clients.open_imap(server, secrets.lookup(account, "fetch", server), folder=None)

    return connect


def serve(config: Config, names: list[str] | None, cycle: Callable[[list[str] | None], bool],
          interval: float, stop: threading.Event, idle: bool = True) -> None:
    """Loop until `stop` is set. `cycle(None)`: a full run; `cycle([a, …])`: those accounts.
    cycle returns False when it could not run (another run holds the lock)."""
    watch = Watch(config, names, stop).start() if idle else None
    next_full = 0.0
    try:
        while not stop.is_set():
            if time.monotonic() >= next_full:
                if watch is not None:
                    watch.take()  # what woke before this run is fetched by it
                cycle(names)
                next_full = time.monotonic() + interval
                continue
            left = next_full - time.monotonic()
            if watch is None:
                stop.wait(left)
                continue
            woken = watch.wait(left)
            if woken and not stop.is_set() and not cycle(sorted(woken)):
                stop.wait(RETRY_LOCKED)
                for name in woken:
                    watch.wake(name)
    finally:
        if watch is not None:
            watch.close()
