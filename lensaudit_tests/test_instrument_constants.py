"""The DR10 instrument constants and conventions are written once (lensaudit.survey.instrument):
no module keeps a local copy of the pixel scale, the band list, the stamp size, the AB zero
point or the default Moffat beta."""

import re
from pathlib import Path

from lensaudit.survey import instrument

ROOT = Path(__file__).parents[1]
# a definition or a literal default of a survey constant outside instrument.py
PATTERNS = {
    "pixel scale": re.compile(r"(?<![\w.])0\.262(?![\d])"),
    "DECam CCD pixel scale": re.compile(r"(?<![\w.])0\.263(?![\d])"),
    "band list": re.compile(r"""["']grz["']|\(\s*["']g["'],\s*["']r["'],\s*["']z["']\s*\)"""),
    "stamp size": re.compile(r"(size|npix|STAMP_PIX)\s*(:\s*int\s*)?=\s*101\b"),
    "AB zero point": re.compile(r"22\.5\s*-\s*2\.5|-\s*22\.5\)|AB_ZEROPOINT_NMGY\s*=\s*22\.5"),
    "Moffat beta": re.compile(r"(beta|BETA)\w*\s*[=:]\s*[^=\n]*\b3\.5\b|full(_like)?\([^)]*,\s*3\.5\)"),
    "lenstronomy frame": re.compile(r"transform_pix2angle\s*="),
}


def _code(path: Path) -> str:
    """The file without comments and docstrings (prose may name the values)."""
    import ast
    import io
    import tokenize

    src = path.read_text()
    doc_lines = set()
    for node in ast.walk(ast.parse(src)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
                getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            doc_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT or tok.start[0] in doc_lines:
            continue
        out.append(tok.string)
    return " ".join(out)


def test_no_local_copy_of_a_survey_constant():
    hits = []
    for folder in ("lensaudit", "lensaudit_cli", "assets", "resources"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            if p.name == "instrument.py":
                continue
            code = _code(p)
            hits += [f"{p.relative_to(ROOT)}: {what}" for what, pat in PATTERNS.items() if pat.search(code)]
    assert hits == [], hits


def test_the_constants_are_dr10s():
    assert instrument.PIXSCALE_ARCSEC == 0.262 and instrument.BANDS == "grz" and instrument.STAMP_PIX == 101
    assert instrument.STAMP_CENTRE_PIX == 50 and instrument.AB_ZEROPOINT_NMGY == 22.5
    assert instrument.MOFFAT_BETA == 3.5 and instrument.MOFFAT_BETA_BRACKETS == (2.5, 4.5)
    assert instrument.DECAM_CCD_PIXSCALE_ARCSEC == 0.263 and instrument.COADD_CD_SIGN == (-1.0, 1.0)


def test_lenstronomy_frames_put_pixels_where_the_convention_says():
    """Stamp frame: pixel column 60 of row 50 is x = +10 px; sky frame (east left): x = -10 px;
    row 60 is y = +10 px in both; the centre pixel is (0, 0)."""
    from lenstronomy.Data.imaging_data import ImageData
    import numpy as np

    s, n = instrument.PIXSCALE_ARCSEC, instrument.STAMP_PIX
    for east_left, sign in ((False, 1.0), (True, -1.0)):
        data = ImageData(image_data=np.zeros((n, n)), **instrument.lenstronomy_frame(n, s, east_left=east_left))
        assert np.allclose(data.map_pix2coord(50, 50), (0.0, 0.0), atol=1e-12)
        assert np.allclose(data.map_pix2coord(60, 50), (sign * 10 * s, 0.0))
        assert np.allclose(data.map_pix2coord(50, 60), (0.0, 10 * s))
