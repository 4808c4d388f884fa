"""Coadd bricks and the survey-bricks table read from an HTTP(S) mirror (fsspec's HTTP
filesystem, byte-range requests) give the same stamps and rows as the local files: the real
DR6 brick served from 127.0.0.1 by a server that honours Range requests, as the NERSC portal does."""

import http.server
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

REAL = Path(__file__).parent / "data" / "real" / "dr6_coadd_brick_0959p805"
BRICK = "0959p805"


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """http.server's file handler plus single byte ranges (206 Partial Content)."""

    ranges = 0

    def log_message(self, *a):
        pass

    def send_head(self):
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not m or not path.is_file():
            return super().send_head()
        data = path.read_bytes()
        a = int(m.group(1))
        b = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
        type(self).ranges += 1
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {a}-{b}/{len(data)}")
        self.send_header("Content-Length", str(b - a + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        import io

        return io.BytesIO(data[a:b + 1])

    def end_headers(self):
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()


@pytest.fixture
def mirror(tmp_path):
    brick = tmp_path / "dr10" / "south" / "coadd" / BRICK[:3] / BRICK
    brick.mkdir(parents=True)
    for f in REAL.glob("legacysurvey-*.fits.fz"):
        shutil.copy(f, brick / f.name)
    shutil.copy(REAL / "survey-bricks-dr6.fits.gz", tmp_path / "dr10" / "south" / "survey-bricks.fits.gz")
    import functools

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_RangeHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/dr10/south"
    finally:
        server.shutdown()
        server.server_close()


def test_coadd_cutouts_over_http_equal_the_local_files(mirror):
    from astropy.io import fits
    from astropy.wcs import WCS

    from lensaudit.cutouts.coadd import CoaddSource

    hdr = fits.getheader(REAL / f"legacysurvey-{BRICK}-image-g.fits.fz", 1)
    ra, dec = WCS(hdr).pixel_to_world_values(np.array([400.0, 1800.0]), np.array([900.0, 2000.0]))
    local = CoaddSource(str(REAL)).cutouts(ra, dec, bands="g")
    _RangeHandler.ranges = 0
    remote = CoaddSource(mirror).cutouts(ra, dec, bands="g")
    assert _RangeHandler.ranges > 0  # read by byte ranges, as from the NERSC portal
    assert all(c.ok for c in local) and all(c.ok for c in remote)
    assert [c.data.tobytes() for c in remote] == [c.data.tobytes() for c in local]
    assert CoaddSource(mirror).cutout(float(ra[0]), float(dec[0]), bands="g").data.tobytes() == local[0].data.tobytes()
    missing = CoaddSource(mirror.replace("/south", "/north")).cutout(float(ra[0]), float(dec[0]), bands="g")
    assert not missing.ok and missing.reason  # a mirror without the brick: a failure with its reason


def test_survey_bricks_table_over_http(mirror):
    from lensaudit.survey.bricks import read_survey_bricks

    remote = read_survey_bricks(f"{mirror}/survey-bricks.fits.gz")
    local = read_survey_bricks(str(REAL / "survey-bricks-dr6.fits.gz"))
    assert remote.equals(local) and BRICK in remote.index
