"""Realism gates: injected arcs vs real lenses (DESIGN s3; reference/001 acceptance).

- annulus S/N (combined) median, p10 and p90: injected / real within [0.5, 2];
- median annulus g-r and r-z: |injected - real| <= 0.2 mag;
- background (outer ring) of injected vs plain hosts: two-sample KS p > 0.05 per band.
All blocking (ERROR): completeness is not trusted without them.
"""

from __future__ import annotations

import numpy as np

from lensaudit.gates.result import ERROR, GateResult, cannot_compute

ASSET = "injection_realism"


def snr_quantile_gates(inj_snr: np.ndarray, real_snr: np.ndarray, lo: float = 0.5, hi: float = 2.0,
                       min_n: int = 5) -> list[GateResult]:
    out = []
    inj = np.asarray(inj_snr)[np.isfinite(inj_snr)]
    real = np.asarray(real_snr)[np.isfinite(real_snr)]
    for name, q in (("median", 50), ("p10", 10), ("p90", 90)):
        gname = f"realism_arc_snr_{name}"
        if len(inj) < min_n or len(real) < min_n:
            out.append(cannot_compute(gname, ASSET, ERROR, f"need >= {min_n} finite values (injected {len(inj)}, real {len(real)})",
                                      f"ratio in [{lo}, {hi}]"))
            continue
        a, b = np.percentile(inj, q), np.percentile(real, q)
        ratio = a / b if b > 0 else np.inf
        out.append(GateResult(gname, ASSET, bool(lo <= ratio <= hi), ERROR, float(ratio), f"ratio in [{lo}, {hi}]",
                              {"injected": float(a), "real": float(b), "n_injected": int(len(inj)), "n_real": int(len(real))}))
    return out


def colour_gates(inj: dict, real: dict, tol_mag: float = 0.2, min_n: int = 5) -> list[GateResult]:
    out = []
    for key in ("colour_g_r", "colour_r_z"):
        gname = f"realism_{key}"
        a = np.asarray(inj[key])[np.isfinite(inj[key])]
        b = np.asarray(real[key])[np.isfinite(real[key])]
        if len(a) < min_n or len(b) < min_n:
            out.append(cannot_compute(gname, ASSET, ERROR, f"need >= {min_n} finite colours", f"|delta| <= {tol_mag}"))
            continue
        d = float(np.median(a) - np.median(b))
        out.append(GateResult(gname, ASSET, abs(d) <= tol_mag, ERROR, d, f"|delta median| <= {tol_mag} mag",
                              {"injected_median": float(np.median(a)), "real_median": float(np.median(b))}))
    return out


def background_ks_gates(injected_bg: np.ndarray, plain_bg: np.ndarray, p_min: float = 0.05) -> list[GateResult]:
    """injected_bg, plain_bg: (3, n) outer-ring pixels pooled over stamps."""
    from scipy.stats import ks_2samp

    out = []
    for i, b in enumerate("grz"):
        gname = f"realism_background_ks_{b}"
        x, y = injected_bg[i][np.isfinite(injected_bg[i])], plain_bg[i][np.isfinite(plain_bg[i])]
        if len(x) < 100 or len(y) < 100:
            out.append(cannot_compute(gname, ASSET, ERROR, "fewer than 100 background pixels", f"p > {p_min}"))
            continue
        res = ks_2samp(x, y)
        out.append(GateResult(gname, ASSET, bool(res.pvalue > p_min), ERROR, float(res.pvalue), f"KS p > {p_min}",
                              {"statistic": float(res.statistic), "n": int(len(x))}))
    return out
