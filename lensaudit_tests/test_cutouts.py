"""Cutout sources, NPZ format and QC on real data and on a local HTTP server."""

import http.server
import io
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from lensaudit.cutouts.coadd import CoaddSource
from lensaudit.cutouts.http import HttpCutoutSource
from lensaudit.cutouts.npz import read_npz, write_npz
from lensaudit.cutouts.qc import quality
from lensaudit.cutouts.result import Cutout

REPO = Path(__file__).resolve().parents[1]
BRICK = "dr6_coadd_brick_0959p805"


@pytest.fixture(scope="module")
def brick(real_data):
    d = real_data / BRICK
    h = fits.open(d / "legacysurvey-0959p805-image-g.fits.fz")
    image, wcs = h[1].data, WCS(h[1].header)
    ivar = fits.getdata(d / "legacysurvey-0959p805-invvar-g.fits.fz", 1)
    return d, image, wcs, ivar


def test_coadd_cutout_equals_the_wcs_slice_and_round_trips(brick):
    d, image, wcs, ivar = brick
    src = CoaddSource(str(d))
    for (x0, y0) in ((411.3, 951.7), (300.0, 400.49), (600.6, 1500.2), (850.0, 1870.0)):
        ra, dec = wcs.pixel_to_world_values(x0, y0)
        c = src.cutout(float(ra), float(dec), bands="g")
        assert c.ok, c.reason
        from astropy.nddata import Cutout2D

        ref = Cutout2D(image, SkyCoord(ra, dec, unit="deg"), 101, wcs=wcs, mode="strict")
        ref_ivar = Cutout2D(ivar, SkyCoord(ra, dec, unit="deg"), 101, wcs=wcs, mode="strict")
        want = np.where(ref_ivar.data > 0, ref.data, np.nan)
        assert np.array_equal(c.data[0], want.astype(np.float32), equal_nan=True)
        assert abs(c.meta["dx_pix"]) <= 0.5 and abs(c.meta["dy_pix"]) <= 0.5
        # RA/Dec -> pixel -> RA/Dec
        ra2, dec2 = wcs.pixel_to_world_values(*wcs.world_to_pixel_values(ra, dec))
        sep = SkyCoord(ra, dec, unit="deg").separation(SkyCoord(ra2, dec2, unit="deg")).arcsec
        assert sep < 0.01


def test_coadd_failures_have_reasons(brick):
    d, image, wcs, ivar = brick
    src = CoaddSource(str(d))
    from lensaudit.survey.bricks import brick_at

    b = brick_at(95.95, 80.5)
    # inside the brick, 0.001 deg below its top edge: a 101 px stamp fits in the image
    # margin, a 301 px stamp does not
    assert src.cutout((b.ra1 + b.ra2) / 2, b.dec2 - 0.001, bands="g", size=101).reason != "brick_edge"
    assert src.cutout((b.ra1 + b.ra2) / 2, b.dec2 - 0.001, bands="g", size=301).reason == "brick_edge"
    # a target in the image margin belongs to the neighbouring brick, which is not here
    ra, dec = wcs.pixel_to_world_values(10.0, 951.0)
    assert brick_at(float(ra), float(dec)).brickname != "0959p805"
    assert src.cutout(float(ra), float(dec), bands="g").reason == "missing_band_g"
    ra, dec = wcs.pixel_to_world_values(411.0, 951.0)
    assert src.cutout(float(ra), float(dec), bands="gr").reason == "missing_band_r"
    assert src.cutout(float("nan"), 1.0, bands="g").reason == "invalid_coords"
    assert src.cutout(10.0, 10.0, bands="g").reason == "missing_band_g"  # no such brick here


def test_coadd_empty_hdu_is_a_failure(tmp_path):
    fits.HDUList([fits.PrimaryHDU()]).writeto(tmp_path / "legacysurvey-0959p805-image-g.fits.fz")
    c = CoaddSource(str(tmp_path)).cutout(95.95, 80.5, bands="g")
    assert not c.ok and "unreadable_brick_g" in c.reason


