"""Write the mock sky to disk: real-schema sweep FITS files (what the pipeline reads)
and, apart from them, ground-truth Parquet tables (what only tests and the mock's
renderer may read)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from lensaudit.mock.config import MockSkyConfig
from lensaudit.mock.sky import generate_sweep
from lensaudit.store import atomic_path, write_parquet_atomic
from lensaudit.survey.schema import SWEEP_COLUMNS

_FITS_FORMAT = {"int16": "I", "int32": "J", "int64": "K", "float": "E", "double": "D", "bool": "L"}
_STRING_WIDTH = {"brickname": 8, "type": 3}


#: bump when the generator changes, so that stored mock skies are regenerated
MOCK_SKY_VERSION = 7


#: MockSkyConfig fields that change the images only, never the sweep or truth files: left out of
#: the hash, so a sky written before they existed (or with another value) is reused byte for byte
IMAGE_ONLY_FIELDS = ("noise_block_factor",)


def config_hash(config: MockSkyConfig) -> str:
    fields = {k: v for k, v in asdict(config).items() if k not in IMAGE_ONLY_FIELDS}
    payload = json.dumps({"version": MOCK_SKY_VERSION, **fields}, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def _to_fits_hdu(rows: pd.DataFrame, chash: str):
    from astropy.io import fits

    cols = []
    for name, typ, desc in SWEEP_COLUMNS:
        t = str(typ)
        if t == "string":
            w = _STRING_WIDTH[name]
            cols.append(fits.Column(name=name.upper(), format=f"{w}A", array=rows[name].astype(str).to_numpy().astype(f"S{w}")))
        else:
            np_t = typ.to_pandas_dtype()
            cols.append(fits.Column(name=name.upper(), format=_FITS_FORMAT[t], array=rows[name].to_numpy().astype(np_t)))
    hdu = fits.BinTableHDU.from_columns(cols)
    hdu.header["MOCKSKY"] = (True, "lensaudit embedded mock DR10 sky: not real data")
    hdu.header["MOCKHASH"] = (chash, "hash of the mock sky configuration")
    return hdu


def sweep_path(sweep_dir: Path, sweep_file: str) -> Path:
    return Path(sweep_dir) / sweep_file


def write_mock_sweep(config: MockSkyConfig, sweep_file: str, sweep_dir: Path, truth_dir: Path,
                     lenses: pd.DataFrame) -> Path:
    """Write (or reuse, when its configuration hash matches) one mock sweep file."""
    from astropy.io import fits

    out = sweep_path(sweep_dir, sweep_file)
    truth_out = Path(truth_dir) / sweep_file.replace(".fits", ".parquet")
    chash = config_hash(config)
    if out.exists() and truth_out.exists():
        try:
            if fits.getheader(out, 1).get("MOCKHASH") == chash:
                return out
        except OSError:
            pass  # unreadable: regenerate below
    rows, truth = generate_sweep(config, config.box(sweep_file), lenses)
    hdu = _to_fits_hdu(rows, chash)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp, overwrite=True)
    truth["sweep"] = sweep_file
    write_parquet_atomic(truth, truth_out)
    return out


def read_truth(truth_dir: Path) -> pd.DataFrame:
    files = sorted(Path(truth_dir).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no mock truth tables under {truth_dir}")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)

