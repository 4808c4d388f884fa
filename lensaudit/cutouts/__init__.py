"""Cutouts: sources (coadd bricks, HTTP service; mock to come), the research group's NPZ
format, and quality control.  A source returns a cutout or a failure with a reason,
never a half-valid array."""
