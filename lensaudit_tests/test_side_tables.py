"""Every table a gate reads is an asset or a side table declared with the asset that writes it
(``lensaudit.tables.SIDE_TABLES``); the declaration reaches the Dagster definitions and the
materialisation metadata; an undeclared table is refused (issue 14)."""

from __future__ import annotations

import ast
import hashlib
import importlib
from pathlib import Path

import pandas as pd
import pytest

from lensaudit import store
from lensaudit.config import get_profile
from lensaudit.gates.gate_spec import StoreView, spec
from lensaudit.gates.registry import GATES
from lensaudit.gates.result import ERROR, GateResult
from lensaudit.tables import (ASSETS, SCHEMAS, SIDE_TABLES, UndeclaredTableError, readable_table, side_tables_of,
                              table_asset)

ROOT = Path(__file__).parent.parent
#: the modules whose code reads stored tables for the gates (the reader itself, gate_spec, excluded)
READERS = sorted(p for p in (ROOT / "lensaudit" / "gates").glob("*.py") if p.name != "gate_spec.py") \
    + [ROOT / "lensaudit" / "external_gates.py"]
#: call -> position of its table-name argument
TABLE_ARG = {"table": 0, "has": 0, "schema_gate": 0, "read_asset": 1, "read_table": 1, "asset_files": 1, "partition_file": 1,
             "asset_dir": 1}
DECLARED = set(ASSETS) | set(SIDE_TABLES)
#: the readers' own plumbing, passing on a name checked elsewhere (a gate's asset; AuditView's lookup)
PLUMBING = {"registry.py view.has(g.asset)", "external_gates.py asset_files(self.home, asset)"}


def _names_read(path: Path) -> tuple[set[str], list[str]]:
    """(table names, unresolved arguments) of every table-reading call in ``path``: a literal, a
    module-level constant of the module, or an item of a module-level dict of table names."""
    mod = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
    names, unresolved = set(), []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        i = TABLE_ARG.get(fn)
        if i is None or len(node.args) <= i:
            continue
        arg = node.args[i]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            names.add(arg.value)
        elif isinstance(arg, ast.Name) and isinstance(getattr(mod, arg.id, None), str):
            names.add(getattr(mod, arg.id))
        elif isinstance(arg, ast.Subscript) and isinstance(arg.value, ast.Name) \
                and isinstance(table_map := getattr(mod, arg.value.id, None), dict) \
                and all(isinstance(t, str) for t in table_map.values()):
            names |= set(table_map.values())  # a module-level {key: table name}: every name it can give
        elif f"{path.name} {ast.unparse(node)}" not in PLUMBING:
            unresolved.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return names, unresolved


def test_asset_names_are_the_graphs_and_side_tables_are_declared_once():
    from assets import ALL_ASSETS

    assert set(ASSETS) == {a.key.to_user_string() for a in ALL_ASSETS}
    from definitions import defs
    from lensaudit.tables import ASSET_DEPS

    graph = defs.resolve_asset_graph()
    assert {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
            for k in graph.get_all_asset_keys()} == {a: set(d) for a, d in ASSET_DEPS.items()}
    assert not set(SIDE_TABLES) & set(ASSETS)
    for t in SIDE_TABLES.values():
        assert t.asset in ASSETS and t.description, t
        if t.name in SCHEMAS:
            assert t.schema is SCHEMAS[t.name], t.name
    assert table_asset("fpr0.001") in SIDE_TABLES


def test_every_table_a_gate_reads_is_declared_statically():
    seen, unresolved = set(), []
    for p in READERS:
        n, u = _names_read(p)
        seen |= n
        unresolved += u
    # the selection/realism/provenance gates read these side tables: the scan must find them
    assert {"adversarial_scores", "completeness_injections", "injection_host_bins", "positives_unmatched",
            "training_manifest_shortfalls", "injection_realism_arc_noise", "failure_missed_injections",
            "training_manifest_excluded_positives"} <= seen
    seen |= {g.asset for g in GATES}
    assert seen <= DECLARED, f"undeclared tables read by gates: {sorted(seen - DECLARED)}"
    assert not unresolved, f"table names the scan cannot resolve (use a literal or a module constant): {unresolved}"


def _asked(monkeypatch) -> set[str]:
    """The asset folders the store is asked for from now on (every read goes through ``asset_dir``)."""
    asked: set[str] = set()
    real = store.asset_dir

    def recording(home, name):
        asked.add(name)
        return real(home, name)

    monkeypatch.setattr(store, "asset_dir", recording)
    return asked


def test_every_table_a_gate_reads_is_declared_when_evaluated(tmp_path, monkeypatch, lenscat_all):
    """Every gate evaluated on an empty home and on the fault suite's small home (where the
    gates get past their first read): each folder the store is asked for is declared."""
    from lensaudit_tests.faults import home as H

    small = H.build_home(tmp_path / "small", lenscat_all)
    asked = _asked(monkeypatch)
    empty = StoreView(tmp_path / "empty", get_profile("tiny"))
    for g in GATES:
        assert not g.evaluate(empty).passed, g.name  # nothing stored: no gate passes
    view = StoreView(small, get_profile(H.PROFILE))
    view.__dict__["lenscat_all"] = lenscat_all
    results = {g.name: g.evaluate(view) for g in GATES}
    assert not [n for n, r in results.items() if "UndeclaredTableError" in str(r.details.get("error", ""))]
    assert {"adversarial_scores", "completeness_injections", "injection_host_bins"} <= asked
    assert asked <= DECLARED, sorted(asked - DECLARED)


