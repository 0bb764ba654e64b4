"""sd_notify over `$NOTIFY_SOCKET`, without a dependency (systemd's protocol is one datagram)."""

from __future__ import annotations

import os
import socket
from typing import Any


def status_line(homes: list[tuple[int, dict[str, Any]]], polling: bool) -> str:
    """Return the `STATUS=` field for homes given as (sessions, status counters)."""
    sessions = sum(count for count, _ in homes)
    repairs = [(stats.get("last_repair") or {}).get("at") for _, stats in homes]
    last = max((r for r in repairs if r), default="never")
    mode = "polling" if polling else "watching"
    return f"STATUS={mode} {sessions} sessions in {len(homes)} home(s); last repair {last}"


class Notifier:
    """Sends `READY=1`, `STATUS=…`, `WATCHDOG=1`, `STOPPING=1` when run by systemd; else no-op."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if address.startswith("@"):
            self.address = "\0" + address[1:]
        elif address.startswith("/"):
            self.address = address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_s: float | None = None
        if usec.isdigit() and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1_000_000

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send `fields` joined by newlines; return False when not under systemd or on error."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(fields).encode("utf-8"))
        except OSError:
            return False
        return True
