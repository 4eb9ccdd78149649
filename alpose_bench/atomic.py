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

FILE_MODE = 0o644


class DiskFullError(OSError):
    """The disk (or quota) ran out while writing `path`."""

    def __init__(self, path: Path) -> None:
        super().__init__(errno.ENOSPC, f"disk full while writing {path}")
        self.path = path


def write_atomic(
    path: str | Path, content: bytes | Callable[[BinaryIO], object], mode: int = FILE_MODE
) -> Path:
    """Write `content` (bytes, or a function that writes into a binary file) to `path` atomically.

    Raises DiskFullError when space runs out and OSError for other failures (read-only folder, ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(content, (bytes, bytearray, memoryview)):
                fh.write(content)
            else:
                content(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # mkstemp creates files readable by their owner only
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(path) from None
        raise
    return path