def test_reading_an_undeclared_table_is_refused_and_the_gate_cannot_be_computed(tmp_path):
    store.write_parquet_atomic(pd.DataFrame({"x": [1]}), store.partition_file(tmp_path, "stray_table", "data"))
    store.write_parquet_atomic(pd.DataFrame({"x": [1]}), store.partition_file(tmp_path, "positives_unmatched", "data"))
    view = StoreView(tmp_path, get_profile("tiny"))
    with pytest.raises(UndeclaredTableError, match="'stray_table' is neither an asset nor a side table declared"):
        view.table("stray_table")
    with pytest.raises(UndeclaredTableError):
        readable_table("../positives")

    def rows(table):
        return lambda v: GateResult("g", "positives", True, ERROR, float(len(v.table(table))), "")

    fault = spec("g", "positives", ERROR, True, "reads a stray table", rows("stray_table")).evaluate(view)
    assert not fault.passed and fault.metric is None
    assert "UndeclaredTableError" in fault.details["error"] and "SIDE_TABLES" in fault.details["error"]
    healthy = spec("g", "positives", ERROR, True, "reads a side table", rows("positives_unmatched")).evaluate(view)
    assert healthy.passed and healthy.metric == 1.0


def test_a_producer_cannot_write_an_undeclared_table(tmp_path):
    from lensaudit.selection.run import write_table

    with pytest.raises(UndeclaredTableError):
        write_table(pd.DataFrame({"x": [1]}), tmp_path, "completeness_scratch")
    assert write_table(pd.DataFrame({"x": [1]}), tmp_path, "completeness_brackets").is_file()


def test_definitions_and_materialisations_carry_the_side_tables(tmp_path):
    from assets import ALL_ASSETS
    from assets._wiring import side_table_files_metadata

    for a in ALL_ASSETS:
        for s in a.specs:
            key = s.key.to_user_string()
            want = [t.name for t in side_tables_of(key)]
            got = list(s.metadata["side_tables"].value) if "side_tables" in s.metadata else []
            assert got == want, key
    df = pd.DataFrame({"band": ["g", "r", "z"], "value": [0.1, -0.2, 0.3]})
    p = store.write_parquet_atomic(df, store.partition_file(tmp_path, "injection_realism_arc_noise", "data"))
    meta = side_table_files_metadata(tmp_path, "injection_realism")["side_table_files"].value
    assert meta == {"injection_realism_arc_noise": [
        {"path": str(p), "rows": 3, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}]}
    for key in ("sweep-000m005-010p000", "sweep-010m005-020p000"):
        store.write_parquet_atomic(df, store.partition_file(tmp_path, "negative_pool_filter_counts", key))
    one = side_table_files_metadata(tmp_path, "negative_pool", "sweep-010m005-020p000.fits")["side_table_files"].value
    assert [Path(f["path"]).name for f in one["negative_pool_filter_counts"]] == ["sweep-010m005-020p000.parquet"]
    assert side_table_files_metadata(tmp_path, "cutouts") == {}


def test_the_audit_folders_view_reads_through_the_same_door(tmp_path):
    from lensaudit.external_gates import gate_view

    home, out = tmp_path / "home", tmp_path / "out"
    store.write_parquet_atomic(pd.DataFrame({"x": [1, 2]}), store.partition_file(home, "injection_hosts", "data"))
    store.write_parquet_atomic(pd.DataFrame({"x": [3]}), store.partition_file(out, "adversarial_scores", "data"))
    store.write_parquet_atomic(pd.DataFrame({"x": [4]}), store.partition_file(home, "stray_table", "data"))
    view = gate_view(home, out, get_profile("tiny"), "my-finder")
    assert len(view.table("injection_hosts")) == 2 and len(view.table("adversarial_scores")) == 1
    assert view.has("injection_hosts") and not view.has("completeness_table")
    with pytest.raises(UndeclaredTableError):
        view.table("stray_table")


def test_every_reader_of_stored_tables_goes_through_read_table(tmp_path):
    """Outside the gates too (producers, the report, the summary, the assets): the only module that
    imports the store's name-blind ``read_asset`` is ``lensaudit.tables`` (its ``read_table`` checks the
    name), so an undeclared table read anywhere raises."""
    root = Path(__file__).parents[1]
    importers = []
    for folder in ("lensaudit", "lensaudit_cli", "assets", "resources"):
        for p in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module == "lensaudit.store" and \
                        any(a.name == "read_asset" for a in node.names):
                    importers.append(str(p.relative_to(root)))
                if isinstance(node, ast.Attribute) and node.attr == "read_asset":
                    importers.append(f"{p.relative_to(root)} (attribute)")
    assert importers == ["lensaudit/tables.py"], importers
    from lensaudit.tables import read_table

    store.write_parquet_atomic(pd.DataFrame({"x": [1]}), store.partition_file(tmp_path, "stray_table", "data"))
    with pytest.raises(UndeclaredTableError):
        read_table(tmp_path, "stray_table")
    store.write_parquet_atomic(pd.DataFrame({"x": [2]}), store.partition_file(tmp_path, "positives_unmatched", "data"))
    assert read_table(tmp_path, "positives_unmatched")["x"].tolist() == [2]
