"""``lensaudit inject``: noise-free arcs on zero hosts from a JSON parameter list."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lensaudit.injection.params import InvalidParameters, validate_rows


def inject_to_npz(params_path: str | Path, out_path: str | Path, device: str = "cpu") -> int:
    """Render every row of PARAMS.json and write OUT.npz (images float32 (N,3,101,101) in
    nmgy/pixel, g,r,z; magnification (N,)).  Returns the number of rows."""
    import torch

    from lensaudit.injection.render import render_arcs
    from lensaudit.store import atomic_path

    try:
        rows = json.loads(Path(params_path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidParameters(f"cannot read {params_path}: {exc}") from exc
    cols = validate_rows(rows)
    res = render_arcs(cols, device=device, dtype=torch.float64)
    out = Path(out_path)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, images=res.images.cpu().numpy().astype(np.float32),
                     magnification=res.magnification.cpu().numpy().astype(np.float64),
                     bands=np.array(["g", "r", "z"]), pixscale_arcsec=np.float64(0.262))
    return len(rows)