def test_cutout_cli_on_the_real_brick_matches_astropy(brick, tmp_path):
    d, image, wcs, ivar = brick
    ra, dec = wcs.pixel_to_world_values(411.2, 951.6)
    out = tmp_path / "c.npz"
    r = subprocess.run([sys.executable, "-m", "lensaudit_cli.main", "cutout", "--ra", repr(float(ra)), "--dec",
                        repr(float(dec)), "--source", "coadd", "--coadd-dir", str(d), "--bands", "g", "--out", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    z = np.load(out)
    assert z["cutout"].shape == (101, 101, 1) and z["cutout"].dtype == np.float32 and str(z["meta_bands_requested"]) == "g"
    from astropy.nddata import Cutout2D

    ref = Cutout2D(image, SkyCoord(float(ra), float(dec), unit="deg"), 101, wcs=wcs, mode="strict").data
    assert ivar[902:1003, 361:462].min() > 0  # fully covered: the stamp is the raw image slice
    assert np.array_equal(z["cutout"][:, :, 0], ref.astype(np.float32))
    assert np.array_equal(ref, image[902:1003, 361:462])
    r = subprocess.run([sys.executable, "-m", "lensaudit_cli.main", "cutout", "--ra", "10", "--dec", "10", "--coadd-dir",
                        str(d), "--bands", "g", "--out", str(tmp_path / "x.npz")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 1 and "missing_band_g" in r.stderr and not (tmp_path / "x.npz").exists()


def test_real_npz_files_load_and_pass_qc(real_data):
    files = sorted((real_data / "dr10_cutouts_lens_candidates").glob("*.npz"))
    assert len(files) == 6
    for f in files:
        c = read_npz(f, expect_bands="grz")
        assert c.ok and c.data.shape == (3, 101, 101) and c.data.dtype == np.float32
        q = quality(c.data, "grz")
        assert q["qc_ok"], (f.name, q["qc_reason"])
        assert bool(c.meta["quality_ok"]) and abs(q["mad_r"] - 1.4826 * 0) >= 0
        assert np.isfinite([q[f"p50_{b}"] for b in "grz"]).all()


def test_npz_round_trip_and_bad_files(tmp_path):
    data = np.random.default_rng(0).normal(size=(3, 101, 101)).astype(np.float32)
    p = write_npz(tmp_path / "a.npz", Cutout(True, "grz", data), ra=1.0, galaxy_id="x_1")
    c = read_npz(p)
    assert c.ok and np.array_equal(c.data, data) and c.meta["galaxy_id"] == "x_1"
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip")
    assert read_npz(tmp_path / "corrupt.npz").reason.startswith("npz_unreadable")
    np.savez(tmp_path / "shape.npz", cutout=np.zeros((64, 64, 3), np.float32))
    assert read_npz(tmp_path / "shape.npz").reason.startswith("wrong_size")
    np.savez(tmp_path / "nokey.npz", image=np.zeros((101, 101, 3), np.float32))
    assert read_npz(tmp_path / "nokey.npz").reason == "npz_missing_cutout_key"
    with pytest.raises(ValueError):
        write_npz(tmp_path / "f.npz", Cutout.failure("grz", "x"))


def test_qc_reasons():
    ok = np.random.default_rng(1).normal(0, 0.01, (3, 101, 101)).astype(np.float32)
    assert quality(ok, "grz")["qc_ok"]
    nan_band = ok.copy()
    nan_band[1] = np.nan
    assert quality(nan_band, "grz")["qc_reason"] == "missing_band_r"
    core = ok.copy()
    core[:, 50, 50] = np.nan
    assert quality(core, "grz")["qc_reason"] == "core_nan"
    patch = ok.copy()
    patch[:, 26:34, 26:34] = np.nan  # 64 of 2500 central pixels, 2.6 %
    assert quality(patch, "grz")["qc_reason"] == "central_nan_frac"
    assert quality(ok[:, :64, :64], "grz")["qc_reason"].startswith("wrong_shape")
    assert quality(None, "grz")["qc_reason"] == "no_data"


# ---- HTTP source against a local server ---------------------------------------------

def _fits_bytes(shape=(3, 101, 101)):
    buf = io.BytesIO()
    fits.PrimaryHDU(np.ones(shape, np.float32)).writeto(buf)
    return buf.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    plan: list = []
    hits = 0

    def log_message(self, *a):
        pass

    def do_GET(self):
        type(self).hits += 1
        action = self.plan.pop(0) if self.plan else "ok"
        body = _fits_bytes()
        if action == "500":
            self.send_response(500)
            self.end_headers()
        elif action == "404":
            self.send_response(404)
            self.end_headers()
        elif action == "slow":
            import time

            time.sleep(1.0)
            try:  # the client timed out and left: expected, not a server error
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
        elif action == "truncated":
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif action == "garbage":
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


@pytest.fixture()
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    _Handler.plan, _Handler.hits = [], 0
    yield f"http://127.0.0.1:{srv.server_address[1]}/viewer/fits-cutout"
    srv.shutdown()


def _src(url, tmp_path, **kw):
    return HttpCutoutSource(url, cache_dir=tmp_path / "cache", timeout_s=0.5, retries=3, backoff_s=0.01,
                            min_interval_s=0.0, **kw)


def test_http_retries_then_succeeds_and_caches(server, tmp_path):
    _Handler.plan = ["500", "truncated", "garbage", "ok"]
    src = _src(server, tmp_path)
    c = src.cutout(10.0, 1.0)
    assert c.ok and c.data.shape == (3, 101, 101) and c.meta["attempts"] == 4 and _Handler.hits == 4
    c2 = src.cutout(10.0, 1.0)
    assert c2.ok and c2.meta.get("cached") and _Handler.hits == 4  # served from the disk cache


@pytest.mark.parametrize("plan,reason", [(["500"] * 4, "http_500"), (["slow"] * 4, "http_timeout"),
                                         (["truncated"] * 4, "http_truncated_body"), (["404"], "http_404")])
def test_http_failures_are_rows_with_reasons(server, tmp_path, plan, reason):
    _Handler.plan = list(plan)
    c = _src(server, tmp_path).cutout(10.0, 1.0)
    assert not c.ok and c.reason == reason and c.data is None


def test_http_only_to_the_configured_host(tmp_path):
    src = HttpCutoutSource("http://127.0.0.1:9/x", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="only"):
        src._checked("http://example.org/viewer/fits-cutout?ra=1")
    with pytest.raises(ValueError):
        HttpCutoutSource("file:///etc/passwd")
    assert "layer=ls-dr10" in src.url(1.0, 2.0, "grz", 101) and "pixscale=0.262" in src.url(1.0, 2.0, "grz", 101)


def test_cutout_cli_mock_source(tmp_path, lenscat_all):
    from lensaudit.mock.config import MOCK_SWEEP_BOXES

    box = MOCK_SWEEP_BOXES[0]
    lens = lenscat_all[(lenscat_all.lens_type == "galaxy") & box.contains(lenscat_all.ra, lenscat_all.dec)].iloc[0]
    out = tmp_path / "m.npz"
    args = ["cutout", "--source", "mock", "--home", str(tmp_path / "home"), "--bands", "gr", "--out", str(out)]
    r = subprocess.run([sys.executable, "-m", "lensaudit_cli.main", *args[:-2], "--ra", repr(float(lens.ra)), "--dec",
                        repr(float(lens.dec)), "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    z = np.load(out)
    assert z["cutout"].shape == (101, 101, 2) and str(z["meta_bands_requested"]) == "gr" and float(z["meta_sep_arcsec"]) < 1.0
    r = subprocess.run([sys.executable, "-m", "lensaudit_cli.main", *args[:-2], "--ra", "100.0", "--dec", "-80.0",
                        "--out", str(tmp_path / "n.npz")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "outside_mock_sky" in r.stderr
