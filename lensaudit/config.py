"""Run profiles and the science settings of the data half (DESIGN section 3 defaults).

``tiny`` is for tests (a minute), ``demo`` for the README main job, ``full`` for the
spec's grid sizes.  The ratios, fractions and radii are the spec's in every profile;
the profiles differ in the size of the mock sky and in how much of it a run reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lensaudit.detector.config import TrainConfig
from lensaudit.mock.config import MOCK_SWEEP_BOXES, MockSkyConfig
from lensaudit.sampling.pools import NegativeCuts
from lensaudit.splits import SPLIT_FRACTIONS

@dataclass(frozen=True)
class ManifestSettings:
    negatives_per_positive: int = 100
    n2_fraction: float = 0.15
    seed: int = 42


@dataclass(frozen=True)
class DetectorSettings:
    """Training and evaluation of the detector (DESIGN s3 "Detector", "Evaluation")."""

    #: architectures the main job trains (the ``detector`` asset's partitions)
    archs: tuple[str, ...] = ("resnet18",)
    #: the architecture whose frozen model the selection function audits
    audit_arch: str = "resnet18"
    #: optimiser, schedule, batch, seed, crop (the ``arch`` field is set per partition)
    train: TrainConfig = TrainConfig()
    #: bootstrap resamples of every evaluation metric (>= 1000) and their seed
    n_boot: int = 1000
    boot_seed: int = 0
    #: CPU threads torch may use (None: torch's default)
    cpu_threads: int | None = None


@dataclass(frozen=True)
class SelectionSettings:
    """The selection function (DESIGN s3 "Selection function", "Adversarial gates")."""

    n_per_cell: int = 200
    seed: int = 2024
    #: a (PSF, depth) bin with fewer distinct hosts is reported as thin
    min_hosts_per_bin: int = 5
    #: hosts (and test lenses) the adversarial tests use at most
    adversarial_max_hosts: int = 5000
    #: rows per injection batch on the device
    chunk: int = 4096
    gallery_size: int = 16
    #: injections per cell of the systematics brackets (None: n_per_cell // 8, at least 1)
    bracket_per_cell: int | None = None
    #: the injections' PSF: "moffat" (each host's PSF size, Moffat beta 3.5) or "psfex" (real PSFEx
    #: models, ``lensaudit.selection.psfex_psfs``; the Moffat brackets keep their own Moffat baseline)
    psf_model: str = "moffat"
    #: PSFEx model files for psf_model "psfex" (empty: the real DR9 models vendored with the tests)
    psfex_models: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    name: str
    mock: MockSkyConfig
    #: sweep partitions a full run of this profile materialises (None = all)
    sweep_subset: tuple[str, ...] | None = None
    split_seed: int = 42
    split_fractions: dict = field(default_factory=lambda: dict(SPLIT_FRACTIONS))
    match_radius_arcsec: float = 1.5
    core_lr_max_rows: int = 20000
    realism_n_inject: int = 400
    realism_real_tiers: tuple[str, ...] = ("A",)
    realism_seed: int = 7
    cuts: NegativeCuts = NegativeCuts()
    manifest: ManifestSettings = ManifestSettings()
    detector: DetectorSettings = DetectorSettings()
    selection: SelectionSettings = SelectionSettings()


#: the first four mock sweeps (three in the footprint, one across Dec = -18)
_TINY_SWEEPS = tuple(b.name for b in MOCK_SWEEP_BOXES[:4])

PROFILES: dict[str, Profile] = {
    # tiny pools tier B with tier A for the realism comparison: its sky holds few lenses (6 mock
    # known lenses per sweep on top of lenscat's keep the realism colour medians defined)
    "tiny": Profile("tiny", MockSkyConfig(n_objects_per_sweep=15000, lens_supplement_per_sweep=6),
                    sweep_subset=_TINY_SWEEPS, realism_n_inject=100,
                    realism_real_tiers=("A", "B"),
                    detector=DetectorSettings(train=TrainConfig(epochs=2, batch_size=64, max_steps_per_epoch=3, patience=2)),
                    selection=SelectionSettings(n_per_cell=2, adversarial_max_hosts=60, chunk=256, gallery_size=4)),
    # demo: a CPU model within the README job's budget, not a science model; 30 mock known lenses
    # per sweep on top of lenscat's (~330 positives, ~180 of tier A); a tenth of the negatives per epoch;
    # two CPU threads on any machine (torch's default follows the core count, and a different thread
    # count gives different float sums, so the README's figures would not reproduce bit for bit)
    "demo": Profile("demo", MockSkyConfig(n_objects_per_sweep=30000, lens_supplement_per_sweep=30),
                    detector=DetectorSettings(train=TrainConfig(epochs=14, batch_size=64, patience=6,
                                                                 neg_fraction_per_epoch=0.1),
                                              cpu_threads=2),
                    selection=SelectionSettings(n_per_cell=16, adversarial_max_hosts=600, chunk=512)),
    "full": Profile("full", MockSkyConfig(n_objects_per_sweep=300000)),
}


def get_profile(name: str, **overrides) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return replace(PROFILES[name], **overrides) if overrides else PROFILES[name]


#: the run record of a home (its root): which profile and overrides its assets were built with
RUN_PROFILE_FILE = "run_profile.json"

#: the keys of a home's run record (``run_profile.json``) beside ``profile``: the detector's
#: training seed and CPU thread count may be overridden for a home (the robustness check:
#: "every gate still passes with another seed or thread count"); ``data_source`` is a label
RUN_RECORD_OVERRIDES = ("train_seed", "cpu_threads")
_RUN_RECORD_KEYS = ("profile", "data_source", *RUN_RECORD_OVERRIDES)


def profile_from_record(record: dict) -> Profile:
    """The profile a home's run record names, with the record's detector overrides applied.

    ``{"profile": "demo", "train_seed": 7, "cpu_threads": 1}``; ValueError on an unknown key,
    an unknown profile or an override that is not a positive integer (seed: >= 0)."""
    if not isinstance(record, dict) or "profile" not in record:
        raise ValueError(f"a run record is a JSON object with a 'profile' key, got {record!r}")
    unknown = sorted(set(record) - set(_RUN_RECORD_KEYS))
    if unknown:
        raise ValueError(f"unknown run record keys {unknown}; allowed: {list(_RUN_RECORD_KEYS)}")
    prof = get_profile(str(record["profile"]))
    seed, threads = record.get("train_seed"), record.get("cpu_threads")
    for key, val, least in (("train_seed", seed, 0), ("cpu_threads", threads, 1)):
        if val is not None and (isinstance(val, bool) or not isinstance(val, int) or val < least):
            raise ValueError(f"run record {key} must be an integer >= {least}, got {val!r}")
    det = prof.detector
    if seed is not None:
        det = replace(det, train=replace(det.train, seed=seed))
    if threads is not None:
        det = replace(det, cpu_threads=threads)
    return replace(prof, detector=det) if det is not prof.detector else prof


def profile_for(name: str, record) -> Profile:
    """The profile ``name`` for a home whose run record is ``record`` (None when it has none):
    the record's overrides apply only when the record names the same profile."""
    if isinstance(record, dict) and record.get("profile") == name:
        return profile_from_record(record)
    return get_profile(name)
