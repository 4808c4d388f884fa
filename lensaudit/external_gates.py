"""The selection gates of an external detector's audit folder (``lensaudit.selection.external``).

The registry's gates of the selection family (assets ``injection_hosts`` and
``completeness_table``: hosts held out, the completeness table re-derived from the
injections at the threshold recomputed from the audited detector's own validation scores,
the adversarial gates) run on a ``StoreView`` that reads the audit folder first and the
home for the inputs, with the audited detector's name as the profile's audit architecture.
Used by ``lensaudit audit-model``, ``import-scores`` and ``gates --home <audit folder>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from lensaudit.config import Profile
from lensaudit.gates.gate_spec import StoreView
from lensaudit.store import asset_files, read_asset

#: the assets whose gates judge an audited detector (the selection family of the registry)
SELECTION_GATE_ASSETS = ("injection_hosts", "completeness_table")


@dataclass
class AuditView(StoreView):
    """A ``StoreView`` of an audit folder that falls back to the home for the inputs."""

    source: Path | None = field(default=None)

    def _where(self, asset: str) -> Path:
        return self.home if asset_files(self.home, asset) or self.source is None else self.source

    def has(self, asset: str) -> bool:
        return bool(asset_files(self._where(asset), asset))

    def table(self, asset: str) -> pd.DataFrame:
        return self.memo(f"table:{asset}", lambda: read_asset(self._where(asset), asset))


def audit_profile(profile: Profile, name: str) -> Profile:
    """The profile with the audited detector's name as the audit architecture (the gates read
    its validation scores)."""
    return replace(profile, detector=replace(profile.detector, audit_arch=name))


def gate_view(home: Path, out: Path, profile: Profile, name: str) -> AuditView:
    return AuditView(Path(out), audit_profile(profile, name), source=Path(home))


def selection_gates():
    from lensaudit.gates.registry import GATES

    return [g for g in GATES if g.asset in SELECTION_GATE_ASSETS]


def evaluate_selection_gates(view: StoreView) -> list:
    """[GateResult] of ``selection_gates()`` on ``view``; a gate that raises becomes a failed
    result naming the error (as ``lensaudit gates`` does)."""
    from lensaudit.gates.result import cannot_compute

    out = []
    for g in selection_gates():
        try:
            out.append(g.evaluate(view))
        except Exception as exc:  # noqa: BLE001 - one broken artefact must not hide the other gates
            out.append(cannot_compute(g.name, g.asset, g.severity, f"{type(exc).__name__}: {str(exc)[:300]}"))
    return out
