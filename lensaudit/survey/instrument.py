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
  (50, 50), x along +columns, y along +rows (lenstronomy's pixel-to-angle transform
  ``diag(PIXSCALE_ARCSEC, PIXSCALE_ARCSEC)``), for injections, the lenstronomy reference
  and the mock sky alike.
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
AXES = "arcsec from pixel (50, 50); x along +columns, y along +rows"
