"""The cutout service's rate limit is shared by the processes of one machine: several
processes fetching from a real ``http.server`` on 127.0.0.1 (FITS cutouts made from a real
DR10 NPZ fixture) stay within one rate as measured by the server; the per-process limit
(the old behaviour) is caught sending several times that rate."""

import http.server
import io
import multiprocessing as mp
import threading
import time

import numpy as np
import pytest
from astropy.io import fits

from lensaudit.cutouts.http import HttpCutoutSource
from lensaudit.cutouts.ratelimit import SharedRateLimit, lock_path_for

N_PROC, PER_PROC, INTERVAL_S = 4, 5, 0.2
WINDOW_S = 1.0
#: requests allowed in any WINDOW_S window by the limit (floor(W/d) + 1), plus 2 for the
#: scheduling slack between a process's turn and its request reaching the server
MAX_IN_WINDOW = int(WINDOW_S / INTERVAL_S) + 1 + 2


def _real_fits(real_data) -> bytes:
    npz = sorted((real_data / "dr10_cutouts_lens_candidates").glob("*.npz"))[0]
    from lensaudit.cutouts.npz import read_npz

    data = read_npz(npz).data.astype(np.float32)
    buf = io.BytesIO()
    fits.PrimaryHDU(data).writeto(buf)
    return buf.getvalue(), data.shape


@pytest.fixture()
def timed_server(real_data):
    body, shape = _real_fits(real_data)
    arrivals: list[float] = []
    lock = threading.Lock()

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            with lock:
                arrivals.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/viewer/fits-cutout", arrivals, shape
    srv.shutdown()


def _worker(url, lock_dir, shared, k, size, barrier, results):
    src = HttpCutoutSource(url, cache_dir=None, timeout_s=10.0, retries=1, backoff_s=0.01,
                           min_interval_s=INTERVAL_S, shared_rate=shared, rate_lock_dir=lock_dir)
    barrier.wait()  # all processes start together
    ok = 0
    for j in range(PER_PROC):
        ok += src.cutout(10.0 + k, 1.0 + j * 0.01, size=size).ok
    results.put(ok)


def _run(url, lock_dir, shared, size):
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(N_PROC), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, str(lock_dir), shared, k, size, barrier, results))
             for k in range(N_PROC)]
    for p in procs:
        p.start()
    oks = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return sum(oks)


def _max_in_window(times, window):
    t = np.sort(np.asarray(times))
    return int(max(np.searchsorted(t, t + window, side="left") - np.arange(len(t))))


def test_processes_share_one_request_rate(timed_server, tmp_path):
    url, arrivals, shape = timed_server
    n = N_PROC * PER_PROC
    assert _run(url, tmp_path, True, shape[-1]) == n
    assert len(arrivals) == n
    span = max(arrivals) - min(arrivals)
    # one request per INTERVAL_S in all: n requests need (n - 1) intervals (25 % slack)
    assert span >= 0.75 * (n - 1) * INTERVAL_S, span
    assert _max_in_window(arrivals, WINDOW_S) <= MAX_IN_WINDOW, np.diff(sorted(arrivals))


def test_a_per_process_limit_sends_several_times_the_rate(timed_server, tmp_path):
    """The planted fault: each process keeps its own interval (the old behaviour)."""
    url, arrivals, shape = timed_server
    assert _run(url, tmp_path, False, shape[-1]) == N_PROC * PER_PROC
    assert _max_in_window(arrivals, WINDOW_S) > MAX_IN_WINDOW


def test_rate_limit_in_one_process_spaces_requests_and_ignores_a_stale_file(tmp_path):
    path = lock_path_for("http://127.0.0.1:1", tmp_path)
    path.write_bytes(np.float64(time.time() + 3600).tobytes())  # a time far ahead: ignored
    lim = SharedRateLimit(path, 0.05)
    t0 = time.monotonic()
    for _ in range(4):
        lim.wait()
    assert 0.15 <= time.monotonic() - t0 < 5.0
    with pytest.raises(ValueError, match="min_interval_s"):
        SharedRateLimit(path, -1.0)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match="lock"):  # its directory is a file
        SharedRateLimit(tmp_path / "a_file" / "x.lock", 0.1)


def test_the_lock_sits_in_the_cache_dir_per_service(tmp_path):
    a = HttpCutoutSource("http://127.0.0.1:8001/x", cache_dir=tmp_path / "c")
    b = HttpCutoutSource("http://127.0.0.1:8002/x", cache_dir=tmp_path / "c")
    assert a.rate_limit.path.parent == tmp_path / "c" and a.rate_limit.path != b.rate_limit.path
    c = HttpCutoutSource("http://127.0.0.1:8001/y", rate_lock_dir=tmp_path / "other")
    assert c.rate_limit.path.name == a.rate_limit.path.name  # same origin, same lock name


def test_urllib3_retries_wait_for_the_shared_rate(tmp_path, real_data):
    """Retries of a 5xx answer are requests too: they pass the same limit."""
    body, shape = _real_fits(real_data)
    arrivals, plan = [], ["500", "500", "ok"]

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            arrivals.append(time.monotonic())
            action = plan.pop(0) if plan else "ok"
            self.send_response(500 if action == "500" else 200)
            self.send_header("Content-Length", "0" if action == "500" else str(len(body)))
            self.end_headers()
            if action != "500":
                self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        src = HttpCutoutSource(f"http://127.0.0.1:{srv.server_address[1]}/c", timeout_s=5.0, retries=3,
                               backoff_s=0.0, min_interval_s=0.3, rate_lock_dir=tmp_path)
        c = src.cutout(10.0, 1.0, size=shape[-1])
    finally:
        srv.shutdown()
    assert c.ok and len(arrivals) == 3
    assert min(np.diff(arrivals)) >= 0.2  # backoff 0: only the rate limit spaces them (0.3 s, slack)


def test_the_resource_configures_the_interval_for_the_spark_tasks(tmp_path):
    import dagster as dg

    from lensaudit.cutouts.http import DEFAULT_MIN_INTERVAL_S
    from lensaudit.spark_jobs.cutouts import _source
    from resources.cutout_source import CutoutSourceResource

    assert CutoutSourceResource(kind="http").http_min_interval_s == DEFAULT_MIN_INTERVAL_S
    spec = CutoutSourceResource(kind="http", location="http://127.0.0.1:8003/c", http_min_interval_s=0.7).spec(
        tmp_path, None)
    assert spec["min_interval_s"] == 0.7
    get = _source(spec, "sweep-x.fits")
    src = next(c.cell_contents for c in get.__closure__ if isinstance(c.cell_contents, HttpCutoutSource))
    assert src.rate_limit.min_interval_s == 0.7 and src.rate_limit.path.parent == tmp_path / "http_cache"
    with pytest.raises(dg.Failure, match="http_min_interval_s"):
        CutoutSourceResource(kind="http", http_min_interval_s=-1.0).spec(tmp_path, None)
