"""An external lens finder (a group's own model) plugged into the selection function.

The model is a TorchScript file (``torch.jit.save``) or an ONNX file (run with
``onnxruntime`` when it is installed), described by an *input spec*, a JSON file::

    {"name": "my-finder",            # folder its results are stored under (letters, digits, _ . + -)
     "model": "finder.pt",           # path, relative to the spec file
     "format": "torchscript",        # torchscript | onnx
     "bands": "grz",                 # channels the model takes, in its order (a subset of g, r, z)
     "input_size": 64,               # centre crop of the 101-px stamp, pixels
     "preprocessing": "raw_robust",  # a name of lensaudit.detector.preprocess.PREPROCESSINGS,
                                     # or "package.module:function" (stamps, crop) -> input
     "layout": "NCHW",               # NCHW | NHWC
     "output": "logit",              # logit | probability (the model's single output)
     "batch_size": 512}

The scorer gets the raw stamps (N, 3, H, W) nmgy (g, r, z) on the compute device, keeps
the spec's bands in its order, applies the preprocessing and the crop, and runs the model
(TorchScript on the device; ONNX with the CUDA provider when the device is CUDA and the
provider is present, else the CPU).  A probability output is turned into a logit by
``scorer.probability_to_logit``.  Everything is checked when the model is loaded (a probe
batch of the declared shape runs through it): a bad spec, an unknown preprocessing, a model
that rejects the declared input or answers with the wrong shape or non-finite values is an
``ExternalDetectorError`` with the reason.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from lensaudit.detector.preprocess import PREPROCESSINGS
from lensaudit.detector.scorer import RawScorer, probability_to_logit
from lensaudit.store import check_name
from lensaudit.survey.instrument import BANDS, STAMP_PIX

FORMATS = ("torchscript", "onnx")
OUTPUTS = ("logit", "probability")
LAYOUTS = ("NCHW", "NHWC")


class ExternalDetectorError(ValueError):
    """A bad input spec or a model that does not fit it."""


@dataclass(frozen=True)
class InputSpec:
    name: str
    model: str
    format: str = "torchscript"
    bands: str = BANDS
    input_size: int = 64
    preprocessing: str = "raw_robust"
    layout: str = "NCHW"
    output: str = "logit"
    batch_size: int = 512

    @classmethod
    def from_dict(cls, d: dict, base: Path | None = None) -> "InputSpec":
        if not isinstance(d, dict):
            raise ExternalDetectorError("the input spec must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ExternalDetectorError(f"unknown input-spec keys {unknown}; known: {sorted(known)}")
        for k in ("name", "model"):
            if k not in d:
                raise ExternalDetectorError(f"the input spec needs {k!r}")
        d = dict(d)
        if base is not None and not Path(str(d["model"])).is_absolute():
            d["model"] = str(base / str(d["model"]))
        spec = cls(**d)
        spec.validate()
        return spec

    @classmethod
    def load(cls, path: str | Path) -> "InputSpec":
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except OSError as exc:
            raise ExternalDetectorError(f"cannot read the input spec {p}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise ExternalDetectorError(f"the input spec {p} is not JSON: {exc}") from exc
        return cls.from_dict(d, base=p.resolve().parent)

    def validate(self) -> None:
        try:
            check_name(self.name)
        except ValueError:
            raise ExternalDetectorError(f"name {self.name!r} must be one plain name (letters, digits, _ . + -)") from None
        if self.format not in FORMATS:
            raise ExternalDetectorError(f"format {self.format!r} unknown; choose one of {FORMATS}")
        if self.output not in OUTPUTS:
            raise ExternalDetectorError(f"output {self.output!r} unknown; choose one of {OUTPUTS}")
        if self.layout not in LAYOUTS:
            raise ExternalDetectorError(f"layout {self.layout!r} unknown; choose one of {LAYOUTS}")
        b = self.bands
        if not isinstance(b, str) or not b or len(set(b)) != len(b) or any(c not in BANDS for c in b):
            raise ExternalDetectorError(f"bands {b!r}: distinct letters of {BANDS!r} in the model's channel order")
        if not isinstance(self.input_size, int) or isinstance(self.input_size, bool) or not 0 < self.input_size <= STAMP_PIX:
            raise ExternalDetectorError(f"input_size {self.input_size!r} must be an integer in 1..{STAMP_PIX} "
                                        f"(a centre crop of the {STAMP_PIX}-px stamp)")
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise ExternalDetectorError(f"batch_size {self.batch_size!r} must be a positive integer")
        resolve_preprocessing(self.preprocessing)


def resolve_preprocessing(name: str):
    """A ``PREPROCESSINGS`` entry, or the callable ``package.module:function``."""
    if not isinstance(name, str) or not name:
        raise ExternalDetectorError(f"preprocessing {name!r} must be a name or 'module:function'")
    if name in PREPROCESSINGS:
        return PREPROCESSINGS[name]
    if ":" not in name:
        raise ExternalDetectorError(f"unknown preprocessing {name!r}; choose one of {sorted(PREPROCESSINGS)} "
                                    "or give a callable as 'package.module:function'")
    mod, _, fn = name.partition(":")
    try:
        f = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ExternalDetectorError(f"preprocessing {name!r} cannot be imported: {type(exc).__name__}: {exc}") from exc
    if not callable(f):
        raise ExternalDetectorError(f"preprocessing {name!r} is not callable")
    return f


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:300]


class ExternalDetector(RawScorer):
    """A TorchScript or ONNX model with its input spec, as a ``RawScorer`` on ``device``."""

    def __init__(self, spec: InputSpec, device: str = "cpu"):
        self.spec, self.device = spec, str(device)
        self.name, self.crop = spec.name, spec.input_size
        self._prep = resolve_preprocessing(spec.preprocessing)
        self._band_idx = [BANDS.index(c) for c in spec.bands]
        path = Path(spec.model)
        if not path.is_file():
            raise ExternalDetectorError(f"model file {path} not found")
        self.model_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        if spec.format == "torchscript":
            try:
                with warnings.catch_warnings():  # torch >= 2.10 flags TorchScript as deprecated; it still loads
                    warnings.simplefilter("ignore", FutureWarning)
                    self._ts = torch.jit.load(str(path), map_location=self.device).eval()
            except Exception as exc:  # noqa: BLE001 - any load failure means "not a TorchScript file we can run"
                raise ExternalDetectorError(f"{path}: not a loadable TorchScript model ({_first_line(exc)})") from exc
        else:
            self._ort = _onnx_session(path, self.device)
        self._probe()

    def describe(self) -> dict:
        return {**asdict(self.spec), "model_sha256": self.model_sha256, "device": self.device}

    def model_input(self, stamps: torch.Tensor) -> torch.Tensor:
        """The model's input for raw (N, 3, H, W) nmgy stamps: bands, preprocessing, crop, layout."""
        x = stamps.float()[:, self._band_idx]
        try:
            y = self._prep(x, self.spec.input_size)
        except Exception as exc:  # noqa: BLE001 - a user callable may raise anything
            raise ExternalDetectorError(f"preprocessing {self.spec.preprocessing!r} failed: {_first_line(exc)}") from exc
        y = torch.as_tensor(y)
        want = (x.shape[0], len(self._band_idx), self.spec.input_size, self.spec.input_size)
        if tuple(y.shape) != want:
            raise ExternalDetectorError(f"preprocessing {self.spec.preprocessing!r} returned shape {tuple(y.shape)}, "
                                        f"expected {want}")
        y = y.to(device=stamps.device, dtype=torch.float32)
        return y.permute(0, 2, 3, 1).contiguous() if self.spec.layout == "NHWC" else y.contiguous()

    def _run(self, x: torch.Tensor) -> np.ndarray:
        try:
            if self.spec.format == "torchscript":
                with torch.no_grad():
                    out = self._ts(x)
                out = out.detach().double().cpu().numpy() if isinstance(out, torch.Tensor) else out
            else:
                name = self._ort.get_inputs()[0].name
                out = self._ort.run(None, {name: x.detach().cpu().numpy()})[0]
        except ExternalDetectorError:
            raise
        except Exception as exc:  # noqa: BLE001 - the model's own error on this input
            raise ExternalDetectorError(f"the model rejected an input of shape {tuple(x.shape)} "
                                        f"({self.spec.layout}): {_first_line(exc)}") from exc
        if not isinstance(out, np.ndarray):
            raise ExternalDetectorError(f"the model returned {type(out).__name__}, expected one tensor")
        n = x.shape[0]
        if out.shape not in ((n,), (n, 1)):
            raise ExternalDetectorError(f"the model returned shape {tuple(out.shape)} for {n} stamps; expected ({n},) "
                                        f"or ({n}, 1): one {self.spec.output} per stamp")
        out = out.reshape(n).astype(np.float64)
        if not np.isfinite(out).all():
            raise ExternalDetectorError(f"the model returned {int((~np.isfinite(out)).sum())} non-finite scores")
        if self.spec.output == "probability":
            if ((out < 0) | (out > 1)).any():
                raise ExternalDetectorError("output is declared 'probability' but the model returned values outside "
                                            f"[0, 1] (min {out.min():.4g}, max {out.max():.4g}); declare 'logit'?")
            return probability_to_logit(out)
        return out

    def score_raw(self, stamps: torch.Tensor) -> torch.Tensor:
        out = [self._run(self.model_input(stamps[s:s + self.spec.batch_size]))
               for s in range(0, len(stamps), self.spec.batch_size)]
        return torch.from_numpy(np.concatenate(out) if out else np.zeros(0))

    def _probe(self) -> None:
        rng = np.random.default_rng(0)
        probe = torch.from_numpy(rng.normal(0, 0.01, (2, len(BANDS), STAMP_PIX, STAMP_PIX)).astype(np.float32))
        self.score_raw(probe.to(self.device))


def _onnx_session(path: Path, device: str):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExternalDetectorError("format 'onnx' needs onnxruntime (pip install onnxruntime); "
                                    "or export the model to TorchScript") from None
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:  # noqa: BLE001
        raise ExternalDetectorError(f"{path}: not a loadable ONNX model ({_first_line(exc)})") from exc


def load_external(spec_path: str | Path, device: str = "cpu") -> ExternalDetector:
    """The external detector of a spec file, loaded and probed on ``device``."""
    return ExternalDetector(InputSpec.load(spec_path), device)
