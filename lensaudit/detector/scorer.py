"""The scorer interface of the selection function: anything that turns raw stamps into logits.

The trained checkpoint is a plain ``torch.nn.Module`` fed through ``raw_robust`` by
``selection.inject.score_stamps``.  Any other detector is a ``RawScorer``: it receives the
*raw* stamps (N, 3, H, W) float32 nmgy per pixel in g, r, z on the compute device and
returns (N,) logits (natural log-odds of "lens"), doing its own band selection and
preprocessing (``lensaudit.detector.external``).  The offline mode for closed models uses two
more scorers (``lensaudit.selection.offline``): one records the stamps it is asked to
score, one returns the scores a group sent back.  Both need to know *which* stamp each
call holds, so every scoring call of the selection function is wrapped in
``scoring_stage(model, kind, ids)`` naming the rows, in order; for a plain module and for
an in-process external model this is a no-op.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch


class RawScorer:
    """Base class: ``score_raw(stamps) -> (N,) logits`` (a tensor; cast to float32 by
    ``score_stamps``), ``name`` (the folder its scores are stored under), ``crop`` (unused by
    the scorer itself; kept so the selection function's signatures stay the same)."""

    name: str = "external"
    crop: int = 0

    def score_raw(self, stamps: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    @contextlib.contextmanager
    def stage(self, kind: str, ids):
        yield


def scoring_stage(model, kind: str, ids):
    """The context in which ``model`` scores the rows ``ids`` (in order) of kind ``kind``."""
    if isinstance(model, RawScorer):
        return model.stage(kind, [str(i) for i in ids])
    return contextlib.nullcontext()


#: smallest and largest float64 probabilities the logit conversion keeps apart: p = 0 and
#: p = 1 map to finite logits without merging any two other float64 values
_P_LO = np.finfo(np.float64).tiny
_P_HI = 1.0 - 2.0 ** -53


def probability_to_logit(p) -> np.ndarray:
    """log(p / (1 - p)) in float64, p clipped to [tiny, 1 - 2^-53] (order preserving; ties
    stay ties): the one conversion used for in-process models and imported scores alike."""
    p = np.clip(np.asarray(p, dtype=np.float64), _P_LO, _P_HI)
    return np.log(p) - np.log1p(-p)
