"""Input paths that must not corrupt data: coadd no-data, NPZ reader, store offsets, safe names."""

import struct
import zipfile

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from lensaudit.cutouts.coadd import CoaddSource
from lensaudit.cutouts.npz import read_npz, write_npz
from lensaudit.cutouts.qc import quality
from lensaudit.cutouts.result import Cutout
from lensaudit.cutouts.store import CutoutReader, ShardError, write_shard
from lensaudit.store import check_relpath, safe_join
from lensaudit.survey.bricks import brick_at

# ---- coadd: no-data pixels must be known -----------------------------------------------


def _brick_dir(tmp_path, with_invvar: bool, with_nexp: bool = False):
    """A 300x300 synthetic brick centred on brick 0959p805's centre: sky noise, a zero
    (no-data) block covering the stamp centre."""
    b = brick_at(95.95, 80.5)
    ra, dec = (b.ra1 + b.ra2) / 2, (b.dec1 + b.dec2) / 2
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [150.5, 150.5]
    w.wcs.cdelt = [-0.262 / 3600, 0.262 / 3600]
    rng = np.random.default_rng(0)
    img = rng.normal(0, 0.01, (300, 300)).astype(np.float32)
    ivar = np.full((300, 300), 1e4, np.float32)
    img[130:170, 130:170] = 0.0  # no data, written as zeros
    ivar[130:170, 130:170] = 0.0
    hdr = w.to_header()
    name = b.brickname
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(img, hdr)]).writeto(tmp_path / f"legacysurvey-{name}-image-g.fits.fz")
    if with_invvar:
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(ivar, hdr)]).writeto(
            tmp_path / f"legacysurvey-{name}-invvar-g.fits.fz")
    if with_nexp:
        nexp = (ivar > 0).astype(np.int16) * 3
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(nexp, hdr)]).writeto(
            tmp_path / f"legacysurvey-{name}-nexp-g.fits.fz")
    return tmp_path, ra, dec


def test_coadd_without_invvar_fails_with_a_reason(tmp_path):
    d, ra, dec = _brick_dir(tmp_path, with_invvar=False)
    c = CoaddSource(str(d)).cutout(ra, dec, bands="g")
    assert not c.ok and c.reason == "missing_invvar_g" and c.data is None


@pytest.mark.parametrize("kw,files", [({}, {"with_invvar": True}), ({}, {"with_invvar": False, "with_nexp": True}),
                                      ({"nodata": "zeros"}, {"with_invvar": False})])
def test_coadd_no_data_pixels_become_nan_and_fail_qc(tmp_path, kw, files):
    d, ra, dec = _brick_dir(tmp_path, **files)
    c = CoaddSource(str(d), **kw).cutout(ra, dec, bands="g")
    assert c.ok, c.reason
    assert np.isnan(c.data[0, 50, 50]) and not np.any(c.data[0] == 0)
    assert quality(c.data, "g")["qc_reason"] in ("central_nan_frac", "core_nan")
    with pytest.raises(ValueError, match="nodata"):
        CoaddSource(str(d), nodata="trust")


def test_qc_refuses_a_zero_filled_band():
    rng = np.random.default_rng(1)
    ok = rng.normal(0, 0.01, (3, 101, 101)).astype(np.float32)
    assert quality(ok, "grz")["qc_ok"]
    bad = ok.copy()
    bad[2, 30:70, 30:70] = 0.0
    assert quality(bad, "grz")["qc_reason"] == "zero_filled_z"
    inf = ok.copy()
    inf[0, 3, 3] = np.inf  # outside the core and the central box: only the inf check sees it
    assert quality(inf, "grz")["qc_reason"] == "infinite_pixels"


# ---- read_npz never raises --------------------------------------------------------------


def _good_npz(tmp_path):
    data = np.random.default_rng(0).normal(size=(3, 101, 101)).astype(np.float32)
    return write_npz(tmp_path / "ok.npz", Cutout(True, "grz", data), galaxy_id="x"), data


