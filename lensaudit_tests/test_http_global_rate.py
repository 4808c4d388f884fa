"""A global rate for the cutout service over a Spark cluster: each node waits
nodes / global rate between requests (nodes from the Spark conf or the configuration), on
top of the per-machine lock file; and a retry budget per run caps the retries of all
cutouts of the run (per node: its share), tested against a failing server on 127.0.0.1."""

import http.server
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from lensaudit.cutouts.http import HttpCutoutSource
from lensaudit.cutouts.ratelimit import (SharedRetryBudget, node_interval_s, node_retry_budget, resolve_rate_spec,
                                         spark_node_count)
from resources.cutout_source import CutoutSourceResource


def test_the_arithmetic():
    assert node_interval_s(5.0, 4) == pytest.approx(0.8)  # 4 nodes x 1/0.8 = 5 requests/s together
    assert node_interval_s(10.0, 1) == pytest.approx(0.1)
    for rate, n in ((0.0, 1), (-1.0, 1), (float("inf"), 1), (5.0, 0), (5.0, 1.5)):
        with pytest.raises(ValueError):
            node_interval_s(rate, n)
    assert node_retry_budget(10, 4) == 3 and node_retry_budget(8, 4) == 2 and node_retry_budget(0, 3) == 0


def test_nodes_come_from_the_spark_conf_or_the_configuration():
    from pyspark import SparkConf

    conf = SparkConf(loadDefaults=False).setMaster("yarn").set("spark.executor.instances", "6")
    assert spark_node_count(conf.get) == 6
    assert spark_node_count(conf.get, configured=3) == 3  # the configured value wins
    assert spark_node_count(SparkConf(loadDefaults=False).setMaster("local[*]").get) == 1
    with pytest.raises(ValueError, match="rate_limit.nodes"):
        spark_node_count(SparkConf(loadDefaults=False).setMaster("yarn").get)  # dynamic allocation: say how many
    with pytest.raises(ValueError, match="not an integer"):
        spark_node_count({"spark.executor.instances": "many"}.get)


def test_the_cutouts_job_turns_the_global_rate_into_the_node_interval(tmp_path, monkeypatch):
    """cutouts_job resolves the spec from its session's conf before the tasks build their
    sources; the HTTP source of a task then waits the derived interval and holds its share of
    the run's retry budget."""
    import lensaudit.spark_jobs.cutouts as jobs
    from lensaudit.spark_jobs.entrypoint import cutouts_job

    spec = CutoutSourceResource(kind="http", location="http://127.0.0.1:8004/c", http_global_rate_per_s=20.0,
                                http_retry_budget_per_run=10, http_min_interval_s=0.7).spec(tmp_path, None,
                                                                                          run_key="run-9")
    seen = {}
    monkeypatch.setattr(jobs, "build_cutouts", lambda spark, sweeps, manifest, spec, store, idx: seen.update(spec) or [])
    conf = {"spark.master": "yarn", "spark.executor.instances": "4"}
    spark = SimpleNamespace(sparkContext=SimpleNamespace(getConf=lambda: SimpleNamespace(get=conf.get)))
    out = cutouts_job(spark, sweeps=[], manifest="m", spec=spec, store_dir="s", index_paths={})
    assert out["http_rate"] == {"global_rate_per_s": 20.0, "nodes": 4, "min_interval_s": 0.2, "node_retry_budget": 3}
    get = jobs._source(seen, "sweep-x.fits")
    src = next(c.cell_contents for c in get.__closure__ if isinstance(c.cell_contents, HttpCutoutSource))
    assert src.rate_limit.min_interval_s == pytest.approx(0.2)  # 4 / 20, not the per-machine 0.7
    assert src.rate_limit.path.parent == tmp_path / "http_cache" and src.run_budget.limit == 3
    # without a global rate the per-machine interval stays, and no run budget without a run key
    plain = CutoutSourceResource(kind="http", location="http://127.0.0.1:8004/c", http_min_interval_s=0.7)
    assert resolve_rate_spec(plain.spec(tmp_path, None), conf.get)["min_interval_s"] == 0.7
    assert plain.spec(tmp_path, None)["retry_budget_per_run"] is None


