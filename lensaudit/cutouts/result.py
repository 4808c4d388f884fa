"""What a cutout source returns: an array, or a failure with a reason."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np



@dataclass
class Cutout:
    ok: bool
    bands: str
    data: np.ndarray | None = None  # (C, H, W) float32, nmgy per pixel, channel order = bands
    reason: str = ""
    meta: dict = field(default_factory=dict)

    @classmethod
    def failure(cls, bands: str, reason: str, **meta) -> "Cutout":
        return cls(False, bands, None, reason, dict(meta))