def test_read_npz_survives_truncation_and_corruption(tmp_path):
    p, data = _good_npz(tmp_path)
    c = read_npz(p)
    assert c.ok and np.array_equal(c.data, data)
    raw = p.read_bytes()
    for cut in (10, len(raw) // 2, len(raw) - 30):
        t = tmp_path / f"t{cut}.npz"
        t.write_bytes(raw[:cut])
        c = read_npz(t)
        assert not c.ok and c.reason.startswith("npz_") and c.data is None
    # a compressed archive with a flipped byte inside the deflate stream (zlib error / CRC)
    z = tmp_path / "z.npz"
    with open(z, "wb") as f:
        np.savez_compressed(f, cutout=np.transpose(data, (1, 2, 0)))
    zb = bytearray(z.read_bytes())
    for i in range(200, 260):
        zb[i] ^= 0xFF
    z.write_bytes(bytes(zb))
    c = read_npz(z)
    assert not c.ok and c.reason.startswith("npz_unreadable"), c.reason
    (tmp_path / "empty.npz").write_bytes(b"")
    assert not read_npz(tmp_path / "empty.npz").ok
    assert read_npz(tmp_path / "nope.npz").reason.startswith("npz_unreadable")


def _lying_npz(path, shape):
    """An NPZ whose cutout.npy header claims ``shape`` float32 but holds 16 bytes."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': %r, }" % (shape,)
    header = header + " " * (63 - (10 + len(header)) % 64) + "\n"
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 16
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("cutout.npy", member)
    return path


def test_read_npz_bounds_its_allocation_before_reading_a_lying_header(tmp_path):
    big = (100_000, 100_000, 3)  # 112 GiB of float32
    assert np.prod(big) * 4 / 2**30 > 111
    c = read_npz(_lying_npz(tmp_path / "big.npz", big))
    assert not c.ok and c.reason.startswith("npz_header_too_large"), c.reason
    c = read_npz(_lying_npz(tmp_path / "small.npz", (101, 101, 3)))  # claims 122 kB, holds 16 bytes
    assert not c.ok and c.reason.startswith("npz_header_mismatch"), c.reason
    # object arrays are never unpickled
    with open(tmp_path / "obj.npz", "wb") as f:
        np.savez(f, cutout=np.array([{"a": 1}], dtype=object))
    assert read_npz(tmp_path / "obj.npz").reason.startswith(("npz_object_array", "npz_unreadable"))


def test_read_npz_refuses_infinite_pixels(tmp_path):
    data = np.zeros((3, 101, 101), np.float32)
    data[1, 5, 5] = np.inf
    with open(tmp_path / "inf.npz", "wb") as f:
        np.savez(f, cutout=np.transpose(data, (1, 2, 0)))
    assert read_npz(tmp_path / "inf.npz").reason == "infinite_pixels"


# ---- cutout store offsets, safe names ---------------------------------------------------


def _idx(path, offs):
    return pd.DataFrame({"cutout_path": path, "cutout_offset": offs, "cutout_ok": True})


def test_store_reader_refuses_negative_and_out_of_range_offsets(tmp_path):
    stack = np.arange(2 * 3 * 101 * 101, dtype=np.float32).reshape(2, 3, 101, 101)
    write_shard(tmp_path / "shards/a.npy", stack)
    r = CutoutReader(tmp_path)
    assert np.array_equal(r.read(_idx("shards/a.npy", [1, 0])), stack[[1, 0]])
    with pytest.raises(ShardError, match="negative offset"):
        r.read(_idx("shards/a.npy", [0, -1]))  # would wrap to the last stamp
    with pytest.raises(ShardError, match="past the end"):
        r.read(_idx("shards/a.npy", [2]))
    with pytest.raises(ShardError, match="non-integer"):
        r.read(_idx("shards/a.npy", [0.5]))
    for bad in ("/etc/passwd", "shards/../shards/a.npy", "shards/a.npy\n", "shards/\x00a.npy", ""):
        with pytest.raises(ShardError):
            r.read(_idx(bad, [0]))


@pytest.mark.parametrize("name", ["a\nb", "a.npz\n", "x\x00y", "x\x1by", "/abs", "..", "a/../b", "a/b", ".hidden",
                                  "", "tab\tname"])
def test_safe_join_rejects_control_characters_absolute_and_parent(tmp_path, name):
    with pytest.raises(ValueError):
        safe_join(tmp_path, name)


def test_safe_join_accepts_plain_names(tmp_path):
    assert safe_join(tmp_path, "assets", "g-1_2.3+x.npz") == (tmp_path / "assets" / "g-1_2.3+x.npz").resolve()
    assert check_relpath("shards/s-0000-ab12.npy") == "shards/s-0000-ab12.npy"
    with pytest.raises(ValueError):
        check_relpath("shards//x.npy")
