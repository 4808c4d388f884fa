"""Settings of the embedded mock DR10 sky (DESIGN section 6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lensaudit.survey.sweeps import SweepBox

#: 10x5 deg sweep boxes (the real DR8-DR10 sweep tiling).  Eight lie in the DECam
#: footprint at |b| > 30 deg with few known lenses each (81 galaxy-scale lenscat entries
#: in all); ``sweep-190p035-200p040`` is north of Dec 32.375 (BASS/MzLS, outside the
#: footprint) and ``sweep-210m020-220m015`` straddles the Dec = -18 cut of the N1 pool.
MOCK_SWEEP_BOXES: tuple[SweepBox, ...] = (
    SweepBox(40.0, 10.0, 50.0, 15.0),
    SweepBox(50.0, 5.0, 60.0, 10.0),
    SweepBox(60.0, 0.0, 70.0, 5.0),
    SweepBox(210.0, -20.0, 220.0, -15.0),
    SweepBox(310.0, -15.0, 320.0, -10.0),
    SweepBox(140.0, -10.0, 150.0, -5.0),
    SweepBox(210.0, 15.0, 220.0, 20.0),
    SweepBox(240.0, -5.0, 250.0, 0.0),
    SweepBox(250.0, 15.0, 260.0, 20.0),
    SweepBox(190.0, 35.0, 200.0, 40.0),
)


#: ring confusers (collisional / resonance rings, ``lensaudit.mock.confusers``): radius uniform
#: over 1-5 arcsec, i.e. over the lensed arcs' radii and beyond them (the synthetic-ring gate's
#: ring sits at 15 px = 3.9")
RING_RADIUS_RANGE_ARCSEC = (1.0, 5.0)


#: the folder of a lensaudit home that holds the mock sky (sweeps and truth)
MOCK_SKY_DIRNAME = "mock_sky"


def mock_sky_dirs(home) -> tuple[Path, Path]:
    """(sweep FITS folder, truth Parquet folder) of the mock sky of the lensaudit home ``home``."""
    root = Path(home) / MOCK_SKY_DIRNAME
    return root / "sweeps", root / "truth"


def holds_mock_sky(home) -> bool:
    """Whether the lensaudit home ``home`` was built from the embedded mock sky."""
    return (Path(home) / MOCK_SKY_DIRNAME).exists()


@dataclass(frozen=True)
class MockSkyConfig:
    """Size and rates of the mock sky.  Everything is deterministic from ``seed``.

    n_objects_per_sweep: field objects per sweep (lenses and companions come on top).
    lens_fraction: fraction of the lenscat galaxy-scale entries inside the sweeps that
        the mock sky contains (by a hash of the lens name); the others have no Tractor
        row, which exercises the positives' unmatched path.
    label_noise_tier_b: fraction of tier-B lenses that are, in truth, not lenses.
    confuser_fraction: fraction of field galaxies given a confuser morphology.
    ring_fraction: fraction of the remaining galaxies with a resonance ring in the image only
        (catalogue row unchanged), drawn like the ring confusers' rings (inner and outer
        resonance rings together are seen in ~20-30 % of disc galaxies, Buta & Combes 1996).
    nan_coord_rate: rate of rows whose coordinates are NaN (a corrupt-row artefact).
    nan_patch_rate, missing_band_rate, spike_rate: stamp artefacts (a 6x6 NaN patch, one
        band all NaN, a bright-star diffraction spike), each drawn per galaxy.
    lens_supplement_per_sweep: mock known lenses added per sweep box on top of the lenscat
        entries (``lensaudit.mock.lens_supplement``), so that a detector has lenses to learn.
    lens_theta_e_range, lens_src_mag_r_range: the mock lenses' arc prior.  The same family as
        the injection prior (``lensaudit.injection.prior``: SIE + shear, Sersic source) but not
        identical: known lenses are the ones surveys found, so their sources are brighter
        (unlensed r ~ U(21.0, 25.0) AB instead of U(22, 26)) and their Einstein radii resolved
        (theta_E ~ U(0.8, 3.0) arcsec instead of U(0.5, 3.0)).
    discovery_snr_tier_b: the discovery selection of the known lenses
        (``lensaudit.mock.discovery``): a true lens's arc is redrawn from that prior until its
        matched-filter S/N at the lens's own PSF and depth reaches 20 (tier A, Collett 2015's
        criterion, ``visibility.OBSERVABLE_MATCHED_SNR``) or this value (tier B, marginal
        detections).  The realism gates compare these lenses with the observable injections.
    noise_block_factor: pixel-noise correlation of the stamps, as the 5x5 block-noise factor
        (``lensaudit.survey.noise``: sigma of 5x5 block sums / (5 sigma_pix); 1 = white).
        1.0 (default, off): independent pixels, the stamps are the same bytes as without
        the option.  Above 1 the noise draw is convolved with the Gaussian kernel of
        ``noise.correlation_kernel`` (unit sum of squares: each pixel keeps the sigma of the
        depth and the sources' Poisson term); DR10 coadds: ``instrument.DR10_BLOCK_NOISE_FACTOR``
        (measured on the real cutouts).  Only the batched renderer has it (the reference
        renderer's noise is white).
    """

    seed: int = 20260214
    n_objects_per_sweep: int = 20000
    lens_fraction: float = 1.0
    label_noise_tier_b: float = 0.10
    confuser_fraction: float = 0.08
    ring_fraction: float = 0.20
    nan_coord_rate: float = 2e-4
    #: image artefacts of the mock cutouts, per stamp
    nan_patch_rate: float = 0.01
    missing_band_rate: float = 0.004
    spike_rate: float = 0.01
    sweep_boxes: tuple[SweepBox, ...] = field(default=MOCK_SWEEP_BOXES)
    lens_supplement_per_sweep: int = 0
    lens_theta_e_range: tuple[float, float] = (0.8, 3.0)
    lens_src_mag_r_range: tuple[float, float] = (21.0, 25.0)
    discovery_snr_tier_b: float = 10.0
    noise_block_factor: float = 1.0

    @classmethod
    def from_dict(cls, d: dict) -> "MockSkyConfig":
        """The config of ``dataclasses.asdict(config)``, also after a JSON round trip (a Spark
        job's arguments): the sweep boxes and ranges become tuples again."""
        cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        cfg["sweep_boxes"] = tuple(b if isinstance(b, SweepBox) else SweepBox(**b) for b in cfg["sweep_boxes"])
        return cls(**cfg)

    def box(self, sweep_file: str) -> SweepBox:
        for b in self.sweep_boxes:
            if b.name == sweep_file:
                return b
        raise KeyError(f"{sweep_file!r} is not a sweep of this mock sky")
