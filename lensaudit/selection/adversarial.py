"""Adversarial tests of the frozen detector (DESIGN s3 "Adversarial gates").

* null injection: the full injection path with the arc flux set to zero; the scores must
  be distributed as the plain hosts' (two-sample KS p > 0.05);
* synthetic ring: a Gaussian ring (radius 15 px, sigma 1.5 px, peak 0.01 nmgy per pixel in
  every band; no lensing physics) added to the hosts; the fraction of hosts below the
  threshold that it pushes above must be <= 5 %;
* arc suppression: real test-split lenses with the annulus 4 <= r < 16 px replaced by its
  azimuthal median (``lensaudit.stamps``); the mean logit must drop;
* monotonicity: Spearman rho of logit vs theta_E and vs the injected stamps' combined
  annulus S/N, over all injections, must be > 0.
The measurements live here; the pass/fail rules in ``lensaudit.gates.adversarial_gates``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from lensaudit.injection.realism import ANNULUS_PX
from lensaudit.selection.grid import THETA_E
from lensaudit.selection.inject import draw_parameters, score_stamps
from lensaudit.stamps import azimuthal_median, radius_map
from lensaudit.survey.instrument import STAMP_PIX

RING_RADIUS_PX = 15.0
RING_SIGMA_PX = 1.5
RING_AMPLITUDE_NMGY = 0.01


def null_control_plan(hosts: pd.DataFrame, max_hosts: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(hosts, parameters) of the null controls: the first ``max_hosts`` rows of ``hosts`` (the
    injection hosts in galaxy_id order), theta_E bins cycling over the grid (the whole prior),
    prior draws of ``draw_parameters`` seeded by ``seed``.  Row i's parameters depend on the
    rows before it, so a gate re-deriving a sample calls this for the whole plan."""
    sub = hosts.iloc[:min(len(hosts), max_hosts)].reset_index(drop=True)
    plan = pd.DataFrame({"injection_id": [f"null-{g}" for g in sub["galaxy_id"]], "galaxy_id": sub["galaxy_id"],
                         "theta_e_bin": np.arange(len(sub)) % THETA_E.n})
    return sub, draw_parameters(plan, sub, seed)


def ring_image(size: int = STAMP_PIX) -> np.ndarray:
    r = radius_map(size)
    ring = RING_AMPLITUDE_NMGY * np.exp(-0.5 * ((r - RING_RADIUS_PX) / RING_SIGMA_PX) ** 2)
    return np.repeat(ring[None], 3, axis=0).astype(np.float32)


def suppress_annulus(stamps: np.ndarray) -> np.ndarray:
    """Copies of (N, 3, H, W) stamps with 4 <= r < 16 px replaced by the ring medians."""
    out = np.array(stamps, dtype=np.float32, copy=True)
    r = radius_map(stamps.shape[-1])
    ann = (r >= ANNULUS_PX[0]) & (r < ANNULUS_PX[1])
    for i in range(len(out)):
        med = azimuthal_median(out[i], r)
        out[i][:, ann] = med[:, ann]
    return out


def score_batches_on_device(model, stamps, crop: int, device: str, chunk: int = 1024,
                            compiled: bool = False, bf16: bool = False) -> torch.Tensor:
    """Logits of raw stamps (numpy, or a tensor on any device) in chunks, via ``score_stamps``
    (``compiled`` / ``bf16``: its options), as one float64 tensor on ``device`` (no host transfer)."""
    x = torch.as_tensor(stamps)
    out = [score_stamps(model, x[s:s + chunk].to(device), crop, device, compiled=compiled, bf16=bf16)
           for s in range(0, len(x), chunk)]
    return torch.cat(out).double() if out else torch.zeros(0, dtype=torch.float64, device=device)


def score_batches(model, stamps, crop: int, device: str, chunk: int = 1024) -> np.ndarray:
    """``score_batches_on_device`` on the host (float64 numpy)."""
    return score_batches_on_device(model, stamps, crop, device, chunk).cpu().numpy()


def ring_scores(model, host_stamps: torch.Tensor, crop: int, device: str) -> np.ndarray:
    ring = torch.from_numpy(ring_image(host_stamps.shape[-1])).to(host_stamps.device)
    return score_batches(model, host_stamps + ring, crop, device)
