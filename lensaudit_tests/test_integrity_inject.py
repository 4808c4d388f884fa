"""``lensaudit inject``: range checks naming row and key, size limits, never inf/NaN with exit 0."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lensaudit.injection import params as P
from lensaudit.injection.cli_render import inject_to_npz
from lensaudit.injection.params import InvalidParameters, validate_rows
from lensaudit_cli.main import main

REPO = Path(__file__).resolve().parents[1]


def row(**kw):
    base = dict(theta_e_arcsec=1.5, e1=0.1, e2=-0.05, gamma1=0.03, gamma2=0.01, center_x_arcsec=0.05,
                center_y_arcsec=-0.1, src_x_arcsec=0.1, src_y_arcsec=0.05, src_r_sersic_arcsec=0.2, src_n_sersic=1.0,
                src_e1=0.1, src_e2=0.0, src_mag_g=23.0, src_mag_r=22.5, src_mag_z=22.0, psf_fwhm_g_arcsec=1.3,
                psf_fwhm_r_arcsec=1.2, psf_fwhm_z_arcsec=1.1, moffat_beta=3.5, supersample=2)
    base.update(kw)
    return base


@pytest.mark.parametrize("key,value", [
    ("src_mag_r", 5.0), ("src_mag_g", 40.0), ("src_mag_z", -3.0),
    ("center_x_arcsec", 14.0), ("center_y_arcsec", -20.0), ("src_x_arcsec", 1e6), ("src_y_arcsec", -13.2),
    ("theta_e_arcsec", 0.0), ("theta_e_arcsec", 12.0),
    ("psf_fwhm_g_arcsec", 0.0), ("psf_fwhm_r_arcsec", 4.0), ("psf_fwhm_z_arcsec", -1.0),
    ("e1", 1.5), ("src_e2", -2.0), ("supersample", 0), ("src_mag_r", 10**400), ("src_mag_r", "22"),
])
def test_out_of_range_values_name_row_and_key(key, value):
    with pytest.raises(InvalidParameters, match=rf"row 1: keys? '{key}'|row 1: keys '[a-z_0-9]+'/'{key}'"):
        P.check_renderable(validate_rows([row(), row(**{key: value})]))


def test_size_limits_up_front(tmp_path, monkeypatch):
    with pytest.raises(InvalidParameters, match="at most"):
        validate_rows([row()] * (P.MAX_ROWS + 1))
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b" " * (P.MAX_PARAMS_BYTES + 1) + b"]")
    with pytest.raises(InvalidParameters, match="bytes: at most"):
        inject_to_npz(big, tmp_path / "o.npz")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(InvalidParameters, match="cannot read"):
        inject_to_npz(deep, tmp_path / "o.npz")
    assert not (tmp_path / "o.npz").exists()


def test_non_finite_render_is_refused_and_nothing_written(tmp_path, monkeypatch):
    import torch

    from lensaudit.injection import render

    real = render.render_arcs

    def planted(cols, **kw):
        res = real(cols, **kw)
        res.images[1, 0, 50, 50] = float("inf")
        return res

    monkeypatch.setattr(render, "render_arcs", planted)
    p = tmp_path / "p.json"
    p.write_text(json.dumps([row(), row(src_x_arcsec=0.2)]))
    with pytest.raises(InvalidParameters, match=r"rows \[1\] render non-finite"):
        inject_to_npz(p, tmp_path / "o.npz")
    assert not (tmp_path / "o.npz").exists()
    assert main(["inject", "--params", str(p), "--out", str(tmp_path / "o.npz")]) == 1
    assert not (tmp_path / "o.npz").exists()
    monkeypatch.setattr(render, "render_arcs", real)
    assert main(["inject", "--params", str(p), "--out", str(tmp_path / "o.npz")]) == 0
    z = np.load(tmp_path / "o.npz")
    assert np.isfinite(z["images"]).all() and z["images"].shape == (2, 3, 101, 101)
    assert torch.is_tensor(torch.zeros(1))


def test_cli_bad_inputs_exit_1_without_traceback(tmp_path):
    cases = {"nan.json": "[" + json.dumps(row()).replace("1.5", "NaN", 1) + "]", "notjson.json": "[{",
             "dict.json": json.dumps(row()), "mag.json": json.dumps([row(), row(src_mag_r=3.0)])}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    for name in [*cases, "binary.json", "missing.json"]:
        r = subprocess.run([sys.executable, "-m", "lensaudit_cli.main", "inject", "--params", str(tmp_path / name),
                            "--out", str(tmp_path / "o.npz")], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert r.returncode == 1 and "Traceback" not in r.stderr and "lensaudit inject:" in r.stderr, (name, r.stderr)
        if name == "mag.json":
            assert "row 1: key 'src_mag_r'" in r.stderr
    assert not (tmp_path / "o.npz").exists()
