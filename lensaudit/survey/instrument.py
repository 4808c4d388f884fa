"""The DR10 (DECam, south) instrument and the project's conventions, written once.

In the spirit of lenstronomy's per-survey ``ObservationConfig``: every module imports these
names; ``lensaudit_tests/test_instrument_constants.py`` fails on a local copy.

- ``PIXSCALE_ARCSEC``: Legacy Surveys coadd pixel scale, 0.262 arcsec/pixel.
- ``BANDS``: the bands of a stamp, in channel order ("grz": g, r, z).
- ``STAMP_PIX``: side of a cutout stamp, 101 pixels; ``STAMP_CENTRE_PIX`` = 50 (0-based).
- ``AB_ZEROPOINT_NMGY``: fluxes in nanomaggies, AB mag = 22.5 - 2.5 log10(flux_nmgy).
- ``MOFFAT_BETA``: the default Moffat beta of the injection PSF (3.5); the systematics
  brackets use ``MOFFAT_BETA_BRACKETS`` (2.5, 4.5) (DESIGN s3 "Injection engine").
- Axis convention (``AXES``): coordinates inside a stamp are arcsec from the centre pixel
  (50, 50), x along +columns, y along +rows (lenstronomy's pixel-to-angle transform
  ``diag(PIXSCALE_ARCSEC, PIXSCALE_ARCSEC)``), for injections, the lenstronomy reference
  and the mock sky alike.
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
DR10_BLOCK_NOISE_FACTOR = 1.36
AXES = "arcsec from pixel (50, 50); x along +columns, y along +rows"
