"""Telling systemd how the agent is doing, by sd_notify on ``$NOTIFY_SOCKET``.

The protocol is one datagram of ``KEY=value`` lines to a unix socket, so no
library is needed. Outside a ``Type=notify`` service every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class ServiceNotifier:
    """Sends READY, STATUS, WATCHDOG and STOPPING to systemd when it listens."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_interval_s = watchdog_usec / 2e6 if watchdog_usec else None
        self._next_ping = 0.0
        self._socket: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None
    ) -> ServiceNotifier:
        """Read ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` as systemd sets them."""
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET") or None, _watchdog_usec(env))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str = "") -> None:
        """The model, detector and source are up: systemd may call us started."""
        self.notify("READY=1", *([f"STATUS={status}"] if status else []))
        if self.watchdog_interval_s:
            log.info("Systemd watchdog pinged every %.1f s", self.watchdog_interval_s)

    def status(self, text: str) -> None:
        """One line for ``systemctl status``."""
        self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        """Ping the watchdog if half its interval has passed; True when sent."""
        if not self.watchdog_interval_s:
            return False
        now = time.monotonic()
        if now < self._next_ping:
            return False
        self._next_ping = now + self.watchdog_interval_s
        return self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")

    def notify(self, *fields: str) -> bool:
        """Send one datagram of ``KEY=value`` lines; False when it could not go."""
        if self.address is None:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.sendto(
                "\n".join(fields).encode(), _socket_address(self.address)
            )
        except OSError as exc:
            if not self._failed:
                log.warning("Systemd notify socket %s refused: %s", self.address, exc)
            self._failed = True
            return False
        self._failed = False
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _socket_address(address: str) -> str | bytes:
    """A leading ``@`` names a socket in the abstract namespace."""
    if address.startswith("@"):
        return b"\0" + address[1:].encode()
    return address


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    """The watchdog interval if it is meant for this process (sd_watchdog_enabled)."""
    text = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not text:
        return None
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(text)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is no number; watchdog not pinged", text)
        return None
    return usec if usec > 0 else None
