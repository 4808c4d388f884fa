"""Where stamps come from: the mock sky's renderer (default), coadd bricks, or the
Legacy Surveys cutout service.  LENSAUDIT_CUTOUT_SOURCE / LENSAUDIT_CUTOUT_LOCATION pick
them when the code location loads; a run's data configuration (``settings.data()``,
``lensaudit.data_config``) replaces them through ``with_data``.

Rate of the cutout service: ``http_global_rate_per_s`` > 0 is the service's rate for all
machines together; the Spark cutouts job turns it into each machine's interval, nodes / rate
(``lensaudit.cutouts.ratelimit.resolve_rate_spec``; nodes = ``http_nodes``, else the EMR
cluster's core instances, else the Spark conf's ``spark.executor.instances``, 1 for ``local``).  Without it, ``http_min_interval_s``
is each machine's interval.  Either way the interval is shared by every Spark task of a
machine through a lock file.  ``http_retry_budget_per_run`` >= 0 caps the retries of one run
(split over the nodes); -1: only the per-cutout ``http_retries``."""

from dataclasses import asdict
from pathlib import Path

import dagster as dg

from lensaudit.mock.config import mock_sky_dirs
from lensaudit.store import asset_files


class CutoutSourceResource(dg.ConfigurableResource):
    kind: str = "mock"  # mock | coadd | http
    location: str = ""  # coadd: directory or URL prefix of bricks; http: the fits-cutout URL
    http_min_interval_s: float = 0.2  # = lensaudit.cutouts.http.DEFAULT_MIN_INTERVAL_S (a test pins them)
    http_global_rate_per_s: float = 0.0  # > 0: the service's rate over all machines (replaces http_min_interval_s)
    http_nodes: int = 0  # machines sharing http_global_rate_per_s; 0: from the Spark conf
    http_retry_budget_per_run: int = -1  # retries of all cutouts of one run; -1: no run-wide cap
    http_retries: int = 4  # retries per cutout
    http_timeout_s: float = 30.0
    http_layer: str = "ls-dr10"
    #: survey-bricks table (path or URL): a target in a brick without g, r and z data fails with
    #: ``brick_not_covered`` before any read or download (coadd and http sources)
    survey_bricks: str = ""

    def with_data(self, data) -> "CutoutSourceResource":
        """This source, or the one a data configuration (``lensaudit.data_config.DataConfig``)
        names instead when ``data`` is given (its ``cutouts`` and ``rate_limit``)."""
        if data is None:
            return self
        fields = {"kind": data.cutouts.kind, "location": data.cutouts.location, "http_layer": data.cutouts.layer,
                  "http_min_interval_s": self.http_min_interval_s, "survey_bricks": data.survey_bricks or ""}
        r = data.rate_limit
        if r is not None:
            fields.update(http_global_rate_per_s=r.global_requests_per_s, http_nodes=r.nodes or 0,
                          http_retry_budget_per_run=r.retry_budget_per_run, http_retries=r.retries_per_cutout,
                          http_timeout_s=r.timeout_s)
        return CutoutSourceResource(**fields)

    def spec(self, home: Path, profile, run_key: str = "", nodes_default: int | None = None) -> dict:
        """A JSON-able description that a Spark task turns into a source (``run_key``: the
        Dagster run id, which keys the run's retry budget; ``nodes_default``: the machines the
        Spark resource knows of, ``SparkResource.node_count()``, used when ``http_nodes`` is 0;
        with neither the Spark conf decides)."""
        if self.kind == "mock":
            sweeps = {f.stem + ".fits": str(f) for f in asset_files(home, "sweep_catalog")}
            truth = mock_sky_dirs(home)[1]
            if not truth.is_dir():
                raise dg.Failure("the mock cutout source needs the mock sky's truth tables; "
                                 "it only works with the mock sweeps (LENSAUDIT_SWEEPS=mock)")
            return {"kind": "mock", "mock_config": asdict(profile.mock), "sweep_parquet": sweeps, "truth_dir": str(truth)}
        if self.kind == "coadd":
            if not self.location:
                raise dg.Failure("coadd cutout source needs a location (LENSAUDIT_CUTOUT_LOCATION)")
            return {"kind": "coadd", "location": self.location, "survey_bricks": self.survey_bricks}
        if self.kind == "http":
            from lensaudit.cutouts.http import DEFAULT_BASE_URL

            if not self.http_min_interval_s >= 0:
                raise dg.Failure(f"http_min_interval_s must be >= 0, got {self.http_min_interval_s}")
            if not self.http_global_rate_per_s >= 0 or self.http_nodes < 0 or self.http_retries < 0 \
                    or self.http_retry_budget_per_run < -1 or not self.http_timeout_s > 0:
                raise dg.Failure("http settings out of range: http_global_rate_per_s >= 0, http_nodes >= 0, "
                                 "http_retries >= 0, http_retry_budget_per_run >= -1, http_timeout_s > 0")
            budget = self.http_retry_budget_per_run if self.http_retry_budget_per_run >= 0 and run_key else None
            return {"kind": "http", "location": self.location or DEFAULT_BASE_URL, "cache_dir": str(home / "http_cache"),
                    "min_interval_s": float(self.http_min_interval_s), "layer": self.http_layer,
                    "retries": int(self.http_retries), "timeout_s": float(self.http_timeout_s),
                    "global_rate_per_s": float(self.http_global_rate_per_s), "nodes": int(self.http_nodes) or nodes_default or None,
                    "retry_budget_per_run": budget, "run_key": run_key, "survey_bricks": self.survey_bricks}
        raise dg.Failure(f"unknown cutout source kind {self.kind!r} (mock, coadd, http)")
