"""The README's asset table is generated from the code location (``lensaudit_tests.asset_table``)."""

from pathlib import Path

from lensaudit.gates.registry import GATES
from lensaudit_tests.asset_table import markdown

README = Path(__file__).parent.parent / "README.md"


def test_readme_asset_table_is_current():
    assert markdown() in README.read_text(), \
        "README's asset table is stale: paste `python -m lensaudit_tests.asset_table`"


def test_every_asset_has_a_description_and_every_gate_its_row():
    from assets import ALL_ASSETS

    rows = {line.split("|")[1].strip().strip("`"): line for line in markdown().splitlines()[2:]}
    assert set(rows) == {a.key.to_user_string() for a in ALL_ASSETS}
    assert "(missing)" not in markdown(), "an asset without description="
    for g in GATES:
        assert f"`{g.name}`" in rows[g.asset].split("|")[6], g.name


def test_descriptions_follow_the_spec_and_the_producer_constants():
    """Numbers in the descriptions are formatted from the code, so the table moves with it."""
    from lensaudit.selection.grid import N_CELLS
    from lensaudit.spec import DATA
    from lensaudit.splits import SPLIT_NSIDE
    from lensaudit.survey.instrument import STAMP_PIX

    table = markdown()
    for text in (f"{DATA.negatives_per_positive} negatives per positive", f"fraction {DATA.n2_fraction:g}",
                 f"within {DATA.match_radius_arcsec:g}\"", f"nside {SPLIT_NSIDE}", f"{STAMP_PIX}x{STAMP_PIX}",
                 f"over {N_CELLS} cells"):
        assert text in table, text


def test_a_stale_number_or_a_changed_spec_turns_the_readme_check_red(monkeypatch):
    """Planted faults: a README whose table kept an old number, and a spec value changed in
    ``lensaudit/spec.py`` only (the description follows it, so the README no longer matches)."""
    import dataclasses
    import importlib.util

    import assets.manifest
    import lensaudit.spec
    from lensaudit.spec import DATA

    readme = README.read_text()
    table = markdown()
    stale = f"{DATA.negatives_per_positive} negatives per positive"
    assert stale in table
    assert table not in readme.replace(stale, f"{DATA.negatives_per_positive // 2} negatives per positive")

    # a fresh copy of the asset module, imported under the edited spec (assets.manifest itself untouched)
    monkeypatch.setattr(lensaudit.spec, "DATA", dataclasses.replace(DATA, negatives_per_positive=37))
    copy = importlib.util.module_from_spec(importlib.util.spec_from_file_location("_manifest_copy",
                                                                                   assets.manifest.__file__))
    copy.__spec__.loader.exec_module(copy)
    text = next(iter(copy.training_manifest.specs)).description
    assert "37 negatives per positive" in text and text not in readme
