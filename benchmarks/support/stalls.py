"""Stand-ins for a process stuck on a file (issue 68), for the scan's fault tests and benchmarks/bench_scan_faults.py:
the names of the files a process holds open, and a file whose ``open`` blocks in any other process."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Iterator


class NoLease(Exception):
    """The kernel or the file system grants no write lease on the file."""


def open_names(pid: int) -> set[str]:
    """The base names of the files process ``pid`` holds open (``/proc/PID/fd``)."""
    names = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            names.add(os.path.basename(os.readlink(fd)))
        except OSError:
            continue
    return names


@contextlib.contextmanager
def open_blocks(path: Path) -> Iterator[None]:
    """In the block, any other process's ``open`` of ``path`` blocks (for /proc/sys/fs/lease-break-time seconds)
    while ``stat`` works: a write lease held by this process, a stalled read's stand-in that needs neither root,
    FUSE nor a hook in the library. Raises :class:`NoLease` (before the block) where no lease is granted."""
    import fcntl

    handler = signal.signal(signal.SIGIO, signal.SIG_IGN)  # the lease holder is sent SIGIO when the file is opened
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        except OSError as exc:
            raise NoLease(f"no write lease on {path} ({exc.strerror})") from None
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        os.close(fd)
        signal.signal(signal.SIGIO, handler)
