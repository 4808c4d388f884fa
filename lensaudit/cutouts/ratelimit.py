"""A request rate limit shared by every process of one machine: a minimum interval between
requests (a token bucket of depth one) kept in a small lock file with ``fcntl.flock``.

Each request takes an exclusive lock on the file, reads the time of the last request
(8 bytes, seconds since the epoch), sleeps until ``min_interval_s`` after it while holding
the lock (so the other processes queue on the lock), writes the new time and releases it.
N Spark tasks (Python workers) on one machine that use the same file therefore send at
most one request per ``min_interval_s`` between them, not N.

Limits: ``flock`` is local to one machine (on NFS it is not reliable, on S3 there is no
file): on a multi-node cluster each node keeps its own file, so the service sees up to
(number of nodes) x the rate.  A global rate is therefore split over the nodes
(``node_interval_s``): with the service's global rate R requests/s (the data configuration's
``rate_limit.global_requests_per_s``, ``CutoutSourceResource.http_global_rate_per_s``) and N
nodes, each node waits N / R seconds between requests, so the cluster sends at most R per
second.  N is the configured ``nodes`` (or, on EMR, the cluster's core instances, passed by
the cutouts asset as the spec's ``nodes``), else the Spark conf's ``spark.executor.instances``
(``spark_node_count``; an executor count is an upper bound on the nodes, so the rate errs
low), else 1 for a ``local`` master; anything else is an error asking for ``nodes``.
``resolve_rate_spec`` does this once per Spark job, on the driver.  A time in the file more
than one interval in the future (a clock set back, a file from another boot) is ignored.

Retry budget per run (``SharedRetryBudget``): the retries of all cutouts of one run
together are capped; each node may spend ceil(budget / N) of them, counted in a second
lock file per (service, run) shared by the node's processes.  A cutout whose retry finds the
budget spent fails with its last reason plus ``run_retry_budget_exhausted``.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
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



def _ensure_file(path: Path, what: str) -> None:
    """Create ``path`` (and its folder) if missing, for a lock or counter shared by processes;
    ValueError naming ``what`` when it cannot be."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o666))
    except OSError as exc:
        raise ValueError(f"cannot use {path} as {what}: {exc}") from None

class SharedRateLimit:
    """``wait()`` before each request: returns once ``min_interval_s`` has passed since the
    last request of any process using the same ``path``."""

    def __init__(self, path: str | Path, min_interval_s: float):
        if not min_interval_s >= 0:
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s!r}")
        self.path, self.min_interval_s = Path(path), float(min_interval_s)
        if self.min_interval_s > 0:
            _ensure_file(self.path, "the shared rate-limit lock")

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


def node_interval_s(global_rate_per_s: float, n_nodes: int) -> float:
    """Seconds between requests on each of ``n_nodes`` machines so that together they send
    at most ``global_rate_per_s`` requests per second: n_nodes / global_rate_per_s."""
    if not global_rate_per_s > 0 or not math.isfinite(global_rate_per_s):
        raise ValueError(f"the global rate must be a positive number of requests/s, got {global_rate_per_s!r}")
    if int(n_nodes) != n_nodes or n_nodes < 1:
        raise ValueError(f"the node count must be an integer >= 1, got {n_nodes!r}")
    return float(n_nodes) / float(global_rate_per_s)


def spark_node_count(conf_get, configured: int | None = None) -> int:
    """The machines that share the service's rate: ``configured`` when given (>= 1), else
    ``spark.executor.instances`` of the Spark conf (``conf_get(key) -> str | None``), else 1
    when ``spark.master`` is ``local[...]``; ValueError otherwise (set ``nodes``)."""
    if configured:
        if int(configured) < 1:
            raise ValueError(f"nodes must be >= 1, got {configured!r}")
        return int(configured)
    raw = conf_get("spark.executor.instances")
    if raw not in (None, ""):
        try:
            n = int(raw)
        except ValueError:
            raise ValueError(f"spark.executor.instances is not an integer: {raw!r}") from None
        if n >= 1:
            return n
    master = conf_get("spark.master") or ""
    if master.startswith("local"):
        return 1
    raise ValueError(f"cannot tell how many machines share the cutout service's rate (spark.master {master!r}, "
                     "no spark.executor.instances): set rate_limit.nodes in the data configuration "
                     "(CutoutSourceResource.http_nodes)")


def node_retry_budget(retry_budget_per_run: int, n_nodes: int) -> int:
    """Each node's share of a run's retry budget: ceil(budget / nodes)."""
    return int(math.ceil(int(retry_budget_per_run) / int(n_nodes)))


def resolve_rate_spec(spec: dict, conf_get) -> dict:
    """An http cutout-source spec with its per-node numbers, on the Spark driver: when it
    carries ``global_rate_per_s`` (> 0), ``nodes`` (``spark_node_count``), ``min_interval_s``
    (``node_interval_s``) and, with ``retry_budget_per_run`` >= 0, ``node_retry_budget``.
    Other specs are returned unchanged."""
    if spec.get("kind") != "http" or not spec.get("global_rate_per_s"):
        return spec
    n = spark_node_count(conf_get, spec.get("nodes") or None)
    out = dict(spec, nodes=n, min_interval_s=node_interval_s(float(spec["global_rate_per_s"]), n))
    budget = spec.get("retry_budget_per_run")
    if budget is not None and int(budget) >= 0:
        out["node_retry_budget"] = node_retry_budget(int(budget), n)
    return out


class SharedRetryBudget:
    """At most ``limit`` retries between all processes of this machine using ``path`` (a
    count kept in the file under ``fcntl.flock``): ``take()`` is True while one is left."""

    def __init__(self, path: str | Path, limit: int):
        if int(limit) < 0:
            raise ValueError(f"retry budget must be >= 0, got {limit!r}")
        self.path, self.limit = Path(path), int(limit)
        _ensure_file(self.path, "the shared retry budget")

    def used(self) -> int:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            raw = os.pread(fd, _COUNT.size, 0)
        finally:
            os.close(fd)
        return _COUNT.unpack(raw)[0] if len(raw) == _COUNT.size else 0

    def take(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, _COUNT.size, 0)
            used = _COUNT.unpack(raw)[0] if len(raw) == _COUNT.size else 0
            if used >= self.limit:
                return False
            os.pwrite(fd, _COUNT.pack(used + 1), 0)
            return True
        finally:
            os.close(fd)


_COUNT = struct.Struct("<q")


def retry_budget_path_for(origin: str, run_key: str, lock_dir: str | Path | None) -> Path:
    """The retry-budget file of one (service origin, run) under ``lock_dir``."""
    digest = hashlib.sha256(f"{origin}\n{run_key}".encode()).hexdigest()[:16]
    return Path(lock_dir if lock_dir is not None else tempfile.gettempdir()) / f".lensaudit-retries-{digest}.count"
