"""Resident memory of this process: now, its peak, and the peak a piece of work adds (Linux's VmRSS / VmHWM)."""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def proc_status_mb(key: str) -> float | None:
    """A memory figure of this process from /proc/self/status (Linux), in MiB; None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_now_and_peak() -> tuple[float, float, str]:
    """(current RSS, peak RSS) in MiB and how they were read.

    Linux: VmRSS and VmHWM, which belong to this process image only. ru_maxrss (the fallback) is not: Linux
    carries it over from the parent through fork and exec, so a child of a large process would report the
    parent's size as its own peak."""
    now, peak = proc_status_mb("VmRSS"), proc_status_mb("VmHWM")
    if now is not None and peak is not None:
        return now, peak, "VmHWM"
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    maxrss = maxrss / 2**20 if sys.platform == "darwin" else maxrss / 2**10
    return maxrss, maxrss, "ru_maxrss"


def peak_above(work: Callable[[], T]) -> tuple[T, float | None]:
    """`work()`'s result and how far the process's resident memory peaked above where it stood before, in MiB
    (None where the peak cannot be reset)."""
    before, _, _ = rss_now_and_peak()
    reset = reset_peak_rss()
    result = work()
    _, peak, _ = rss_now_and_peak()
    return result, (max(0.0, peak - before) if reset else None)


def highest_peak(peaks: list[float | None]) -> float | None:
    """The highest of repeated measurements' peaks (None where none could be measured)."""
    measured = [p for p in peaks if p is not None]
    return max(measured) if measured else None
