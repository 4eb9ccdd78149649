"""The one writer of files that must never be seen half-written: dataset caches, checkpoints, figures and reports.

`write_atomic` writes into a temporary file in the target's folder, flushes it to disk, gives it the mode of an
ordinary file (0644: a cache folder shared between users stays readable) and renames it over the target, so a
reader sees the old file or the new one, never a partial one, whatever interrupts the write. A full disk is
`DiskFullError`; the temporary file is removed on any failure.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from alpose_bench.core.failures import UserFacingError
from alpose_bench.core.processes import process_alive

FILE_MODE = 0o644


class DiskFullError(UserFacingError, OSError):
    """The disk (or quota) ran out while writing `path`."""

    def __init__(self, path: Path) -> None:
        super().__init__(errno.ENOSPC, f"disk full while writing {path}")
        self.path = path

    def __str__(self) -> str:
        return f"disk full while writing {self.path}; free space and run the command again"


def is_disk_full(exc: BaseException) -> bool:
    """True for the OSError of a full disk or quota (the one test: atomic writes, the experiment lock, SQLite)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _stale(tmp: Path) -> bool:
    """True for a temporary file of this writer whose writing process is gone (`.NAME.PID.XXXX.tmp`)."""
    parts = tmp.name.rsplit(".", 3)
    return len(parts) == 4 and parts[1].isdigit() and process_alive(int(parts[1])) is False


def remove_stale_temporaries(folder: Path) -> None:
    """Remove the temporary files that interrupted writes (a killed process) left in `folder`."""
    with contextlib.suppress(OSError):
        for tmp in folder.glob(".*.tmp"):
            if _stale(tmp):
                with contextlib.suppress(OSError):
                    tmp.unlink()


def temporary_beside(path: Path) -> tuple[int, str]:
    """A new temporary file beside `path`, named after it and this process (so a later writer can tell a file
    whose writer was killed)."""
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")


def _fill(fd: int, tmp: str, content: bytes | Callable[[BinaryIO], object], mode: int) -> None:
    with os.fdopen(fd, "wb") as fh:
        if isinstance(content, (bytes, bytearray, memoryview)):
            fh.write(content)
        else:
            content(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)  # mkstemp creates files readable by their owner only


def write_atomic(
    path: str | Path, content: bytes | Callable[[BinaryIO], object], mode: int = FILE_MODE
) -> Path:
    """Write `content` (bytes, or a function that writes into a binary file) to `path` atomically.

    Raises DiskFullError when space runs out and OSError for other failures (read-only folder, ...)."""
    return write_all_atomic({Path(path): content}, mode)[0]


def write_all_atomic(
    files: dict[Path, bytes | Callable[[BinaryIO], object]], mode: int = FILE_MODE
) -> list[Path]:
    """Write a set of files all or none: every one goes to a temporary file first, and only when all are written
    are they renamed into place (a failure leaves the previous files as they were). Stale temporaries of killed
    writers in the target folders are removed first."""
    written: list[tuple[str, Path]] = []
    current = Path(next(iter(files), "."))
    try:
        for path, content in files.items():
            path = current = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(path.parent)
            fd, tmp = temporary_beside(path)
            written.append((tmp, path))
            _fill(fd, tmp, content, mode)
        for tmp, path in written:
            os.replace(tmp, path)
    except BaseException as exc:
        for tmp, _ in written:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if is_disk_full(exc):
            raise DiskFullError(current) from None
        raise
    return [Path(p) for p in files]
