"""Inject arcs into real hosts and score them with the frozen detector, batched in torch.

Per injection: the default prior's lens and source (``lensaudit.injection.prior``) with
theta_E drawn uniformly inside its grid cell; the arc is
rendered with the host's own per-band PSF FWHM (Moffat beta 3.5; the host is never
re-convolved) or, with ``psf_model = "psfex"``, with real PSFEx PSFs chosen per host
(``selection.psfex_psfs``), dimmed by the host's Milky Way transmission (``survey.photometry.mw_transmission``
of the host's E(B-V): the prior's magnitudes are extinction-free), given the Poisson-like noise implied by the host's depth
(``lensaudit.injection.realism``: sigma_pix from psfdepth, sky from SKY_MAG_PER_ARCSEC2),
added to the host stamp, normalised by the *training* ``raw_robust`` and scored by the
frozen model.  Everything after the host read runs on the compute device.
Reported per injection: all parameters, magnification, the annulus S/N per band of the
injected signal against the host's noise (``annulus.annulus_snr``), the arc's matched-filter
S/N per band and combined (``visibility.matched_snr``: the noiseless arc against the host's
measured noise, with the host's correlated-noise factor), the logit.
*Null controls* (``null=True``): the same path with the arc's noise added but not the arc,
so a control is never bit-identical to its host (DESIGN s3 "Adversarial gates").
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from lensaudit.detector.graphs import graphed_forward, replay_rows
from lensaudit.detector.preprocess import raw_robust
from lensaudit.detector.scorer import RawScorer
from lensaudit.device_upload import to_device
from lensaudit.injection.prior import draw_clumps, draw_source_and_lens, injection_seed
from lensaudit.injection.psf import kernel_half_width, moffat_kernels
from lensaudit.injection.realism import sky_nmgy_per_pixel
from lensaudit.injection.render import render_arcs
from lensaudit.injection.annulus import AnnulusFinite, annulus_snr, outer_sigma
from lensaudit.injection.visibility import (matched_energy, matched_energy_of_terms, noise_correlation_factor,
                                            snr_from_matched_energy)
from lensaudit.selection import fused_add
from lensaudit.selection.psfex_psfs import PsfexPsfs, sigma_pix_from_kernels
from lensaudit.survey.photometry import mw_transmission
from lensaudit.selection.grid import THETA_E, cells
from lensaudit.survey.instrument import BANDS, MOFFAT_BETA, MOFFAT_BETA_BRACKETS, PIXSCALE_ARCSEC



def _host_keys(ids: np.ndarray, seed: int) -> np.ndarray:
    """(N,) uint64: the first 8 bytes of sha256("<galaxy_id>:<seed>") of each host (big-endian), once per host."""
    digests = b"".join([hashlib.sha256(f"{g}:{seed}".encode()).digest()[:8] for g in ids])
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def _cell_orders(host_keys: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """(len(cell), N): row i is a seeded hash order of the hosts for cell ``cell[i]``:
    splitmix64(host key ^ (cell + 1) x golden ratio), stably sorted (one sha256 per host, not
    per host and cell; the cells of a bin sorted together, row by row)."""
    with np.errstate(over="ignore"):
        z = host_keys[None, :] ^ ((np.asarray(cell, dtype=np.uint64) + np.uint64(1))
                                  * np.uint64(0x9E3779B97F4A7C15))[:, None]
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return np.argsort(z, axis=1, kind="stable")


def _planned_cells(hosts: pd.DataFrame) -> tuple[pd.DataFrame, dict[tuple[int, int], np.ndarray]]:
    """(the grid's cells whose (PSF, depth) bin holds a host, in grid order; {(psf_bin, depth_bin):
    the bin's galaxy_ids in host-table order})."""
    grid = cells()
    usable = hosts[(hosts["psf_bin"] >= 0) & (hosts["depth_bin"] >= 0)]
    by_bin = {(int(p), int(d)): g["galaxy_id"].to_numpy() for (p, d), g in usable.groupby(["psf_bin", "depth_bin"])}
    kept = grid[[(p, d) in by_bin for p, d in zip(grid["psf_bin"], grid["depth_bin"])]].reset_index(drop=True)
    return kept, by_bin


def plan_injections(hosts: pd.DataFrame, n_per_cell: int, seed: int) -> pd.DataFrame:
    """One row per injection, cells in grid order: cell, host (cycled in a seeded hash order
    through the hosts of the cell's PSF/depth bin, ``_cell_orders``; ``host_use`` counts reuses)
    and a stable injection_id ``c<cell>-<k>``.  Cells whose bin holds no host get no rows (n = 0
    in the table).  Built column-wise (numpy), bin by bin, one DataFrame at the end: 10M rows in seconds."""
    return _plan(*_planned_cells(hosts), n_per_cell, seed)


def _plan(kept: pd.DataFrame, by_bin: dict, n_per_cell: int, seed: int) -> pd.DataFrame:
    """``plan_injections`` of the planned cells and bins of ``_planned_cells``."""
    names = ["injection_id", "cell", "theta_e_bin", "psf_bin", "depth_bin", "galaxy_id", "host_use"]
    if not len(kept):
        return pd.DataFrame(columns=names)
    j = np.arange(n_per_cell)
    galaxy = np.empty((len(kept), n_per_cell), dtype=object)
    use = np.empty((len(kept), n_per_cell), dtype=np.int64)
    for (p, d), rows in kept.groupby(["psf_bin", "depth_bin"]).indices.items():
        ids = by_bin[(int(p), int(d))]
        order = _cell_orders(_host_keys(ids, seed), kept["cell"].to_numpy()[rows])
        galaxy[rows] = ids[order[:, j % len(ids)]]
        use[rows] = j // len(ids)
    suffix = [f"-{k:05d}" for k in j]
    prefix = [f"c{c:03d}" for c in kept["cell"].tolist()]
    cols = {"injection_id": np.array([c + x for c in prefix for x in suffix], dtype=object)}
    cols.update({k: np.repeat(kept[k].to_numpy(np.int64), n_per_cell) for k in names[1:5]})
    cols.update(galaxy_id=galaxy.ravel(), host_use=use.ravel())
    return pd.DataFrame(cols)


def _prior_draws(n: int, seed: int) -> tuple[np.random.Generator, dict[str, np.ndarray]]:
    """The generator of ``draw_parameters`` and its first ``n`` prior draws (they need only the row count)."""
    rng = np.random.default_rng(injection_seed(seed, "completeness"))
    return rng, draw_source_and_lens(rng, n)


def draw_parameters(plan: pd.DataFrame, hosts: pd.DataFrame, seed: int, prior=None) -> pd.DataFrame:
    """Prior draws for the injections of ``plan`` (vectorised, one generator seeded by
    ``seed`` and walked in plan order, so a fixed seed and plan give the same draws),
    with theta_E ~ U(cell) replacing the prior's theta_E (the source offset scales with it).
    ``prior``: ``_prior_draws(len(plan), seed)`` made ahead (``plan_and_parameters``)."""
    n = len(plan)
    rng, d = _prior_draws(n, seed) if prior is None else prior
    if len(d["theta_e_arcsec"]) != n:
        raise ValueError(f"prior draws for {len(d['theta_e_arcsec'])} rows, plan of {n}")
    tb = plan["theta_e_bin"].to_numpy(int)
    theta = rng.uniform(THETA_E.lo[tb], THETA_E.hi[tb]) if n else np.zeros(0)
    scale = theta / d["theta_e_arcsec"] if n else np.zeros(0)
    d["theta_e_arcsec"] = theta
    d["src_x_arcsec"], d["src_y_arcsec"] = d["src_x_arcsec"] * scale, d["src_y_arcsec"] * scale
    params = pd.DataFrame(d, index=plan.index)
    pos = pd.Index(hosts["galaxy_id"]).get_indexer(plan["galaxy_id"])
    if (pos < 0).any():
        raise ValueError("plan names hosts that are not in the host table")
    for b in BANDS:
        params[f"psf_fwhm_{b}_arcsec"] = hosts[f"psfsize_{b}"].to_numpy(float)[pos]
    params["moffat_beta"] = MOFFAT_BETA
    return params


def plan_and_parameters(hosts: pd.DataFrame, n_per_cell: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``plan_injections(hosts, n_per_cell, seed)`` and ``draw_parameters`` of it, the prior's
    draws (which need only the row count: ``n_per_cell`` per planned cell, ``_planned_cells``)
    made in a thread while the plan is built (numpy's generators release the GIL): the same numbers."""
    kept, by_bin = _planned_cells(hosts)
    with ThreadPoolExecutor(1) as pool:
        prior = pool.submit(_prior_draws, n_per_cell * len(kept), seed)
        plan = _plan(kept, by_bin, n_per_cell, seed)
        return plan, draw_parameters(plan, hosts, seed, prior=prior.result())


def sigma_pix(psfdepth_ivar: torch.Tensor, fwhm_arcsec: torch.Tensor,
              fwhm_max_arcsec: float | None = None) -> torch.Tensor:
    """(N, 3) per-pixel sky sigma [nmgy] implied by the PSF depth (1/nmgy^2) and a Moffat PSF
    (as ``realism.sigma_pix_from_depth``: sigma = sqrt(sum P^2 / depth)).  ``fwhm_max_arcsec``:
    ``fwhm_arcsec``'s largest value when the caller has it on the host (no read back)."""
    fwhm_max = float(fwhm_arcsec.max()) if fwhm_max_arcsec is None else float(fwhm_max_arcsec)
    h = kernel_half_width(fwhm_max, PIXSCALE_ARCSEC)
    k = moffat_kernels(fwhm_arcsec, torch.full_like(fwhm_arcsec, MOFFAT_BETA), PIXSCALE_ARCSEC, h)
    return torch.sqrt((k ** 2).sum(dim=(-2, -1)) / psfdepth_ivar)


def arc_noise_factor(sigma: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(N, 3) sigma_pix^2 / sky [nmgy]: the arc's Poisson-like variance per nmgy of arc
    (``realism.arc_poisson_sigma``), in ``dtype`` on ``sigma``'s device."""
    sky = to_device(sky_nmgy_per_pixel(PIXSCALE_ARCSEC), sigma.device, dtype)
    return sigma ** 2 / sky


def arc_noise(arc: torch.Tensor, sigma: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Poisson-like noise of the added arc (``realism.arc_poisson_sigma``): var = arc sigma^2 / sky."""
    sd = torch.sqrt(arc.clamp(min=0) * arc_noise_factor(sigma, arc.dtype)[:, :, None, None])
    return torch.randn(arc.shape, generator=gen, device=arc.device, dtype=arc.dtype) * sd


@dataclass(frozen=True)
class Variant:
    """A systematics bracket of the injections (DESIGN s3 "Systematic brackets"): a Moffat beta
    other than 3.5, clumpy sources (``prior.draw_clumps``, seeded per batch by ``clump_seed`` and the
    first row's values, so a fixed plan gives fixed clumps), or the ``suppress_inner`` ablation."""

    name: str
    moffat_beta: float | None = None
    clumps: bool = False
    suppress_inner: bool = False
    clump_seed: int = 0

    def apply(self, cols: dict) -> tuple[dict, bool]:
        cols = dict(cols)
        if self.moffat_beta is not None:
            cols["moffat_beta"] = np.full(len(cols["theta_e_arcsec"]), float(self.moffat_beta))
        if self.clumps:
            key = f"{self.name}:{cols['theta_e_arcsec'][0]!r}:{len(cols['theta_e_arcsec'])}"
            rng = np.random.default_rng(injection_seed(self.clump_seed, key))
            cols.update(draw_clumps(rng, cols["src_r_sersic_arcsec"]))
        return cols, self.suppress_inner


BRACKETS: tuple[Variant, ...] = (*(Variant(f"moffat_beta_{b:g}", moffat_beta=b) for b in MOFFAT_BETA_BRACKETS),
                                 Variant("clumpy_sources", clumps=True), Variant("suppress_inner", suppress_inner=True))


class _StageClock:
    def __init__(self, timings: dict | None, device: str):
        self.t, self.cuda, self.last = timings, device.startswith("cuda"), 0.0

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def start(self) -> None:
        if self.t is not None:
            self.last = self._now()

    def stop(self, stage: str) -> None:
        if self.t is not None:
            now = self._now()
            self.t[stage] = self.t.get(stage, 0.0) + now - self.last
            self.last = now


SCORE_BATCH = 1024  # images per detector call on a GPU (fixed shape, see score_stamps)
# on a GPU, the detector's forward pass for the fixed SCORE_BATCH shape is captured once per model as a
# CUDA graph and replayed (one launch instead of ~100 per batch: on a slow host the eager calls are
# launch-bound); False: eager calls (the previous path, kept to compare)
CUDA_GRAPH_SCORING = True


def score_stamps(model, stamps: torch.Tensor, crop: int, device: str, compiled: bool = False,
                 bf16: bool = False) -> torch.Tensor:
    """Logits of raw (N, 3, H, W) nmgy stamps through the training preprocessing, in
    float32 like the test-split evaluation whose thresholds they are compared with.  A
    ``RawScorer`` (an external detector, ``lensaudit.detector.scorer``) gets the raw stamps
    and does its own preprocessing; its logits are cast to float32 the same way.
    ``compiled`` (CUDA, with ``CUDA_GRAPH_SCORING``): the graph records ``torch.compile(model)``'s
    float32 kernels (Inductor fuses the batch norms and activations): 1.44x the eager graph's
    images/s on an H100, logits within ~1e-3 of the eager ones (the size of cuDNN's TF32
    rounding, which both use: bench/RESULTS.md); compiled once per process.
    ``bf16`` (CUDA only): the forward pass under bf16 autocast (the scan's precision, not the
    evaluation's: logits move by ~1e-2, see bench/RESULTS.md); an option of the benchmarks, never
    the asset's default, whose thresholds come from the float32 evaluation."""
    if isinstance(model, RawScorer):
        with torch.no_grad():
            return torch.as_tensor(model.score_raw(stamps)).to(stamps.device).float()
    if bf16 and not device.startswith("cuda"):
        raise ValueError("bf16 scoring needs a CUDA device")
    autocast = torch.bfloat16 if bf16 else None
    x, _ = raw_robust(stamps.float(), crop=crop)
    if not device.startswith("cuda"):
        with torch.no_grad():
            return model(x).float().squeeze(1)
    # on a GPU, fixed batches of SCORE_BATCH (the last one zero-padded; eval-mode layers treat
    # images independently): one input shape, so cuDNN plans its kernels once per process
    # instead of once per new chunk size, and a stamp's logit does not depend on the chunking
    out = []
    with torch.no_grad():
        for i in range(0, len(x), SCORE_BATCH):
            xb = x[i:i + SCORE_BATCH]
            m = len(xb)
            g = None
            if CUDA_GRAPH_SCORING and not model.training:
                g = graphed_forward(model, (SCORE_BATCH, *xb.shape[1:]), xb.dtype, xb.device, autocast,
                                    compiled=compiled)
            if g is not None:
                out.append(replay_rows(g, xb).float().squeeze(1).clone())
                continue
            pad = torch.empty((SCORE_BATCH, *xb.shape[1:]), dtype=xb.dtype, device=xb.device,
                              memory_format=torch.channels_last)
            pad[:m] = xb
            pad[m:] = 0
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                out.append(model(pad)[:m].float().squeeze(1))
    return torch.cat(out) if out else torch.zeros(0, device=x.device)


def host_transmission(host_rows: pd.DataFrame) -> np.ndarray:
    """(N, 3) Milky Way transmission of each host in g, r, z (1 where E(B-V) is absent)."""
    ebv = host_rows["ebv"].to_numpy(np.float64) if "ebv" in host_rows else np.zeros(len(host_rows))
    return np.stack([mw_transmission(ebv, b) for b in BANDS], axis=1)


#: on a GPU, the arc, its noise and the host are added, and the float64 terms of the matched S/N and
#: the added rms written, by one Triton kernel (``selection.fused_add``: the torch path's values to
#: the bit, ~3x fewer bytes through memory); False: the torch path (kept to compare)
FUSED_ADD = True


@dataclass(frozen=True)
class Injected:
    """One injected batch (``inject_batch``), on the device: the injected stamps and the signal
    (what was added: arc + its noise) (N, 3, H, W), the matched-filter energy of the added
    noise-free arc against the host's noise (``visibility.matched_energy``, (N, 3) float64; None
    without the host's noise), the
    rms of the signal (N,) float64 [nmgy], the renderer's ``RenderResult``, the sky sigma_pix
    (N, 3) [nmgy] that set the arc's noise, and the added noise-free arc (N, 3, H, W) (zero for a
    null control; None where ``fused_add`` made the stamps without it)."""

    stamps: torch.Tensor
    signal: torch.Tensor
    arc_energy: torch.Tensor | None
    added_rms: torch.Tensor
    render: object
    sigma_pix: torch.Tensor
    arc: torch.Tensor | None


def added_rms(signal: torch.Tensor) -> torch.Tensor:
    """(N,) float64 rms over the pixels and bands of what was added [nmgy]."""
    return added_rms_of_squares(signal.to(torch.float64, copy=True).square_())  # squared in place on the copy


def added_rms_of_squares(squares: torch.Tensor) -> torch.Tensor:
    """(N,) sqrt of the mean of the (N, 3, H, W) float64 squares of what was added (``fused_add``
    writes them on a GPU and they are reduced here, as the torch path's)."""
    return torch.sqrt(squares.mean(dim=(1, 2, 3)))


def inject_batch(host_stamps: torch.Tensor, host_pos: np.ndarray, params: pd.DataFrame, host_rows: pd.DataFrame,
                 device: str, gen: torch.Generator, null: bool = False, compiled: bool = False,
                 clock: "_StageClock | None" = None, variant: "Variant | None" = None,
                 psf: "PsfexPsfs | None" = None, fused: bool = False,
                 sigma_host: torch.Tensor | None = None) -> Injected:
    """Inject one batch: ``params`` row i into ``host_stamps[host_pos[i]]`` with the PSF, depth
    and extinction of ``host_rows.iloc[host_pos[i]]``; ``sigma_host`` (N, 3): each injection's
    host noise, for the matched-filter energy (None: ``arc_energy`` is None).  Returns an
    ``Injected`` on ``device``.
    ``null``: add only the arc's noise (a null control), the added arc is zero.
    ``variant``: a systematics bracket (``Variant``) applied to every row of the batch.
    ``psf``: PSFEx injection PSFs (``selection.psfex_psfs.PsfexPsfs``) in place of the Moffat
    ones: the arc is convolved with each host's PSFEx kernels and sigma_pix comes from the
    same kernels (None: Moffat, the default).
    ``fused``: render with the fused Triton renderer (CUDA; ``render_arcs(fused=True)``).
    With ``FUSED_ADD`` on a GPU the adding is ``fused_add.add_arc`` (the same values)."""
    clock = clock or _StageClock(None, device)
    host_pos = np.asarray(host_pos)
    if len(host_pos) and (host_pos.min() < 0 or host_pos.max() >= len(host_stamps)):  # on the host: no device sync
        raise IndexError(f"host positions {int(host_pos.min())}..{int(host_pos.max())} outside the "
                         f"{len(host_stamps)} host stamps")
    cols = {k: params[k].to_numpy(np.float64, copy=True) for k in params.columns}
    cols["supersample"] = np.full(len(params), 4.0)
    suppress = False
    if variant is not None:
        cols, suppress = variant.apply(cols)
    hr = host_rows.iloc[host_pos]
    kern = None if psf is None else torch.as_tensor(psf.kernels(hr), dtype=torch.float64, device=device)
    res = render_arcs(cols, device=device, dtype=torch.float32, compiled=compiled, chunk=max(1, len(params)),
                      suppress_inner=suppress, psf_kernels=kern, fused=fused)
    trans = to_device(host_transmission(hr), res.images.device, res.images.dtype)
    clock.stop("render")
    fwhm_np = hr[[f"psfsize_{b}" for b in BANDS]].to_numpy(np.float64)
    fwhm = to_device(fwhm_np, device)
    depth = to_device(hr[[f"psfdepth_{b}" for b in BANDS]].to_numpy(np.float64), device)
    sig = (sigma_pix(depth, fwhm, fwhm_np.max() if len(fwhm_np) else None) if kern is None
           else sigma_pix_from_kernels(depth, kern)).float()
    pos = to_device(host_pos, host_stamps.device)
    if (FUSED_ADD and sigma_host is not None and res.images.dtype == torch.float32
            and fused_add.usable(res.images, host_stamps, sigma_host)):
        normal = torch.randn(res.images.shape, generator=gen, device=res.images.device, dtype=res.images.dtype)
        out = fused_add.add_arc(res.images, trans, arc_noise_factor(sig, res.images.dtype), normal, host_stamps, pos,
                                sigma_host, null)
        del normal
        energy, rms = matched_energy_of_terms(out.arc_energy_terms), added_rms_of_squares(out.signal_squares)
        clock.stop("host_gather_add_noise")
        return Injected(out.stamps, out.signal, energy, rms, res, sig, None)
    arc = res.images * trans[:, :, None, None]
    host = host_stamps[pos].to(device)
    noise = arc_noise(arc, sig, gen)
    added = torch.zeros_like(arc) if null else arc
    signal = added + noise
    clock.stop("host_gather_add_noise")
    energy = None if sigma_host is None else matched_energy(added, sigma_host)
    return Injected(host + signal, signal, energy, added_rms(signal), res, sig, added)


RESULT_COLUMNS = ["logit", "magnification", "snr_g", "snr_r", "snr_z", "arc_snr_matched_g", "arc_snr_matched_r",
                  "arc_snr_matched_z", "arc_snr_matched", "noise_corr_g", "noise_corr_r", "noise_corr_z",
                  "added_rms_nmgy"]


def inject_and_score(model, host_stamps: torch.Tensor, host_pos: np.ndarray, params: pd.DataFrame,
                     host_rows: pd.DataFrame, crop: int, device: str, seed: int, chunk: int = 1024,
                     null: bool = False, compiled: bool = False, progress=None,
                     timings: dict | None = None, variant: Variant | None = None,
                     psf: "PsfexPsfs | None" = None, fused: bool = False) -> pd.DataFrame:
    """Inject ``params`` (one row each) into ``host_stamps[host_pos]`` (on ``device``) and
    score.  ``null``: the null control (the full path, the arc's noise without the arc).
    Returns logit, magnification, snr_g/r/z (annulus), arc_snr_matched_g/r/z and
    arc_snr_matched (combined), noise_corr_g/r/z, added_rms_nmgy (rms of what was added: > 0
    for null controls) per row.  ``psf``: PSFEx injection PSFs (``inject_batch``).  ``timings``, when given, accumulates seconds per stage (the
    device is synchronised between stages)."""
    v = inject_and_score_tensor(model, host_stamps, host_pos, params, host_rows, crop, device, seed, chunk=chunk,
                                null=null, compiled=compiled, progress=progress, timings=timings, variant=variant,
                                psf=psf, fused=fused)
    clock = _StageClock(timings, device)
    clock.start()
    v = v.cpu().numpy()
    clock.stop("detectability")
    return result_frame(v)


def result_frame(v: np.ndarray) -> pd.DataFrame:
    """The ``inject_and_score`` frame of the (N, 12) float64 array of ``inject_and_score_tensor``."""
    if not len(v):
        return pd.DataFrame(columns=RESULT_COLUMNS)
    matched = v[:, 5:8]
    frame = {"logit": v[:, 0], "magnification": v[:, 1]}
    for i, b in enumerate(BANDS):
        frame[f"snr_{b}"] = v[:, 2 + i]
    for i, b in enumerate(BANDS):
        frame[f"arc_snr_matched_{b}"] = matched[:, i]
    frame["arc_snr_matched"] = np.sqrt((matched ** 2).sum(axis=1))
    for i, b in enumerate(BANDS):
        frame[f"noise_corr_{b}"] = v[:, 8 + i]
    frame["added_rms_nmgy"] = v[:, 11]
    return pd.DataFrame(frame)


def inject_and_score_tensor(model, host_stamps: torch.Tensor, host_pos: np.ndarray, params: pd.DataFrame,
                            host_rows: pd.DataFrame, crop: int, device: str, seed: int, chunk: int = 1024,
                            null: bool = False, compiled: bool = False, progress=None,
                            timings: dict | None = None, variant: Variant | None = None,
                            psf: "PsfexPsfs | None" = None, fused: bool = False,
                            compiled_detector: bool = False, detector_bf16: bool = False) -> torch.Tensor:
    """``inject_and_score``'s numbers as one (N, 12) float64 tensor on ``device`` (logit,
    magnification, snr_g/r/z, arc_snr_matched_g/r/z, noise_corr_g/r/z, added_rms_nmgy; the
    combined matched S/N is left to ``result_frame``): results stay on the device, so a caller
    that runs several batches moves them to the host once.  ``compiled``: the renderer under
    ``torch.compile``; ``compiled_detector`` / ``detector_bf16``: the detector's (``score_stamps``)."""
    gen = torch.Generator(device=device).manual_seed(int(seed))
    clock = _StageClock(timings, device)
    clock.start()
    # each host's own noise (outer-ring MAD) and correlated-noise factor, once per host
    host_sigma_all = torch.cat([outer_sigma(host_stamps[i:i + chunk].to(device))
                                for i in range(0, len(host_stamps), chunk)]) if len(host_stamps) else None
    corr_all = torch.cat([noise_correlation_factor(host_stamps[i:i + chunk].to(device), sigma=host_sigma_all[i:i + chunk])
                          for i in range(0, len(host_stamps), chunk)]) if len(host_stamps) else None
    clock.stop("detectability")
    parts = []  # per chunk, on the device: one transfer at the end lets the host run ahead of the device
    for s in range(0, len(params), chunk):
        p = params.iloc[s:s + chunk]
        clock.start()
        pos_t = to_device(host_pos[s:s + chunk], host_sigma_all.device)
        host_sigma, corr = host_sigma_all[pos_t], corr_all[pos_t]
        inj = inject_batch(host_stamps, host_pos[s:s + chunk], p, host_rows, device, gen, null, compiled, clock,
                           variant, psf, fused, sigma_host=host_sigma)
        finite = AnnulusFinite(inj.signal)  # read after the scoring is queued: the device stays busy meanwhile
        logit = score_stamps(model, inj.stamps, crop, device, compiled=compiled_detector, bf16=detector_bf16)
        clock.stop("preprocess_score")
        snr = annulus_snr(inj.signal, sigma=host_sigma, finite=finite)
        matched = snr_from_matched_energy(inj.arc_energy, corr)
        parts.append(torch.cat([logit.double()[:, None], inj.render.magnification.double()[:, None], snr.double(),
                                matched.double(), corr.double(), inj.added_rms[:, None]], dim=1))
        clock.stop("detectability")
        if progress is not None:
            progress(len(p))
    return torch.cat(parts) if parts else torch.zeros((0, 12), dtype=torch.float64, device=device)
