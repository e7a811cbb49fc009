"""Is a process still running? For tests of the station's helper processes."""

from __future__ import annotations


def running(pid: int) -> bool:
    """True while `pid` runs (an exited process nobody has reaped yet, a zombie, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
