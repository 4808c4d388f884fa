"""Training settings of the detector (DESIGN s3 "Detector" defaults); no torch import, so
run profiles can hold them."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "resnet18"
    epochs: int = 50
    batch_size: int = 256
    lr: float = 3e-4
    weight_decay: float = 1e-4
    patience: int = 10
    seed: int = 1234
    max_steps_per_epoch: int | None = None
    crop: int = 64
    #: fraction of the negatives drawn (afresh) for each epoch; their weights are divided
    #: by it, so the weighted loss stays an unbiased estimate of the full-data loss.  1.0
    #: in the spec (``full``); the CPU demo uses less to see its few positives more often.
    neg_fraction_per_epoch: float = 1.0

    def as_dict(self) -> dict:
        return asdict(self)
