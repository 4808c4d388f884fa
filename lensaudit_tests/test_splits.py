import hashlib

import numpy as np
import pandas as pd
import pytest

from lensaudit.splits import (SPLIT_FRACTIONS, hash_fraction, healpix_index, split_of_fraction, split_of_pixels,
                              split_proportions, verify_disjoint)


def test_hash_fraction_is_sha256_prefix():
    d = hashlib.sha256(b"12345:42").digest()
    assert hash_fraction(12345, 42) == int.from_bytes(d[:8], "big") / 2**64


def test_explicit_order_boundaries():
    assert split_of_fraction(0.0) == "train"
    assert split_of_fraction(0.6999999) == "train"
    assert split_of_fraction(0.70) == "val"
    assert split_of_fraction(0.8499999) == "val"
    assert split_of_fraction(0.85) == "test"
    assert split_of_fraction(0.9999999) == "test"


def test_healpix_nested_and_invalid():
    import healpy as hp

    ra, dec = np.array([10.0, 200.0, np.nan]), np.array([-5.0, 30.0, 1.0])
    pix = healpix_index(ra, dec)
    assert pix[2] == -1
    assert pix[0] == hp.ang2pix(128, 10.0, -5.0, nest=True, lonlat=True)
    assert split_of_pixels(pix, 42)[2] == ""


def test_split_is_a_function_of_the_pixel_and_proportions_hold():
    pix = np.arange(200000)
    s = split_of_pixels(pix, 7)
    assert (split_of_pixels(pix[::-1], 7)[::-1] == s).all()
    props = split_proportions(pd.Series(s))
    for k, v in SPLIT_FRACTIONS.items():
        assert props[k] == pytest.approx(v, abs=0.005)
    # a different seed reshuffles
    assert (split_of_pixels(pix, 8) != s).mean() > 0.3
    with pytest.raises(ValueError):
        split_of_pixels(pix, 7, {"train": 0.8, "val": 0.15, "test": 0.15})


def test_verify_disjoint_finds_leaks():
    df = pd.DataFrame({"galaxy_id": ["a", "b", "c"], "healpix_128": [1, 2, 3], "split": ["train", "val", "test"]})
    assert verify_disjoint(df) == {"galaxy_id": [], "healpix_128": []}
    leak = pd.concat([df, df.iloc[[2]].assign(split="train")])
    assert verify_disjoint(leak) == {"galaxy_id": ["c"], "healpix_128": [3]}
    with pytest.raises(KeyError):
        verify_disjoint(df.drop(columns="healpix_128"))
