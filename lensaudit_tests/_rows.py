"""Build small catalogue column dicts for cut tests: a base galaxy passing every N1 cut."""

from __future__ import annotations

import numpy as np

BASE = {
    "ra": 150.0, "dec": 2.0, "type": "DEV", "brick_primary": True, "maskbits": 0,
    "nobs_g": 4, "nobs_r": 4, "nobs_z": 4, "flux_g": 8.0, "flux_r": 12.0, "flux_z": 20.0,
    "mw_transmission_g": 1.0, "mw_transmission_r": 1.0, "mw_transmission_z": 1.0,
    "shape_r": 1.0, "shape_e1": 0.0, "shape_e2": 0.0, "sersic": 4.0,
}


def rows(*overrides: dict, spacing_deg: float = 0.05) -> dict[str, np.ndarray]:
    """One row per override dict, spread 3' apart in Dec unless ra/dec are given."""
    out = {k: [] for k in BASE}
    for i, o in enumerate(overrides):
        r = dict(BASE, dec=BASE["dec"] + i * spacing_deg)
        r.update(o)
        for k in BASE:
            out[k].append(r[k])
    return {k: np.array(v, dtype=object if k == "type" else None) for k, v in out.items()}
