"""No gate without a test that plants its fault (README "Gates that can fail")."""

import ast
from pathlib import Path

from lensaudit.gates.registry import GATES
from lensaudit_tests.gate_faults import FAULTS

HERE = Path(__file__).parent


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_gate_names_an_existing_planted_fault_test():
    names = [g.name for g in GATES]
    assert len(names) == len(set(names)), "a gate name is written twice"
    missing = sorted(set(names) - set(FAULTS))
    assert not missing, f"gates without a planted-fault test: {missing}"
    assert not sorted(set(FAULTS) - set(names)), "entries for gates that do not exist"
    for gate, (_, test) in FAULTS.items():
        file, func = test.split("::")
        assert func in _test_names(HERE / file), f"{gate}: {test} does not exist"


def test_readme_gate_table_is_current():
    from lensaudit_tests.gate_faults import markdown

    readme = (HERE.parent / "README.md").read_text()
    assert markdown() in readme, "README's gate table is stale: paste `python -m lensaudit_tests.gate_faults`"


def test_every_gate_is_an_asset_check_of_the_code_location():
    """The Dagster checks are derived from the registry: one multi-asset check per asset,
    every gate a check key with its blocking flag; nothing hand-listed can fall behind."""
    from assets import ALL_ASSETS, ALL_CHECKS

    assets = {a.key.to_user_string() for a in ALL_ASSETS}
    keys = {}
    for c in ALL_CHECKS:
        for spec in c.check_specs:
            keys[spec.name] = spec
    for g in GATES:
        assert g.asset in assets, g.name
        assert g.name in keys and keys[g.name].blocking == g.blocking, g.name
    assert len(keys) == len(GATES)
