"""A small delaying TCP proxy for the tests: every reply from the server reaches the client
`delay` seconds late, as over a long line; it counts how many connections were open at once."""

from __future__ import annotations

import socket
import threading
import time


class DelayProxy:
    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = 0
        self.peak = 0  # the most connections open at the same time
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> DelayProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server = socket.create_connection(self.upstream)
        with self._lock:
            self.open += 1
            self.connections += 1
            self.peak = max(self.peak, self.open)
        # A session counts as open until the client closes its side: the delayed replies
        # still in flight afterwards are not the client's connection any more.
        up = threading.Thread(target=self._client_side, args=(client, server), daemon=True)
        up.start()
        try:
            self._pump(server, client, self.delay)
        finally:
            up.join(timeout=5)

    def _client_side(self, client: socket.socket, server: socket.socket) -> None:
        try:
            self._pump(client, server, 0.0)
        finally:
            with self._lock:
                self.open -= 1

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, delay: float) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if delay:
                    time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
