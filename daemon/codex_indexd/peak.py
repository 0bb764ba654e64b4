"""This process's peak resident size, as the kernel counts it (`VmHWM`)."""

from __future__ import annotations


def peak_kib() -> int:
    """Return this process's peak resident set size (`VmHWM` of /proc/self/status) in KiB,
    or 0 where it is unknown (no /proc). Not `ru_maxrss`: after a spawn that is at least the
    parent's resident size when it forked."""
    try:
        with open("/proc/self/status", "rb") as status:
            for row in status:
                if row.startswith(b"VmHWM:"):
                    return int(row.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def peak_mib() -> float | None:
    """Return `peak_kib` in MiB to one decimal, or None where it is unknown."""
    kib = peak_kib()
    return round(kib / 1024, 1) if kib else None
