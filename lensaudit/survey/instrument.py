"""The DR10 (DECam, south) instrument and the project's conventions, written once.

In the spirit of lenstronomy's per-survey ``ObservationConfig``: every module imports these
names; ``lensaudit_tests/test_instrument_constants.py`` fails on a local copy.

- ``PIXSCALE_ARCSEC``: Legacy Surveys coadd pixel scale, 0.262 arcsec/pixel.
- ``BANDS``: the bands of a stamp, in channel order ("grz": g, r, z).
- ``STAMP_PIX``: side of a cutout stamp, 101 pixels; ``STAMP_CENTRE_PIX`` = 50 (0-based).
- ``AB_ZEROPOINT_NMGY``: fluxes in nanomaggies, AB mag = 22.5 - 2.5 log10(flux_nmgy).
- ``MOFFAT_BETA``: the default Moffat beta of the injection PSF (3.5); the systematics
  brackets use ``MOFFAT_BETA_BRACKETS`` (2.5, 4.5) (DESIGN s3 "Injection engine").
- ``DECAM_CCD_PIXSCALE_ARCSEC``: nominal DECam CCD pixel scale, 0.263 arcsec/pixel (NOIRLab's
  DECam figure; a CCD's own scale comes from its survey-ccds CD matrix,
  ``survey.psfex.ccd_pixscale_arcsec``: 0.2623 on the vendored DR9 rows); used for a PSFEx model
  read without its CCD row.
- ``COADD_CD_SIGN``: signs of the coadd CD matrix diagonal (CD1_1 < 0: east to the left, CD2_2 > 0:
  north up, no cross terms), as in every Legacy Surveys brick header (the vendored DR6 coadd's).
- Axis convention (``AXES``): coordinates inside a stamp are arcsec from the centre pixel
  (50, 50), y along +rows.  Two frames differ only in the sign of x:
  the *stamp frame* (injections, the lenstronomy reference of the injection renderer):
  x along +columns, lenstronomy's pixel-to-angle transform ``diag(+s, s)``; the *sky frame*
  (the mock sky, whose catalogue shapes e1/e2 and neighbour offsets are on the sky, east left
  as in Legacy Surveys images): x = RA offset, along -columns, ``diag(-s, s)``.  An image
  rendered in the stamp frame is the sky-frame image mirrored left-right
  (``lensaudit.mock.render.render_arc``).  ``lenstronomy_frame`` gives lenstronomy's
  ``ImageData`` keywords for either frame, for every lenstronomy set-up of the project.
- ``DR10_BLOCK_NOISE_FACTOR``: the 5x5 block-noise factor of DR10 coadd noise
  (``lensaudit.survey.noise.block_noise_factor``): the median over the g, r, z bands of the
  six real DR10 cutouts vendored in ``lensaudit_tests/data/real`` is 1.36 (range 1.20-1.52);
  ``test_mock_correlated_noise.py`` measures it there and fails when this value leaves it.
  ``MockSkyConfig(noise_block_factor=DR10_BLOCK_NOISE_FACTOR)`` gives the mock sky DR10-like
  correlated noise.
"""

from __future__ import annotations

PIXSCALE_ARCSEC = 0.262
BANDS = "grz"
STAMP_PIX = 101
STAMP_CENTRE_PIX = (STAMP_PIX - 1) // 2
AB_ZEROPOINT_NMGY = 22.5
MOFFAT_BETA = 3.5
MOFFAT_BETA_BRACKETS = (2.5, 4.5)
DECAM_CCD_PIXSCALE_ARCSEC = 0.263
COADD_CD_SIGN = (-1.0, 1.0)
DR10_BLOCK_NOISE_FACTOR = 1.36
AXES = "arcsec from pixel (50, 50); y along +rows; x along +columns (stamp frame) or east-left (sky frame)"


def lenstronomy_frame(npix: int, step_arcsec: float, east_left: bool = False) -> dict:
    """lenstronomy ``ImageData`` keywords of an npix x npix grid of ``step_arcsec`` pixels centred
    on the grid's centre: ``transform_pix2angle`` diag(+-step, step) and the angle of pixel (0, 0).
    ``east_left``: the sky frame (x = RA offset, increasing to the left); else the stamp frame."""
    import numpy as np

    c = (npix - 1) / 2
    sx = -step_arcsec if east_left else step_arcsec
    return {"transform_pix2angle": np.diag([sx, step_arcsec]), "ra_at_xy_0": -c * sx, "dec_at_xy_0": -c * step_arcsec}
