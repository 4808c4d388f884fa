"""Remote sweep files (an HTTP mirror, an S3 prefix) are fetched into the home's sweep cache
before the local Spark job reads them: atomic, retried, redirects only on the configured host,
re-used while the source is unchanged.  Served from 127.0.0.1 (http.server, moto)."""

import http.server
import threading
from pathlib import Path

import pytest

from lensaudit.survey.sweep_files import SweepLocationError, fetch_sweep_file

REAL = Path(__file__).parent / "data" / "real" / "dr8_desitarget_fixtures"
NAME = "sweep-310m005-320p000.fits"


class _Mirror(http.server.BaseHTTPRequestHandler):
    """/ok/<f>: the file (with ETag); /flaky/<f>: 503 on the first GET; /short/<f>: a body shorter than
    its Content-Length; /away/<f>: a redirect to another host; /here/<f>: a redirect on this host;
    /gone/<f>: 404.  ``gets`` counts GETs per path; ``etag`` is the file's version."""

    gets: dict = {}
    etag = '"v1"'
    body = b""

    def log_message(self, *a):
        pass

    def _head(self, code, length, extra=()):
        self.send_response(code)
        self.send_header("Content-Length", str(length))
        self.send_header("ETag", self.etag)
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()

    def _route(self, send_body: bool):
        kind = self.path.split("/")[1]
        if send_body:
            self.gets[self.path] = self.gets.get(self.path, 0) + 1
        if kind == "ok" or (kind == "flaky" and self.gets.get(self.path, 0) > 1) or not send_body and kind == "flaky":
            self._head(200, len(self.body))
            if send_body:
                self.wfile.write(self.body)
        elif kind == "flaky":
            self._head(503, 0)
        elif kind == "short":
            self._head(200, len(self.body))
            if send_body:
                self.wfile.write(self.body[: len(self.body) // 2])
                self.close_connection = True
        elif kind == "away":
            self._head(302, 0, [("Location", f"http://localhost:{self.server.server_address[1]}/ok/{NAME}")])
        elif kind == "here":
            self._head(302, 0, [("Location", f"/ok/{NAME}")])
        else:
            self._head(404, 0)

    def do_GET(self):
        self._route(True)

    def do_HEAD(self):
        self._route(False)


@pytest.fixture
def mirror():
    _Mirror.gets, _Mirror.etag, _Mirror.body = {}, '"v1"', (REAL / NAME).read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetched_once_and_reused_until_the_source_changes(mirror, tmp_path):
    got = fetch_sweep_file(f"{mirror}/ok", NAME, tmp_path)
    assert got == tmp_path / NAME and got.read_bytes() == (REAL / NAME).read_bytes()
    assert fetch_sweep_file(f"{mirror}/ok/", NAME, tmp_path) == got and _Mirror.gets[f"/ok/{NAME}"] == 1
    _Mirror.etag = '"v2"'  # the mirror's file changed: downloaded again
    fetch_sweep_file(f"{mirror}/ok", NAME, tmp_path)
    assert _Mirror.gets[f"/ok/{NAME}"] == 2
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_unreachable_mirror_uses_the_cached_copy(tmp_path):
    _Mirror.gets, _Mirror.etag, _Mirror.body = {}, '"v1"', (REAL / NAME).read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/ok"
    got = fetch_sweep_file(url, NAME, tmp_path)
    server.shutdown()
    server.server_close()
    assert fetch_sweep_file(url, NAME, tmp_path) == got  # offline: the cached copy of the same source
    with pytest.raises(SweepLocationError, match="cannot be fetched"):  # nothing cached: one clear error
        fetch_sweep_file(url, NAME, tmp_path / "empty")


def test_5xx_is_retried_and_short_bodies_and_foreign_redirects_fail_clearly(mirror, tmp_path):
    assert fetch_sweep_file(f"{mirror}/flaky", NAME, tmp_path / "a").read_bytes() == (REAL / NAME).read_bytes()
    assert _Mirror.gets[f"/flaky/{NAME}"] == 2
    with pytest.raises(SweepLocationError, match="IncompleteRead|truncated body"):
        fetch_sweep_file(f"{mirror}/short", NAME, tmp_path / "b")
    assert not (tmp_path / "b" / NAME).exists() and not list((tmp_path / "b").glob(".*"))
    with pytest.raises(SweepLocationError, match="another host"):
        fetch_sweep_file(f"{mirror}/away", NAME, tmp_path / "c")
    assert fetch_sweep_file(f"{mirror}/here", NAME, tmp_path / "d").read_bytes() == (REAL / NAME).read_bytes()
    with pytest.raises(SweepLocationError, match="HTTP 404"):
        fetch_sweep_file(f"{mirror}/gone", NAME, tmp_path / "e")
    with pytest.raises(SweepLocationError, match="not a sweep file name"):
        fetch_sweep_file(f"{mirror}/ok", "../../etc/passwd", tmp_path / "f")


def test_the_sweep_resource_fetches_for_local_spark_and_keeps_uris_for_emr(mirror, tmp_path):
    import dagster as dg

    from resources.sweeps import SweepSource

    src = SweepSource(location=f"{mirror}/ok")
    local = src.path_for(NAME, tmp_path, None)
    assert Path(local) == tmp_path / "sweep_cache" / NAME and Path(local).read_bytes() == (REAL / NAME).read_bytes()
    assert src.path_for(NAME, tmp_path, None, fetch=False) == f"{mirror}/ok/{NAME}"
    with pytest.raises(dg.Failure, match="HTTP 404"):
        SweepSource(location=f"{mirror}/gone").path_for(NAME, tmp_path, None)


def test_s3_objects_are_fetched_and_reused(tmp_path, monkeypatch, moto_url):
    import boto3

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto_url}.items():
        monkeypatch.setenv(k, v)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="dr10")
    s3.put_object(Bucket="dr10", Key=f"south/sweep/10.1/{NAME}", Body=(REAL / NAME).read_bytes())
    got = fetch_sweep_file("s3://dr10/south/sweep/10.1/", NAME, tmp_path)
    assert got.read_bytes() == (REAL / NAME).read_bytes()
    before = got.stat().st_mtime_ns
    assert fetch_sweep_file("s3://dr10/south/sweep/10.1", NAME, tmp_path).stat().st_mtime_ns == before
    s3.put_object(Bucket="dr10", Key=f"south/sweep/10.1/{NAME}", Body=b"changed")
    assert fetch_sweep_file("s3://dr10/south/sweep/10.1", NAME, tmp_path).read_bytes() == b"changed"
    with pytest.raises(SweepLocationError, match="cannot be fetched"):
        fetch_sweep_file("s3://dr10/nothing/here", NAME, tmp_path / "x")
