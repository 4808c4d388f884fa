"""The permanent fault suite (issue 15): every catalogued fault is caught by a named gate
(ERROR, blocking) or a named test, and the meta-test checks the catalogue is complete.

Stored-data faults are planted into a copy of the small home of ``faults/home.py`` (built
once per session, about a second); code faults swap a function's code for a faulty twin and
run the named tests in this process (each first passes healthy, then fails under the
fault).  See ``faults/catalogue.py``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from lensaudit.config import get_profile
from lensaudit.gates.gate_spec import StoreView
from lensaudit.gates.registry import GATES
from lensaudit_tests.faults import home as H
from lensaudit_tests.faults.catalogue import CATALOGUE, CODE, STORED, Fault

TESTS = Path(__file__).resolve().parents[1]
BY_NAME = {g.name: g for g in GATES}


@pytest.fixture(scope="session")
def small_home(tmp_path_factory, lenscat_all):
    return H.build_home(tmp_path_factory.mktemp("fault_home") / "home", lenscat_all)


def _gates(home: Path, names, lenscat) -> dict:
    view = StoreView(home, get_profile(H.PROFILE))
    view.__dict__["lenscat_all"] = lenscat  # the session's lenscat (StoreView caches the same table)
    return {n: BY_NAME[n].evaluate(view) for n in names}


def _copy(small_home, tmp_path) -> Path:
    return H.copy_home(small_home, tmp_path / "home")


def _stored_gates() -> list[str]:
    return sorted({g for f in STORED for g in f.gates} | {g for f in CODE for g in f.gates})


def test_small_home_is_green_on_every_gate_the_suite_plants_into(small_home, lenscat_all):
    res = _gates(small_home, _stored_gates(), lenscat_all)
    assert all(r.passed for r in res.values()), {n: r.details for n, r in res.items() if not r.passed}


@pytest.mark.parametrize("fault", STORED, ids=lambda f: f.name)
def test_stored_fault_turns_its_gate_red(fault: Fault, small_home, tmp_path, lenscat_all):
    home = _copy(small_home, tmp_path)
    fault.plant(home)
    res = _gates(home, fault.gates, lenscat_all)
    green = [n for n, r in res.items() if r.passed]
    assert not green, f"{fault.name}: {green} stayed green"


def _swap_code(monkeypatch, target: str, twin) -> None:
    mod_name, attr = target.split(":")
    obj = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    assert obj.__code__.co_freevars == twin.__code__.co_freevars, target
    monkeypatch.setattr(obj, "__code__", twin.__code__)


def _test_function(node: str):
    file, func = node.split("::")
    module = importlib.import_module(Path(file).stem)  # lensaudit_tests/ is on sys.path (rootdir conftest)
    return getattr(module, func)


def _call(fn, request, tmp_path_factory) -> None:
    kwargs = {}
    for name in inspect.signature(fn).parameters:
        kwargs[name] = tmp_path_factory.mktemp("catcher") if name == "tmp_path" else request.getfixturevalue(name)
    fn(**kwargs)


def _fails(fn, request, tmp_path_factory) -> bool:
    try:
        _call(fn, request, tmp_path_factory)
    except pytest.skip.Exception:
        raise
    except (Exception, pytest.fail.Exception):
        return True
    return False


@pytest.mark.parametrize("fault", CODE, ids=lambda f: f.name)
def test_code_fault_fails_its_tests_and_gates(fault: Fault, monkeypatch, request, tmp_path_factory, small_home,
                                              tmp_path, lenscat_all):
    catchers = [(node, _test_function(node)) for node in fault.tests]
    for node, fn in catchers:
        assert not _fails(fn, request, tmp_path_factory), f"{node} fails without the fault"
    home = _copy(small_home, tmp_path) if fault.produce else None
    _swap_code(monkeypatch, fault.target, fault.plant)
    missed = [node for node, fn in catchers if not _fails(fn, request, tmp_path_factory)]
    if home is not None:
        fault.produce(home)
        missed += [n for n, r in _gates(home, fault.gates, lenscat_all).items() if r.passed]
    assert not missed, f"{fault.name} is not caught by {missed}"


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_catalogued_fault_names_an_existing_catcher():
    """The meta-test: each fault is caught by at least one ERROR blocking gate or one test that
    exists; stored and code faults are run above (their ids are the catalogue's), the rest
    name the test that plants them."""
    names = [f.name for f in CATALOGUE]
    assert len(names) == len(set(names))
    for f in CATALOGUE:
        assert f.kind in ("stored", "code", "planted_elsewhere"), f.name
        assert f.gates or f.tests, f"{f.name} names no catcher"
        for g in f.gates:
            assert g in BY_NAME, f"{f.name}: no gate {g}"
            assert BY_NAME[g].severity == "ERROR", f"{f.name}: {g} only warns"
        for node in f.tests:
            file, func = node.split("::")
            assert func in _test_names(TESTS / file), f"{f.name}: {node} does not exist"
        if f.kind == "stored":
            assert f.gates and f.plant is not None, f.name
        if f.kind == "code":
            assert f.tests and f.plant is not None and f.target, f.name
            assert not f.gates or f.produce is not None, f"{f.name}: gates named without a producer to run"
        if f.kind == "planted_elsewhere":
            assert f.tests, f"{f.name}: name the test that plants it"
    # every new integrity gate is exercised by a planted fault here
    planted = {g for f in STORED + CODE for g in f.gates}
    for g in ("training_manifest_negatives_satisfy_cuts", "training_manifest_negatives_far_from_known_lenses",
              "completeness_injections_provenance", "failure_missed_injections_provenance",
              "injection_realism_hosts_provenance"):
        assert g in planted, g
