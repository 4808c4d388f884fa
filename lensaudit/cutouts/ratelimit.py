"""A request rate limit shared by every process of one machine: a minimum interval between
requests (a token bucket of depth one) kept in a small lock file with ``fcntl.flock``.

Each request takes an exclusive lock on the file, reads the time of the last request
(8 bytes, seconds since the epoch), sleeps until ``min_interval_s`` after it while holding
the lock (so the other processes queue on the lock), writes the new time and releases it.
N Spark tasks (Python workers) on one machine that use the same file therefore send at
most one request per ``min_interval_s`` between them, not N.

Limits: ``flock`` is local to one machine (on NFS it is not reliable, on S3 there is no
file): on a multi-node cluster each node keeps its own file, so the service sees up to
(number of nodes) x the rate, and the per-node interval must be configured as
``nodes x`` the service's interval (``CutoutSourceResource.http_min_interval_s``).  A time
in the file more than one interval in the future (a clock set back, a file from another
boot) is ignored.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
import tempfile
import time
from pathlib import Path

_STAMP = struct.Struct("<d")


def lock_path_for(origin: str, lock_dir: str | Path | None) -> Path:
    """The lock file of one service origin (scheme://host:port) under ``lock_dir`` (the
    system temp dir when None)."""
    digest = hashlib.sha256(origin.encode()).hexdigest()[:16]
    return Path(lock_dir if lock_dir is not None else tempfile.gettempdir()) / f".lensaudit-rate-{digest}.lock"


class SharedRateLimit:
    """``wait()`` before each request: returns once ``min_interval_s`` has passed since the
    last request of any process using the same ``path``."""

    def __init__(self, path: str | Path, min_interval_s: float):
        if not min_interval_s >= 0:
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s!r}")
        self.path, self.min_interval_s = Path(path), float(min_interval_s)
        if self.min_interval_s > 0:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666))
            except OSError as exc:
                raise ValueError(f"cannot use {self.path} as the shared rate-limit lock: {exc}") from None

    def wait(self) -> None:
        if self.min_interval_s <= 0:
            return
        # opened per call: a lock held through a descriptor inherited across fork() would be
        # shared with the parent and exclude nothing
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, _STAMP.size, 0)
            last = _STAMP.unpack(raw)[0] if len(raw) == _STAMP.size else float("-inf")
            now = time.time()
            if not last <= now + self.min_interval_s:  # stale or corrupt (NaN): ignore
                last = float("-inf")
            delay = last + self.min_interval_s - now
            if delay > 0:
                time.sleep(delay)
            os.pwrite(fd, _STAMP.pack(time.time()), 0)
        finally:
            os.close(fd)  # releases the lock


class ProcessRateLimit:
    """The same interval kept in this process only (no file): what each of N processes
    would do alone, so together they send N x the rate.  For a single process."""

    def __init__(self, min_interval_s: float):
        self.min_interval_s, self._last = float(min_interval_s), float("-inf")

    def wait(self) -> None:
        dt = time.monotonic() - self._last
        if dt < self.min_interval_s:
            time.sleep(self.min_interval_s - dt)
        self._last = time.monotonic()
