"""``lensaudit inject``: noise-free arcs on zero hosts from a JSON parameter list.

Anticipated bad input ends in ``InvalidParameters`` (the CLI prints it and exits 1) with
nothing written: a PARAMS file over ``MAX_PARAMS_BYTES`` (refused before reading), bad
JSON, a row out of range (the message names row and key), more than ``MAX_ROWS`` rows, a
render that is not finite everywhere (no inf/NaN pixel is ever written), an unusable
device or an unwritable output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lensaudit.injection.params import MAX_PARAMS_BYTES, InvalidParameters, check_renderable, validate_rows
from lensaudit.survey.instrument import BANDS, PIXSCALE_ARCSEC


def inject_to_npz(params_path: str | Path, out_path: str | Path, device: str = "cpu") -> int:
    """Render every row of PARAMS.json and write OUT.npz (images float32 (N,3,101,101) in
    nmgy/pixel, g,r,z; magnification (N,)).  Returns the number of rows."""
    import torch

    from lensaudit.injection.render import render_arcs
    from lensaudit.store import atomic_path

    try:
        size = Path(params_path).stat().st_size
        if size > MAX_PARAMS_BYTES:
            raise InvalidParameters(f"{params_path} is {size} bytes: at most {MAX_PARAMS_BYTES} (split the list)")
        rows = json.loads(Path(params_path).read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, InvalidParameters):
            raise
        raise InvalidParameters(f"cannot read {params_path}: {type(exc).__name__}: {exc}") from exc
    cols = validate_rows(rows)
    check_renderable(cols)
    try:
        res = render_arcs(cols, device=device, dtype=torch.float64)
    except (ValueError, RuntimeError) as exc:  # a PSF kernel wider than the stamp, an unusable device
        raise InvalidParameters(f"cannot render: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    images = res.images.cpu().numpy().astype(np.float32)
    magnification = res.magnification.cpu().numpy().astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(images).all(axis=(1, 2, 3)) | ~np.isfinite(magnification))
    if len(bad):
        raise InvalidParameters(f"rows {bad[:10].tolist()} render non-finite pixels (or overflow float32); nothing "
                                f"written")
    out = Path(out_path)
    try:
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, images=images, magnification=magnification,
                         bands=np.array(list(BANDS)), pixscale_arcsec=np.float64(PIXSCALE_ARCSEC))
    except OSError as exc:
        raise InvalidParameters(f"cannot write {out}: {exc}") from exc
    return len(rows)
