"""Every gate's threshold as numbers (``GateResult.bound``), plotted beside its metric in the
asset check's metadata; a bound that disagrees with the gate's own decision is a bug that
fails the gate."""

import dagster as dg
import numpy as np
import pytest

from lensaudit.config import get_profile
from lensaudit.gates.adversarial_gates import synthetic_ring
from lensaudit.gates.gate_spec import StoreView, spec
from lensaudit.gates.realism_gates import snr_quantile_gates
from lensaudit.gates.result import ERROR, GateResult


def test_a_passing_gate_outside_its_bound_is_refused_and_fails(tmp_path):
    with pytest.raises(ValueError, match="outside its declared bound"):
        GateResult("g", "positives", True, ERROR, 0.1, "<= 0.05", bound=(None, 0.05))
    with pytest.raises(ValueError, match="interval"):
        GateResult("g", "positives", True, ERROR, 3.0, "[0.5, 2]", bound=(0.5, 2.0), interval=(2.5, 3.5))
    # failing outside, passing inside, and an interval that meets the bound are all consistent
    assert not GateResult("g", "positives", False, ERROR, 0.1, "", bound=(None, 0.05)).passed
    assert GateResult("g", "positives", True, ERROR, 2.4, "", bound=(0.5, 2.0), interval=(1.5, 3.0)).passed
    bad = spec("g", "positives", ERROR, True, "planted: passes above its bound",
               lambda v: GateResult("g", "positives", True, ERROR, 0.1, "<= 0.05", bound=(None, 0.05)))
    res = bad.evaluate(StoreView(tmp_path, get_profile("tiny")))
    assert not res.passed and "outside its declared bound" in res.details["error"]


def test_gates_carry_the_bound_their_decision_uses():
    rng = np.random.default_rng(0)
    host = rng.normal(-5, 1, 400)
    healthy = synthetic_ring(host, host + 0.01, threshold_logit=0.0)
    pushed = synthetic_ring(host, host + 10.0, threshold_logit=0.0)
    assert healthy.passed and not pushed.passed and healthy.bound == pushed.bound
    assert healthy.bound[0] is None and healthy.metric <= healthy.bound[1] < pushed.metric
    inj, real = rng.lognormal(0.5, 0.6, 400), rng.lognormal(0.5, 0.6, 60)
    med = next(r for r in snr_quantile_gates(inj, real) if r.name == "realism_arc_snr_median")
    assert med.passed and med.bound == (0.5, 2.0) and med.interval[0] <= med.metric <= med.interval[1]
    assert med.bound_text() == "[0.5, 2]" and healthy.bound_text().startswith("<= ")


def test_check_metadata_holds_the_numeric_threshold_and_the_plot(tmp_path):
    from assets._wiring import _check_result
    from lensaudit.gates.registry import GATES

    ring = next(g for g in GATES if g.name == "adversarial_synthetic_ring")
    rng = np.random.default_rng(1)
    host = rng.normal(-5, 1, 400)
    for res in (synthetic_ring(host, host + 0.01, 0.0), synthetic_ring(host, host + 10.0, 0.0)):
        out = _check_result(ring, res, tmp_path)
        assert isinstance(out, dg.AssetCheckResult) and out.passed == res.passed
        assert out.metadata["threshold_hi"].value == res.bound[1] and "threshold_lo" not in out.metadata
        assert out.metadata["metric"].value == pytest.approx(res.metric)
        assert out.metadata["metric_vs_threshold"].value.startswith("![adversarial_synthetic_ring metric vs threshold]"
                                                                   "(data:image/png;base64,")
