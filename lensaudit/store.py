"""The on-disk store under ``LENSAUDIT_HOME``: paths, atomic writes, safe joins.

Layout: ``$LENSAUDIT_HOME/assets/<asset_name>/`` holds an asset's Parquet files
(``data.parquet``, or one ``<partition>.parquet`` per partition);
``$LENSAUDIT_HOME/mock_sky/`` the embedded sky; ``$LENSAUDIT_HOME/dagster/`` the
Dagster instance.  Every write goes to a temporary file in the target directory and
is renamed into place, so a killed run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT_HOME = "./lensaudit_home"
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$")


class S3StoreError(ValueError):
    """A bad s3:// home, a refused key, or S3 not reachable as configured (``lensaudit.s3store``)."""


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def is_s3_uri(home) -> bool:
    return isinstance(home, str) and home.startswith("s3://")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket/prefix`` (prefix may be empty, has no trailing slash)."""
    if not is_s3_uri(uri):
        raise S3StoreError(f"not an s3:// URI: {uri!r}")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET.fullmatch(bucket):
        raise S3StoreError(f"bad S3 bucket name {bucket!r} in {uri!r}")
    if prefix:
        try:
            check_relpath(prefix)
        except ValueError as exc:
            raise S3StoreError(f"bad S3 prefix in {uri!r}: {exc}") from None
    return bucket, prefix


def cache_dir(uri: str) -> Path:
    """The local staging directory of an s3:// home: ``$LENSAUDIT_CACHE/<bucket>/<prefix>``,
    ``$LENSAUDIT_CACHE`` defaulting to ``~/.cache/lensaudit``."""
    bucket, prefix = parse_s3_uri(uri)
    base = Path(os.environ.get("LENSAUDIT_CACHE") or Path.home() / ".cache" / "lensaudit").expanduser()
    return safe_join(base, bucket, *([p for p in prefix.split("/")] if prefix else [])).resolve()


def home_setting(home: str | os.PathLike | None = None) -> str:
    """The home as configured: ``home``, else ``$LENSAUDIT_HOME``, else ./lensaudit_home."""
    return str(home or os.environ.get("LENSAUDIT_HOME") or DEFAULT_HOME)


def lensaudit_home(home: str | os.PathLike | None = None) -> Path:
    """The local store root: the configured directory, or for an ``s3://bucket/prefix`` home
    its local staging copy (``lensaudit.s3store.cache_dir``)."""
    h = home_setting(home)
    if is_s3_uri(h):
        return cache_dir(h)
    return Path(h).resolve()


def check_name(name) -> str:
    """``name`` if it is one plain path component: letters, digits, ``_ . + -``, not
    starting with a dot or separator, no ``..``, no control character (a trailing newline
    included), not absolute; ValueError otherwise."""
    s = name if isinstance(name, str) else None
    if s is None or not _SAFE_NAME.fullmatch(s) or ".." in s:
        raise ValueError(f"unsafe path component {name!r}")
    return s


def check_relpath(rel) -> str:
    """A relative path of safe components joined by ``/`` (e.g. ``shards/x.npy``)."""
    if not isinstance(rel, str) or not rel:
        raise ValueError(f"unsafe relative path {rel!r}")
    for part in rel.split("/"):
        check_name(part)
    return rel


def safe_join(root: str | os.PathLike, *parts: str) -> Path:
    """Join ``parts`` under ``root``; refuse names that could escape it."""
    root_p = Path(root).resolve()
    for p in parts:
        check_name(p)
    out = root_p.joinpath(*parts).resolve()
    if root_p != out and root_p not in out.parents:
        raise ValueError(f"path {out} escapes the store root {root_p}")
    return out


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The sha256 (hex) of a file's bytes, read in chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def asset_dir(home: Path, asset_name: str) -> Path:
    return safe_join(home, "assets", asset_name)


def partition_file(home: Path, asset_name: str, partition: str) -> Path:
    stem = partition[:-5] if partition.endswith(".fits") else partition
    return safe_join(home, "assets", asset_name, f"{stem}.parquet")


def _writer_tag() -> str:
    """``<pid>-<host>`` of this process, as temporary files carry it."""
    host = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:32] or "host"
    return f"{os.getpid()}-{host}"


def _temp_writer(name: str) -> tuple[int, str] | None:
    """(pid, host) of a temporary file ``.<target>.<pid>-<host>.<random>.tmp``; None otherwise."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return None
    parts = name[:-4].rsplit(".", 2)
    if len(parts) != 3:
        return None
    pid, _, host = parts[1].partition("-")
    return (int(pid), host) if pid.isdigit() and host else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale_temps(directory: str | os.PathLike, name_prefix: str) -> list[Path]:
    """Remove the temporary files ``.<name_prefix>…`` in ``directory`` that a process of this
    host which no longer runs left behind (a killed write); a live writer's file and one
    from another host are kept.  Returns the removed paths."""
    d = Path(directory)
    removed: list[Path] = []
    if not d.is_dir():
        return removed
    host = _writer_tag().split("-", 1)[1]
    for entry in os.scandir(d):
        who = _temp_writer(entry.name) if entry.name.startswith(f".{name_prefix}") else None
        if who is None or who[1] != host or who[0] == os.getpid() or _alive(who[0]):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike):
    """Yield a temporary path beside ``target`` (``.<name>.<pid>-<host>.<random>.tmp``, which no
    reader globs); rename it onto ``target`` on success.  Temporaries of ``target`` left by a
    killed writer of this host are removed first, so a resumed write leaves nothing behind."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    reap_stale_temps(target.parent, f"{target.name}.")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_writer_tag()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; published files follow the umask
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_parquet_atomic(table: pd.DataFrame | pa.Table, target: str | os.PathLike,
                         schema: pa.Schema | None = None) -> Path:
    """Write a table as Parquet atomically, deterministically (no timestamps)."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, schema=schema, preserve_index=False)
    elif schema is not None:
        table = table.select(schema.names).cast(schema)
    table = table.replace_schema_metadata(None) if schema is None else table
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(target)


def read_asset(home: Path, asset_name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """All Parquet files of an asset as one DataFrame (FileNotFoundError if none)."""
    d = asset_dir(home, asset_name)
    files = sorted(d.glob("*.parquet")) if d.exists() else []
    if not files:
        raise FileNotFoundError(f"asset {asset_name!r} has no data under {d}")
    return pd.concat([pd.read_parquet(f, columns=columns) for f in files], ignore_index=True)


def asset_files(home: Path, asset_name: str) -> list[Path]:
    d = asset_dir(home, asset_name)
    return sorted(d.glob("*.parquet")) if d.exists() else []
