"""lenstronomy reference renderer: the same injection through lenstronomy's ImageModel.

Used by the parity tests and the CPU benchmark; never on the production path.  One
ImageModel per band (SIE + SHEAR lens, SERSIC_ELLIPSE source, supersampling 4 without
supersampled convolution, a PIXEL PSF equal to our Moffat kernel).
"""

from __future__ import annotations

import numpy as np
from lensaudit.survey.instrument import PIXSCALE_ARCSEC, STAMP_PIX, lenstronomy_frame


def lenstronomy_render(row: dict, kernels: np.ndarray, npix: int = STAMP_PIX, pixscale: float = PIXSCALE_ARCSEC) -> np.ndarray:
    """(3, npix, npix) nmgy per pixel for one parameter row; kernels (3, K, K)."""
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    from lensaudit.injection.render import mag_to_nmgy
    from lensaudit.survey.instrument import BANDS

    data = ImageData(image_data=np.zeros((npix, npix)), **lenstronomy_frame(npix, pixscale))
    lens = LensModel(["SIE", "SHEAR"])
    light = LightModel(["SERSIC_ELLIPSE"])
    kw_lens = [{"theta_E": row["theta_e_arcsec"], "e1": row["e1"], "e2": row["e2"],
                "center_x": row["center_x_arcsec"], "center_y": row["center_y_arcsec"]},
               {"gamma1": row["gamma1"], "gamma2": row["gamma2"]}]
    from lensaudit.injection.source import sersic_unit_amp

    n = row["src_n_sersic"]
    unit_amp = sersic_unit_amp(row["src_r_sersic_arcsec"], n)
    out = []
    for i, b in enumerate(BANDS):
        psf = PSF(psf_type="PIXEL", kernel_point_source=np.asarray(kernels[i], dtype=np.float64))
        model = ImageModel(data, psf, lens_model_class=lens, source_model_class=light,
                           kwargs_numerics={"supersampling_factor": int(row.get("supersample", 4)),
                                            "supersampling_convolution": False})
        kw_src = [{"amp": unit_amp * float(mag_to_nmgy(row[f"src_mag_{b}"])), "R_sersic": row["src_r_sersic_arcsec"],
                   "n_sersic": n, "e1": row["src_e1"], "e2": row["src_e2"],
                   "center_x": row["src_x_arcsec"], "center_y": row["src_y_arcsec"]}]
        out.append(model.image(kwargs_lens=kw_lens, kwargs_source=kw_src))
    return np.stack(out)
