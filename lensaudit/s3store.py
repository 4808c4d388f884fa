"""A store home on S3 (``LENSAUDIT_HOME=s3://bucket/prefix``): a local staging copy kept in
step with the bucket, every object carrying the sha256 of its bytes.

Runs and gates work on a local directory, the *cache* of the URI
(``$LENSAUDIT_CACHE/<bucket>/<prefix>``, default ``~/.cache/lensaudit/<bucket>/<prefix>``),
with the layout of a local home.  ``S3Store.pull`` brings the bucket's objects into it,
``S3Store.push`` uploads what a run wrote:

- every object is uploaded with its sha256 as user metadata (``x-amz-meta-sha256``), and a
  download is installed (atomically, ``store.atomic_path``) only when its bytes hash to that
  value: an object without it, or whose bytes differ from it, is *corrupt* and never read;
- push uploads every file outside ``assets/`` (cutout shards, the mock sky, plots) before the
  files under ``assets/``, and each asset's Parquet files last, as the local writers do, so a
  push cut short never leaves an index on S3 pointing at shards that are not there;
- a key under the prefix that is not a plain relative path (``..``, an empty or hidden
  component, odd characters: ``store.check_relpath``) is refused; nothing is written outside
  the cache; ``dagster/`` (the Dagster instance), ``http_cache/`` and ``sweep_cache/``
  (copies of remote inputs) stay local;
- ``.s3sync/<path>.json`` beside the files records, per file, the sha256, size, mtime and
  ETag of its last sync, so an unchanged file is neither re-hashed nor re-fetched (one LIST
  of the prefix), and a file written here since its last sync (a step of the same run in
  another process) is not overwritten by a pull before it is pushed;
- ``pull(strict=True)`` (what ``lensaudit gates`` does) trusts no record: it re-hashes every
  cached file, fetches (and checks) every object whose bytes differ from the cache's or whose
  ETag is not the one this cache uploaded or checked, and removes cached files that S3 does
  not hold, so the gates judge exactly the bytes on S3.

Deletions are not mirrored: an object stays on S3 when the local file goes (e.g. a cutout
shard replaced by a rerun, no longer named by the index).  S3 is reached with boto3 (the
standard credential chain; ``AWS_ENDPOINT_URL`` for an S3-compatible server).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from lensaudit.store import S3StoreError, atomic_path, cache_dir, check_relpath, is_s3_uri, parse_s3_uri, safe_join

__all__ = ["S3IntegrityError", "S3Store", "S3StoreError", "SyncReport", "cache_dir", "is_s3_uri", "owner_asset",
           "parse_s3_uri", "push_order"]

SHA_META = "sha256"  # the user-metadata key of an object's sha256 (x-amz-meta-sha256)
RECORD_DIR = ".s3sync"
#: top-level folders of a home that are never synced (the instance; copies of remote inputs)
LOCAL_ONLY = ("dagster", "http_cache", "sweep_cache")
_CHUNK = 1 << 20


class S3IntegrityError(S3StoreError):
    """Objects whose bytes do not match their recorded sha256 (``corrupt``: path -> reason)."""

    def __init__(self, uri: str, corrupt: dict[str, str]):
        self.corrupt = corrupt
        lines = "; ".join(f"{uri}/{k}: {v}" for k, v in sorted(corrupt.items())[:5])
        more = f" (and {len(corrupt) - 5} more)" if len(corrupt) > 5 else ""
        super().__init__(f"{len(corrupt)} object(s) on S3 fail their sha256 check: {lines}{more}")


def owner_asset(rel: str) -> str | None:
    """The asset whose gates read the store file ``rel``: ``assets/<name>/…`` (a side table's
    producing asset), the cutout store -> ``cutouts``, the mock sky -> ``sweep_catalog``."""
    parts = rel.split("/")
    if parts[0] == "assets" and len(parts) > 2:
        from lensaudit.tables import SIDE_TABLES

        side = SIDE_TABLES.get(parts[1])
        return side.asset if side is not None else parts[1]
    return {"cutout_store": "cutouts", "mock_sky": "sweep_catalog"}.get(parts[0])


@dataclass
class SyncReport:
    fetched: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    corrupt: dict[str, str] = field(default_factory=dict)


def _hash_stream(f) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: f.read(_CHUNK), b""):
        h.update(block)
    return h.hexdigest()


def push_order(rel: str) -> tuple:
    """Upload order: files outside ``assets/`` first, then asset files, each asset's Parquet
    files (tables and indexes) last."""
    return (rel.startswith("assets/"), rel.endswith(".parquet"), rel)


class S3Store:
    """The s3:// home ``uri`` and its local cache (see the module docstring)."""

    def __init__(self, uri: str, cache: str | os.PathLike | None = None, client=None):
        self.uri = uri.rstrip("/")
        self.bucket, self.prefix = parse_s3_uri(uri)
        self.root = Path(cache).resolve() if cache is not None else cache_dir(uri)
        self._client = client

    # -- S3 side -------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _rel(self, key: str) -> str | None:
        """The store path of ``key``; None for the Dagster instance's and other local-only
        folders; S3StoreError for a key that is not a plain path under the prefix."""
        base = f"{self.prefix}/" if self.prefix else ""
        if not key.startswith(base):
            raise S3StoreError(f"object s3://{self.bucket}/{key} lies outside {self.uri}; refused")
        rel = key[len(base):]
        try:
            check_relpath(rel)
        except ValueError:
            raise S3StoreError(f"object s3://{self.bucket}/{key}: {rel!r} is not a plain path under {self.uri} "
                               "(empty, hidden or '..' component, or odd characters); refused") from None
        return None if rel.split("/")[0] in LOCAL_ONLY else rel

    def listing(self) -> dict[str, dict]:
        """Store path -> {size, etag} of every object under the prefix."""
        out = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else "")
        for page in pages:
            for o in page.get("Contents", []):
                rel = self._rel(o["Key"])
                if rel is not None:
                    out[rel] = {"size": int(o["Size"]), "etag": o["ETag"]}
        return out

    def recorded_sha(self, rel: str) -> str | None:
        meta = self.client.head_object(Bucket=self.bucket, Key=self._key(rel)).get("Metadata", {})
        return meta.get(SHA_META)

    # -- local side ----------------------------------------------------------------------
    def local_path(self, rel: str) -> Path:
        return safe_join(self.root, *check_relpath(rel).split("/"))

    def _record_path(self, rel: str) -> Path:
        parts = check_relpath(rel).split("/")
        return safe_join(self.root / RECORD_DIR, *parts[:-1], parts[-1] + ".json")

    def _record(self, rel: str) -> dict | None:
        try:
            return json.loads(self._record_path(rel).read_text())
        except (OSError, ValueError):
            return None

    def _write_record(self, rel: str, sha: str, st: os.stat_result, etag: str) -> None:
        with atomic_path(self._record_path(rel)) as tmp:
            tmp.write_text(json.dumps({"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "etag": etag}))

    @staticmethod
    def _unchanged(rec: dict | None, st: os.stat_result) -> bool:
        return rec is not None and rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns

    def local_files(self) -> list[str]:
        """Store paths of the cache's files (no hidden, temporary or local-only ones)."""
        out = []
        if not self.root.is_dir():
            return out
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                                 and not (rel_dir == "." and d in LOCAL_ONLY))
            for name in filenames:
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                try:
                    out.append(check_relpath(rel))
                except ValueError:
                    continue  # temporaries (.x.tmp) and names no lensaudit writer makes
        return sorted(out)

    # -- sync ----------------------------------------------------------------------------
    def pull(self, only: list[str] | None = None, strict: bool = False) -> SyncReport:
        """Bring S3's objects (only the store paths ``only``, when given) into the cache.

        An object is fetched when the cached file is missing or differs from S3's recorded
        sha256, unless the cached file was written here after its last sync (not strict: it
        is pushed, not overwritten).  ``strict`` re-hashes every cached file, fetches and
        checks every object whose ETag this cache did not itself upload or check, and
        removes cached files S3 does not hold.  Corrupt objects are listed in the report, never
        installed; the caller decides (``S3IntegrityError``, or failing gates)."""
        with self._s3_errors("pull"):
            return self._pull(only, strict)

    def push(self) -> SyncReport:
        """Upload every cached file whose bytes S3 does not hold under its recorded sha256,
        in ``push_order``; each object carries its sha256."""
        with self._s3_errors("push"):
            return self._push()

    @contextlib.contextmanager
    def _s3_errors(self, what: str):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise S3StoreError(f"{what} {self.uri} (cache {self.root}): {type(exc).__name__}: {exc}") from None

    def _pull(self, only: list[str] | None, strict: bool) -> SyncReport:
        report = SyncReport()
        remote = self.listing()
        if only is not None:
            remote = {k: v for k, v in remote.items() if k in set(only)}
        for rel, obj in sorted(remote.items()):
            path = self.local_path(rel)
            rec = self._record(rel)
            st = path.stat() if path.is_file() else None
            if st is not None and not strict and self._unchanged(rec, st) and rec.get("etag") == obj["etag"]:
                continue  # synced, and neither side changed since
            if st is not None and not strict and not self._unchanged(rec, st):
                continue  # written here since its last sync: the push uploads it
            recorded = self.recorded_sha(rel)
            if recorded is None:
                report.corrupt[rel] = f"no {SHA_META} recorded (not uploaded by lensaudit)"
                continue
            if st is not None:
                with open(path, "rb") as f:
                    have = _hash_stream(f)
                verified = rec is not None and rec.get("etag") == obj["etag"]
                if have == recorded and (verified or not strict):
                    # the ETag is recorded only for bytes this cache uploaded or downloaded and
                    # checked: an object rewritten since (same recorded sha256, new bytes) is
                    # fetched and checked by a strict pull, never taken as verified
                    self._write_record(rel, have, st, rec.get("etag", "") if rec else "")
                    continue
            got = self._download(rel, recorded)
            if got is not None:
                report.corrupt[rel] = got
            else:
                report.fetched.append(rel)
        if strict and only is None:
            for rel in self.local_files():
                if rel not in remote:
                    self.local_path(rel).unlink()
                    report.removed.append(rel)
        return report

    def _download(self, rel: str, recorded: str) -> str | None:
        """Fetch one object into the cache, installed only when its bytes hash to
        ``recorded``; the reason it was not, or None."""
        target = self.local_path(rel)
        try:
            with atomic_path(target) as tmp:
                resp = self.client.get_object(Bucket=self.bucket, Key=self._key(rel))
                h = hashlib.sha256()
                with open(tmp, "wb") as f:
                    for block in resp["Body"].iter_chunks(_CHUNK):
                        h.update(block)
                        f.write(block)
                if h.hexdigest() != recorded:
                    raise _Mismatch(f"bytes hash to {h.hexdigest()[:16]}…, recorded {recorded[:16]}…")
        except _Mismatch as exc:
            return str(exc)
        self._write_record(rel, recorded, target.stat(), resp.get("ETag", ""))
        return None

    def _push(self) -> SyncReport:
        report = SyncReport()
        remote = self.listing()
        for rel in sorted(self.local_files(), key=push_order):
            path = self.local_path(rel)
            rec = self._record(rel)
            try:
                f = open(path, "rb")  # hashed and uploaded from one open file: a concurrent
            except FileNotFoundError:  # atomic replace cannot mix two versions
                continue
            with f:
                st = os.fstat(f.fileno())
                obj = remote.get(rel)
                if self._unchanged(rec, st) and obj is not None and rec.get("etag") == obj["etag"]:
                    continue
                sha = _hash_stream(f)
                if obj is not None and self.recorded_sha(rel) == sha:
                    self._write_record(rel, sha, st, rec.get("etag", "") if rec else "")
                    continue
                f.seek(0)
                self.client.upload_fileobj(f, self.bucket, self._key(rel), ExtraArgs={"Metadata": {SHA_META: sha}})
            etag = self.client.head_object(Bucket=self.bucket, Key=self._key(rel))["ETag"]
            self._write_record(rel, sha, st, etag)
            report.uploaded.append(rel)
        return report


class _Mismatch(Exception):
    pass
