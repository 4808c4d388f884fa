"""HTTP cutout source: redirects only on the configured host, retries by urllib3 Retry.
Real ``http.server`` instances on 127.0.0.1; two ports = two hosts."""

import http.server
import io
import threading

import numpy as np
import pytest
from astropy.io import fits

from lensaudit.cutouts.http import HttpCutoutSource


def _fits_bytes():
    buf = io.BytesIO()
    fits.PrimaryHDU(np.ones((3, 101, 101), np.float32)).writeto(buf)
    return buf.getvalue()


def _server(routes: dict):
    """A server answering path -> (status, headers, body); records the paths it was asked."""
    hits: list[str] = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            path = self.path.split("?")[0]
            hits.append(path)
            status, headers, body = routes.get(path, (404, {}, b""))
            if callable(status):
                status, headers, body = status()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}", hits


@pytest.fixture()
def two_hosts():
    body = _fits_bytes()
    other, other_url, other_hits = _server({"/evil": (200, {}, body)})
    routes = {"/ok": (200, {}, body),
              "/hop": (302, {"Location": "/ok"}, b""),
              "/away": (302, {"Location": f"{other_url}/evil"}, b""),
              "/loop": (302, {"Location": "/loop"}, b"")}
    main, main_url, main_hits = _server(routes)
    yield main_url, main_hits, other_hits, routes
    main.shutdown()
    other.shutdown()


def _src(base, tmp_path, **kw):
    return HttpCutoutSource(base, cache_dir=tmp_path / "cache", timeout_s=2.0, retries=kw.pop("retries", 3),
                            backoff_s=0.01, min_interval_s=0.0, **kw)


def test_redirect_to_another_host_is_an_error_and_nothing_is_cached(two_hosts, tmp_path):
    main_url, main_hits, other_hits, _ = two_hosts
    c = _src(f"{main_url}/away", tmp_path).cutout(10.0, 1.0)
    assert not c.ok and c.reason.startswith("http_redirect_offhost") and c.data is None
    assert other_hits == []  # the other host was never contacted
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_redirect_on_the_same_host_is_followed_and_cached(two_hosts, tmp_path):
    main_url, main_hits, _, _ = two_hosts
    src = _src(f"{main_url}/hop", tmp_path)
    c = src.cutout(10.0, 1.0)
    assert c.ok and c.data.shape == (3, 101, 101) and main_hits == ["/hop", "/ok"]
    assert len(list((tmp_path / "cache").iterdir())) == 1
    c = _src(f"{main_url}/loop", tmp_path).cutout(10.0, 1.0)
    assert not c.ok and c.reason == "http_too_many_redirects"


def test_retries_use_urllib3_retry_within_one_budget(two_hosts, tmp_path):
    main_url, main_hits, _, routes = two_hosts
    answers = [(503, {}, b""), (503, {}, b""), (200, {}, _fits_bytes())]
    routes["/flaky"] = (lambda: answers.pop(0) if answers else (503, {}, b""), None, None)
    src = _src(f"{main_url}/flaky", tmp_path)
    from urllib3.util.retry import Retry

    assert isinstance(src.session.get_adapter(main_url).max_retries, Retry)
    c = src.cutout(10.0, 1.0)
    assert c.ok and c.meta["attempts"] == 3 and main_hits.count("/flaky") == 3
    main_hits.clear()
    c = _src(f"{main_url}/flaky", tmp_path / "b", retries=2).cutout(10.0, 2.0)  # always 503 now
    assert not c.ok and c.reason == "http_503" and main_hits.count("/flaky") == 3 and c.meta["attempts"] == 3


def test_the_first_request_is_checked_against_the_configured_origin(two_hosts, tmp_path):
    main_url, *_ = two_hosts
    src = _src(f"{main_url}/ok", tmp_path)
    port = int(main_url.rsplit(":", 1)[1])
    with pytest.raises(ValueError, match="only"):
        src._checked(f"http://127.0.0.1:{port + 1}/ok")
    with pytest.raises(ValueError, match="only"):
        src._checked(f"https://127.0.0.1:{port}/ok")


def test_an_oversized_body_is_refused_before_it_is_held(tmp_path):
    from lensaudit.cutouts.http import max_body_bytes

    big = b"\0" * (max_body_bytes(3, 101) + 10)
    srv, url, hits = _server({"/big": (200, {}, big)})
    try:
        c = _src(f"{url}/big", tmp_path).cutout(10.0, 1.0)
        assert not c.ok and c.reason.startswith("http_body_too_large") and hits == ["/big"]
        assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
    finally:
        srv.shutdown()


def test_cutout_cli_with_a_bad_service_url_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from lensaudit_cli.main import main

    monkeypatch.setenv("LENSAUDIT_CUTOUT_URL", "file:///etc/passwd")
    monkeypatch.setenv("LENSAUDIT_HOME", str(tmp_path))
    rc = main(["cutout", "--ra", "10", "--dec", "1", "--source", "http", "--out", str(tmp_path / "o.npz")])
    assert rc == 2 and "must be http(s)" in capsys.readouterr().err and not (tmp_path / "o.npz").exists()
