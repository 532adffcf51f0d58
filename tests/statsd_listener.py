"""A StatsD server for tests: a UDP socket on loopback that keeps every line it receives."""

from __future__ import annotations

import socket
import threading
import time
from collections import defaultdict


class StatsdListener:
    """Bound to 127.0.0.1 on a free port; ``lines`` are ``name:value|type`` as they arrived."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.lines.extend(data.decode().splitlines())  # a client may batch lines in one packet

    def close(self, settle: float = 0.3):
        time.sleep(settle)  # the last datagrams on loopback
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def values(self) -> dict[str, list[tuple[float, str]]]:
        """Each metric name's received (value, type), in order."""
        out = defaultdict(list)
        for line in self.lines:
            name, _, rest = line.partition(":")
            value, _, kind = rest.partition("|")
            out[name].append((float(value), kind.split("|")[0]))
        return out

    def counter(self, name: str) -> float:
        return sum(v for v, kind in self.values().get(name, []) if kind == "c")

    def gauges(self, name: str) -> list[float]:
        """Every value the gauge was set to, in order."""
        return [v for v, kind in self.values().get(name, []) if kind == "g"]

    def gauge(self, name: str) -> float | None:
        """The gauge's last value."""
        return (self.gauges(name) or [None])[-1]

    def timings(self, name: str) -> list[float]:
        """Milliseconds, as StatsD timers carry them."""
        return [v for v, kind in self.values().get(name, []) if kind == "ms"]
