"""IMAP IDLE (RFC 2177): one connection per account and folder that waits for the server to
say a message arrived, and wakes the run loop. It fetches nothing itself: the woken run
fetches by UID as always, so IDLE only shortens the wait, and nothing depends on a
notification arriving (the loop's interval run still fetches everything).

IDLE is re-issued every 25 minutes (servers may drop an IDLE older than 30, RFC 2177 §3); a
dropped connection is reconnected with exponential back-off; a server without IDLE leaves
that folder to the interval's polling.
"""

from __future__ import annotations

import imaplib
import logging
import select
import ssl
import threading
import time
from collections.abc import Callable

from mailtix.errors import MailtixError

log = logging.getLogger("mailtix.idle")

REIDLE = 25 * 60.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0
STEP = 1.0  # how often a waiting watcher looks at its stop flag


class Dropped(Exception):
    """The server closed the connection (or it died) while we were idling."""


class IdleWatcher(threading.Thread):
    """Watches one folder; calls `wake(name)` when the server reports new mail (and after each
    (re)connect, as mail may have come while it was away)."""

    def __init__(self, name: str, folder: str, connect: Callable[[], object],
                 wake: Callable[[str], None], stop: threading.Event, *,
                 reidle: float = REIDLE, backoff_max: float = BACKOFF_MAX) -> None:
        super().__init__(name=f"idle {name}/{folder}", daemon=True)
        self.account, self.folder = name, folder
        self.connect, self.wake, self.stop = connect, wake, stop
        self.reidle, self.backoff_max = reidle, backoff_max
        self.supported: bool | None = None  # None until the first login tells
        self.connects = 0  # successful logins: 1 + reconnects after drops
        self.drops = 0
        self.mailbox = None  # the live connection (tests reach in to cut it)
        self.error = ""

    def run(self) -> None:
        delay = BACKOFF_FIRST
        while not self.stop.is_set():
            try:
                self._session()
                delay = BACKOFF_FIRST
            except (Dropped, OSError, ssl.SSLError, EOFError, MailtixError, imaplib.IMAP4.error,
                    imaplib.IMAP4.abort) as exc:
                self.drops += 1
                self.error = str(exc)[:300]
                log.warning("IDLE %s/%s: %s; reconnecting in %.0f s", self.account,
                            self.folder, self.error, delay)
            except Exception as exc:  # imap_tools' errors: a server fault, same as a drop
                if type(exc).__module__ != "imap_tools.errors":
                    raise
                self.drops += 1
                self.error = str(exc)[:300]
            finally:
                self._close()
            if self.supported is False:
                return  # polling covers this folder
            self.stop.wait(delay)
            delay = min(delay * 2, self.backoff_max)

    def _session(self) -> None:
        mailbox = self.connect()
        self.mailbox = mailbox
        from mailtix.mail.imap_ops import refresh_capabilities

        # after login: what a server announces before it may leave IDLE out (or in)
        if "IDLE" not in refresh_capabilities(mailbox.client):
            self.supported = False
            log.info("IDLE %s/%s: the server has no IDLE; polling on the interval",
                     self.account, self.folder)
            return
        self.supported = True
        mailbox.folder.set(self.folder, readonly=True)
        self.connects += 1
        self.wake(self.account)
        while not self.stop.is_set():
            mailbox.idle.start()
            started = time.monotonic()
            while not self.stop.is_set() and time.monotonic() - started < self.reidle:
                lines = _poll(mailbox, STEP)
                if any(b"EXISTS" in line or b"RECENT" in line for line in lines):
                    self.wake(self.account)
            _stop_idle(mailbox)  # DONE: at stop, and to re-issue IDLE before the server's limit

    def _close(self) -> None:
        mailbox, self.mailbox = self.mailbox, None
        if mailbox is None:
            return
        try:
            mailbox.client.shutdown()
        except Exception:  # noqa: BLE001 - a dead connection has nothing left to close
            pass


def _poll(mailbox, timeout: float) -> list[bytes]:
    """Untagged responses that arrive within `timeout`; raises Dropped on EOF (imap-tools'
    own poll returns [] for a closed connection, which would spin)."""
    client = mailbox.client
    sock = client.sock
    pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
    if not pending and not select.select([sock], [], [], timeout)[0]:
        return []
    try:
        line = client._get_line()
    except imaplib.IMAP4.abort as exc:
        raise Dropped(str(exc)) from None
    if not line:
        raise Dropped("connection closed by the server")
    if line.startswith(b"* BYE"):
        raise Dropped(line.decode(errors="replace"))
    return [line]


def _stop_idle(mailbox) -> None:
    try:
        mailbox.idle.stop()
    except (OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error) as exc:
        raise Dropped(str(exc)) from None
