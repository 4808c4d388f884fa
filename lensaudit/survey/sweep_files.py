"""Listing the sweep files of a location: a local directory, an HTTP(S) mirror's index page
(e.g. the NERSC portal's ``.../dr10/south/sweep/10.1/``) or an ``s3://bucket/prefix``.

Only names of the Legacy Surveys' sweep convention (``sweep-<ra1><p|m><dec1>-<ra2><p|m><dec2>.fits``,
``lensaudit.survey.sweeps``) are returned; everything else under the location (checksums,
``.fits.gz``, sub-folders, README files) is ignored.  A location that cannot be listed
(missing directory, refused connection, HTTP error, missing bucket, no credentials) raises
``SweepLocationError`` naming the location and the cause.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from lensaudit.survey.sweeps import is_sweep_file_name

#: seconds to wait for an HTTP mirror's index page or an S3 listing call
LIST_TIMEOUT_S = 30.0


class SweepLocationError(OSError):
    """The sweep location cannot be listed."""


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v]


def _list_http(url: str, timeout_s: float) -> list[str]:
    import requests

    index = url if url.endswith("/") else url + "/"
    try:
        resp = requests.get(index, timeout=timeout_s)
        resp.raise_for_status()
    except requests.RequestException as exc:
        raise SweepLocationError(f"sweep location {url!r} cannot be listed: {type(exc).__name__}: {exc}") from exc
    parser = _Links()
    parser.feed(resp.text)
    # an index page links each file by a relative or absolute URL (its last path segment);
    # a link ending in "/" is a folder
    paths = [urlsplit(h).path for h in parser.hrefs]
    return [unquote(p.rsplit("/", 1)[-1]) for p in paths if p and not p.endswith("/")]


def _list_s3(uri: str, timeout_s: float) -> list[str]:
    import boto3
    import botocore.config
    import botocore.exceptions

    bucket, _, prefix = uri.split("://", 1)[1].partition("/")
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    client = boto3.client("s3", config=botocore.config.Config(connect_timeout=timeout_s, read_timeout=timeout_s,
                                                              retries={"max_attempts": 2}))
    names: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            names += [obj["Key"][len(prefix):] for obj in page.get("Contents", [])]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise SweepLocationError(f"sweep location {uri!r} cannot be listed: {type(exc).__name__}: {exc}") from exc
    return names


def list_sweep_files(location: str, timeout_s: float = LIST_TIMEOUT_S) -> list[str]:
    """Sorted sweep file names directly under ``location`` (a directory, ``http(s)://`` index
    page, or ``s3://``/``s3a://`` prefix); other names are ignored; ``SweepLocationError`` when
    the location cannot be listed."""
    scheme = location.split("://", 1)[0].lower() if "://" in location else ""
    if scheme in ("http", "https"):
        names = _list_http(location, timeout_s)
    elif scheme in ("s3", "s3a"):
        names = _list_s3(location, timeout_s)
    elif scheme:
        raise SweepLocationError(f"sweep location {location!r}: unsupported scheme {scheme!r} "
                                 "(use a directory, http(s):// or s3://)")
    else:
        d = Path(location)
        if not d.is_dir():
            raise SweepLocationError(f"sweep location {location!r} is not a directory")
        try:
            names = [p.name for p in d.iterdir() if p.is_file()]
        except OSError as exc:
            raise SweepLocationError(f"sweep location {location!r} cannot be listed: {exc}") from exc
    return sorted({n for n in names if is_sweep_file_name(n)})


#: seconds to wait for a sweep file's first bytes (a transfer may take much longer)
FETCH_TIMEOUT_S = 60.0
#: attempts of one sweep file's download (5xx, timeouts, a body shorter than announced)
FETCH_ATTEMPTS = 3
_META = ".source.json"


def _same_host(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


def _http_fingerprint(url: str, timeout_s: float) -> dict | None:
    """{size, etag, last_modified} from a HEAD request (redirects only on the same host), or None
    when the mirror does not answer."""
    import requests

    try:
        resp = requests.head(url, timeout=timeout_s, allow_redirects=False)
        hops = 0
        while resp.is_redirect and hops < 5:
            nxt = requests.compat.urljoin(url, resp.headers["Location"])
            if not _same_host(nxt, url):
                raise SweepLocationError(f"sweep file {url!r} redirects to another host ({nxt}): refused")
            resp, hops = requests.head(nxt, timeout=timeout_s, allow_redirects=False), hops + 1
        if resp.status_code != 200:
            return None
    except requests.RequestException:
        return None
    size = resp.headers.get("Content-Length")
    return {"size": int(size) if size and size.isdigit() else None, "etag": resp.headers.get("ETag"),
            "last_modified": resp.headers.get("Last-Modified")}


def _download_http(url: str, tmp: Path, timeout_s: float) -> dict:
    import requests

    target = url
    for _ in range(6):
        resp = requests.get(target, timeout=timeout_s, stream=True, allow_redirects=False)
        if not resp.is_redirect:
            break
        nxt = requests.compat.urljoin(target, resp.headers["Location"])
        if not _same_host(nxt, url):
            raise SweepLocationError(f"sweep file {url!r} redirects to another host ({nxt}): refused")
        target = nxt
    if resp.status_code >= 500:
        raise OSError(f"HTTP {resp.status_code}")
    if resp.status_code != 200:
        raise SweepLocationError(f"sweep file {url!r}: HTTP {resp.status_code}")
    want = resp.headers.get("Content-Length")
    n = 0
    with open(tmp, "wb") as f:
        for block in resp.iter_content(1 << 20):
            f.write(block)
            n += len(block)
    if want is not None and want.isdigit() and n != int(want):
        raise OSError(f"truncated body: {n} of {want} bytes")
    return {"size": n, "etag": resp.headers.get("ETag"), "last_modified": resp.headers.get("Last-Modified")}


def _s3_client(timeout_s: float):
    import boto3
    import botocore.config

    return boto3.client("s3", config=botocore.config.Config(connect_timeout=timeout_s, read_timeout=timeout_s,
                                                            retries={"max_attempts": FETCH_ATTEMPTS}))


def fetch_sweep_file(location: str, name: str, cache_dir: str | Path, timeout_s: float = FETCH_TIMEOUT_S) -> Path:
    """A local copy of sweep file ``name`` of a remote ``location`` (an ``http(s)://`` mirror or
    an ``s3://`` prefix), kept under ``cache_dir/<name>`` with the source's size, ETag and
    Last-Modified beside it: a re-run re-uses the copy when the source still reports the same
    (or cannot be reached) and downloads again when it changed.  Downloads are atomic (a
    temporary file renamed into place), retried on 5xx, timeouts and bodies shorter than
    announced, and follow HTTP redirects only on the configured host.  ``SweepLocationError``
    names the file and the cause when it cannot be fetched."""
    import json
    import os
    import time

    if not is_sweep_file_name(name):
        raise SweepLocationError(f"{name!r} is not a sweep file name")
    scheme = location.split("://", 1)[0].lower() if "://" in location else ""
    if scheme not in ("http", "https", "s3", "s3a"):
        raise SweepLocationError(f"sweep location {location!r}: only http(s):// and s3:// files are fetched")
    src = f"{location.rstrip('/')}/{name}"
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    dest, meta_path = cache / name, cache / (name + _META)
    old = json.loads(meta_path.read_text()) if meta_path.is_file() and dest.is_file() else None
    if scheme in ("http", "https"):
        now = _http_fingerprint(src, timeout_s)
    else:
        bucket, _, key = src.split("://", 1)[1].partition("/")
        try:
            head = _s3_client(timeout_s).head_object(Bucket=bucket, Key=key)
            now = {"size": int(head["ContentLength"]), "etag": head.get("ETag"),
                   "last_modified": str(head.get("LastModified"))}
        except Exception:  # noqa: BLE001 - unreachable: the cached copy (if any) is used, else the download says why
            now = None
    if old is not None and old.get("source") == src and dest.stat().st_size == old.get("size") and (
            now is None or all(now[k] is None or now[k] == old.get(k) for k in ("size", "etag", "last_modified"))):
        return dest
    tmp = cache / f".{name}.{os.getpid()}.tmp"
    last = None
    for attempt in range(FETCH_ATTEMPTS):
        try:
            if scheme in ("http", "https"):
                got = _download_http(src, tmp, timeout_s)
            else:
                bucket, _, key = src.split("://", 1)[1].partition("/")
                client = _s3_client(timeout_s)
                client.download_file(bucket, key, str(tmp))
                head = client.head_object(Bucket=bucket, Key=key)
                got = {"size": tmp.stat().st_size, "etag": head.get("ETag"),
                       "last_modified": str(head.get("LastModified"))}
                if got["size"] != int(head["ContentLength"]):
                    raise OSError(f"truncated object: {got['size']} of {head['ContentLength']} bytes")
            os.replace(tmp, dest)
            meta_path.write_text(json.dumps({"source": src, **got}, sort_keys=True))
            return dest
        except SweepLocationError:
            tmp.unlink(missing_ok=True)
            raise
        except Exception as exc:  # noqa: BLE001 - network, HTTP 5xx, truncation: retried, then one clear error
            tmp.unlink(missing_ok=True)
            last = exc
            time.sleep(min(2.0, 0.2 * 2 ** attempt))
    raise SweepLocationError(f"sweep file {src!r} cannot be fetched after {FETCH_ATTEMPTS} attempts: "
                             f"{type(last).__name__}: {last}")
