"""The UI's "Materialize all" (an asset backfill of every asset, all partitions) on the real
code location: every asset is targeted and each one is requested only after its parents.

The backfill daemon's own iteration (``dagster._core.execution.asset_backfill``, private API
of the pinned dagster 1.13) is driven with every requested run reported successful, so the
waves below are exactly what the daemon would launch.  It runs on a remote asset graph built
from ``defs`` as the daemon sees it."""

import logging
import time

import dagster as dg
import pytest
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.assets.graph.remote_asset_graph import RemoteWorkspaceAssetGraph
from dagster._core.execution import asset_backfill as ab
from dagster._core.test_utils import mock_workspace_from_repos
from dagster._time import get_current_datetime

from assets import ALL_ASSETS
from assets.detector import ARCH_PARTITIONS_NAME
from assets.sweeps import SWEEP_PARTITIONS_NAME
from lensaudit.config import get_profile
from resources.sweeps import discover_sweep_partitions

N_ASSETS = 15


def _remote_graph(defs: dg.Definitions) -> RemoteWorkspaceAssetGraph:
    return RemoteWorkspaceAssetGraph.build(mock_workspace_from_repos([defs.get_repository_def()]))


def simulate_materialize_all(defs: dg.Definitions, monkeypatch, max_iterations: int = 30, profile: str = "demo"):
    """Waves of run requests of an all-assets, all-partitions backfill; (waves, target, requested)."""
    instance = dg.DagsterInstance.ephemeral()
    # the partitions are dynamic: the discovery sensor has added the mock sky's files, the architecture
    # sensor the profile's architectures
    instance.add_dynamic_partitions(SWEEP_PARTITIONS_NAME, discover_sweep_partitions("mock"))
    instance.add_dynamic_partitions(ARCH_PARTITIONS_NAME, list(get_profile(profile).detector.archs))
    graph = _remote_graph(defs)
    keys = sorted(dg.AssetSelection.all().resolve(graph))
    now = time.time()
    data = ab.AssetBackfillData.from_asset_partitions(
        asset_graph=graph, partition_names=None, asset_selection=keys, dynamic_partitions_store=instance,
        backfill_start_timestamp=now, all_partitions=True)
    done = {"subset": ab.AssetGraphSubset()}
    # every run the backfill requests succeeds: what it requested is what is materialised
    monkeypatch.setattr(ab, "get_asset_backfill_iteration_materialized_subset", lambda *a, **k: done["subset"])
    monkeypatch.setattr(ab, "_get_failed_asset_graph_subset", lambda *a, **k: ab.AssetGraphSubset())
    waves = []
    for _ in range(max_iterations):
        view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                              instance=instance, asset_graph=graph)
        res = ab.execute_asset_backfill_iteration_inner("bf", data, view, now, logging.getLogger(__name__), None)
        requested = ab._get_requested_asset_graph_subset_from_run_requests(res.run_requests, view)
        data = res.backfill_data.replace_requested_subset(data.requested_subset | requested)
        if res.run_requests:
            waves.append(res.run_requests)
        done["subset"] = data.requested_subset
        if data.requested_subset == data.target_subset:
            break
    return waves, data.target_subset, data.requested_subset, graph


def _runs_of_each_asset(waves) -> dict[str, list[tuple[int, int]]]:
    """asset -> [(wave, run index in the wave)] of the runs that materialise it."""
    out: dict[str, list[tuple[int, int]]] = {}
    for i, wave in enumerate(waves):
        for j, rr in enumerate(wave):
            for k in rr.asset_selection:
                out.setdefault(k.to_user_string(), []).append((i, j))
    return out


@pytest.fixture(scope="module")
def defs():
    from definitions import defs as d

    return d


def test_materialize_all_targets_every_asset_after_its_parents(defs, monkeypatch):
    waves, target, requested, graph = simulate_materialize_all(defs, monkeypatch)
    assert len(target.asset_keys) == N_ASSETS
    assert requested == target, "the backfill never requests part of its target"
    runs = _runs_of_each_asset(waves)
    assert sorted(runs) == sorted(a.key.to_user_string() for a in ALL_ASSETS)
    for key in graph.get_all_asset_keys():
        name = key.to_user_string()
        for parent in graph.get(key).parent_keys:
            for wave, run in runs[name]:
                # a parent comes from a run of an earlier wave, or from the same run (whose
                # execution plan orders its steps by dependency); never from a concurrent run
                ok = all(pw < wave or (pw, pr) == (wave, run) for pw, pr in runs[parent.to_user_string()])
                assert ok, f"{name} (wave {wave}) is not after its parent {parent.to_user_string()}: {runs}"
    # the roots, and only they, start the backfill
    assert {k.to_user_string() for rr in waves[0] for k in rr.asset_selection} == {"lens_catalog", "sweep_catalog"}
    # single-run backfill policy: all sweep partitions of a sweep-partitioned asset in one run
    sweep_runs = [rr for w in waves for rr in w if dg.AssetKey("sweep_catalog") in rr.asset_selection]
    sweeps = discover_sweep_partitions("mock")
    assert len(sweep_runs) == 1 and (sweep_runs[0].tags["dagster/asset_partition_range_start"],
                                     sweep_runs[0].tags["dagster/asset_partition_range_end"]) == (sweeps[0], sweeps[-1])
    # one detector run per architecture of the profile, after all the cutouts: the runs `lensaudit materialize` plans
    det = [rr.partition_key for w in waves for rr in w if dg.AssetKey("detector") in rr.asset_selection]
    from lensaudit_cli.main import plan_runs

    cli = [t["dagster/partition"] for _, t in plan_runs(defs, set(target.asset_keys), "demo", (sweeps[0], sweeps[-1]))
           if "dagster/partition" in t]
    assert sorted(det) == sorted(cli) == sorted(get_profile("demo").detector.archs)


def test_every_partitions_crossing_has_an_explicit_mapping(defs):
    """Between two different partitions definitions Dagster's default maps keys by identity,
    which finds no parents: each such dependency must name its mapping."""
    graph = defs.resolve_asset_graph()
    crossings = []
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        for parent in node.parent_keys:
            p = graph.get(parent)
            if node.partitions_def is not None and p.partitions_def is not None and node.partitions_def != p.partitions_def:
                crossings.append((key.to_user_string(), parent.to_user_string()))
                assert node.partition_mappings.get(parent) is not None, f"{key} <- {parent} has no partition mapping"
    assert ("detector", "cutouts") in crossings


def test_without_the_mapping_the_backfill_breaks(defs, monkeypatch):
    """The planted fault: ``detector`` depending on ``cutouts`` with the default mapping."""
    from assets.cutouts import cutouts

    broken = [a.map_asset_specs(lambda s: s.replace_attributes(deps=[dg.AssetDep(cutouts)]))
              if a.key == dg.AssetKey("detector") else a for a in ALL_ASSETS]
    bad_defs = dg.Definitions(assets=broken, resources=defs.resources)
    with pytest.raises(dg.DagsterInvariantViolationError, match="non-existent partitions"):
        simulate_materialize_all(bad_defs, monkeypatch)