def test_on_emr_the_nodes_are_the_core_instances(tmp_path):
    from resources.spark import EmrSettings, SparkResource

    emr = SparkResource(mode="emr", emr=EmrSettings(core_instance_count=5))
    assert emr.node_count() == 5 and SparkResource().node_count() is None
    res = CutoutSourceResource(kind="http", location="http://127.0.0.1:8004/c", http_global_rate_per_s=10.0)
    spec = res.spec(tmp_path, None, run_key="r", nodes_default=emr.node_count())
    assert resolve_rate_spec(spec, {"spark.master": "yarn"}.get)["min_interval_s"] == pytest.approx(0.5)
    fixed = res.model_copy(update={"http_nodes": 2}).spec(tmp_path, None, nodes_default=5)
    assert fixed["nodes"] == 2  # the configured count wins


@pytest.fixture()
def failing_server():
    hits = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            hits.append(time.monotonic())
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/viewer/fits-cutout", hits
    srv.shutdown()


def test_the_run_retry_budget_caps_the_retries_of_all_cutouts(failing_server, tmp_path):
    url, hits = failing_server

    def source(run_key):
        return HttpCutoutSource(url, cache_dir=tmp_path / "cache", retries=3, backoff_s=0.0, min_interval_s=0.0,
                                timeout_s=5.0, run_retry_budget=4, run_key=run_key)

    a, b = source("run-1"), source("run-1")  # two tasks of one run on this machine share the budget
    first = a.cutout(10.0, 1.0)
    assert not first.ok and first.reason == "http_503" and len(hits) == 4  # 1 try + 3 retries (budget 4 -> 1 left)
    second = b.cutout(10.0, 1.1)
    assert not second.ok and second.reason == "http_503; run_retry_budget_exhausted" and len(hits) == 6
    third = a.cutout(10.0, 1.2)
    assert third.reason.endswith("run_retry_budget_exhausted") and len(hits) == 7  # first tries only from now on
    assert SharedRetryBudget(a.run_budget.path, 4).used() == 4
    fresh = source("run-2").cutout(10.0, 1.3)  # another run: its own budget
    assert fresh.reason == "http_503" and len(hits) == 11


def test_the_derived_interval_spaces_the_requests(failing_server, tmp_path):
    """Nodes 2, global rate 10/s: 0.2 s between this node's requests, retries included."""
    url, hits = failing_server
    spec = resolve_rate_spec({"kind": "http", "global_rate_per_s": 10.0, "nodes": 2, "retry_budget_per_run": None},
                             {}.get)
    src = HttpCutoutSource(url, cache_dir=tmp_path / "c", retries=3, backoff_s=0.0, timeout_s=5.0,
                           min_interval_s=spec["min_interval_s"])
    src.cutout(10.0, 1.0)
    assert len(hits) == 4 and min(np.diff(hits)) >= 0.17  # 0.2 s, with scheduling slack


def test_body_retries_draw_on_the_run_budget_too(tmp_path):
    """A truncated body is retried by the source itself (not urllib3): the same run budget."""
    hits = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            hits.append(1)
            self.send_response(200)
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(b"SIMPLE  =                    T" + b" " * 50)
            self.wfile.flush()
            self.close_connection = True

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        src = HttpCutoutSource(f"http://127.0.0.1:{srv.server_address[1]}/c", cache_dir=tmp_path, retries=3,
                               backoff_s=0.0, min_interval_s=0.0, timeout_s=5.0, run_retry_budget=1, run_key="r")
        c = src.cutout(10.0, 1.0)
    finally:
        srv.shutdown()
    assert c.reason == "http_truncated_body; run_retry_budget_exhausted" and len(hits) == 2
