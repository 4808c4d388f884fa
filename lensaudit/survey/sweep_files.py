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
