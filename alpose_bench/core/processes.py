"""Is a process still the one we knew? The one liveness check of runs, workers, activity files and temporaries.

A pid alone can be recycled, so a process is identified by its pid and the kernel's start time of that pid
(`process_start`, from /proc on Linux); where /proc does not tell, only the pid is compared.
"""

from __future__ import annotations

import os
import platform


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces and parentheses


def process_start(pid: int) -> str | None:
    """An identity of process `pid` that a recycled pid does not share: its start time in clock ticks since boot
    (Linux); None where /proc does not tell."""
    fields = _stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def process_alive(pid: int, host: str | None = None, started: str | None = None) -> bool | None:
    """True when process `pid` (on `host`, default this one) still runs and, with `started`, is the process that
    had that start time; a zombie has exited. None when it runs on another host (it cannot be checked from here)."""
    if host is not None and host != platform.node():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OverflowError:  # not a pid this system can have: nothing to find, nothing to remove
        return True
    except PermissionError:  # it exists, owned by someone else: still compared by start time below
        pass
    fields = _stat(pid)
    if fields is None or started is None:
        return True
    if len(fields) > 19 and fields[19] != started:
        return False
    return fields[0] != "Z"  # a zombie has exited and only waits for its parent to read its status
