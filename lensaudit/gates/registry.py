"""Every gate, bound to the stored assets it judges.

``GATES`` is the single list that both the Dagster asset checks (``assets/_wiring``, one
multi-asset check per asset) and the ``lensaudit gates`` command evaluate, so a gate is
written once.  Each gate family declares its own gates in its ``specs()`` (name, asset,
severity, blocking, description and function written once, in the family module); this
module only concatenates them.  The gate type and the stored-data view are in
``lensaudit.gates.gate_spec``.
"""

from __future__ import annotations

from lensaudit.gates import (adversarial_gates, bracket_gates, data_gates, integrity_gates, model_gates, parity_gates,
                             realism_gates, selection_gates, shortcut_gates)
from lensaudit.gates.gate_spec import GateSpec, StoreView
from lensaudit.gates.result import GateResult

#: the families in the order ``lensaudit gates``, the README table and the UI list them
FAMILIES = (data_gates, shortcut_gates, realism_gates, model_gates, selection_gates, bracket_gates, adversarial_gates,
            parity_gates, integrity_gates)

GATES: list[GateSpec] = [g for family in FAMILIES for g in family.specs()]

__all__ = ["FAMILIES", "GATES", "GateSpec", "StoreView", "evaluate_all", "gates_for"]


def gates_for(asset: str) -> list[GateSpec]:
    return [g for g in GATES if g.asset == asset]


def evaluate_all(view: StoreView) -> list[tuple[GateSpec, GateResult | None]]:
    """Evaluate every gate whose asset is stored; None for assets never materialised."""
    return [(g, g.evaluate(view) if view.has(g.asset) else None) for g in GATES]
