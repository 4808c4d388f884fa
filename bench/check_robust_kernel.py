"""GPU check of ``detector.robust_kernel`` (issue 16): the one-pass Triton ``raw_robust`` against
torch's CUDA operations, to the bit.

Runs the planted cases of ``lensaudit_tests/test_robust_kernel.py`` (``_checks("cuda")``: NaN and
+-inf in the annulus, odd and even finite counts, ties, flat and empty bands, clipped pixels,
subnormals, negative zeros; 65 px and 101 px stamps, crops 64 and 101, contiguous and channels_last
output, and a planted one-pixel annulus shift that must differ), then ``--n`` random 101 px stamps
(noise, a random NaN fraction per band, a few +-inf) in batches of 4,096 at both crops.
Prints one JSON line; exit 1 if any value differs.  The timings are bench_detector.py's
(``--robust kernel,torch``).  Run: PYTHONPATH=. python bench/check_robust_kernel.py [--n 65536]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def main() -> int:
    import torch

    from lensaudit.detector.preprocess import raw_robust
    from lensaudit_tests.test_robust_kernel import _checks, _same

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=65536)
    ns = ap.parse_args()
    if not torch.cuda.is_available():
        print("check_robust_kernel.py compares the kernel with torch's CUDA operations; no CUDA device here "
              "(the CPU equality tests are lensaudit_tests/test_robust_kernel.py)")
        return 2
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cases": _checks("cuda")}
    rng = np.random.default_rng(2)
    equal = {64: True, 101: True}
    for s in range(0, ns.n, 4096):
        x = rng.normal(0.01, 0.02, (min(4096, ns.n - s), 3, 101, 101)).astype(np.float32)
        frac = rng.uniform(0, 0.05, x.shape[:2])[..., None, None]
        x[rng.random(x.shape) < frac] = np.nan
        x[rng.random(x.shape) < 1e-5] = np.inf
        xt = torch.from_numpy(x).cuda()
        for crop in equal:
            want = raw_robust(xt, crop=crop, kernel=False)
            got = raw_robust(xt, crop=crop, kernel=True, channels_last=True)
            equal[crop] &= _same(got[0], want[0]) and bool(torch.equal(got[1], want[1]))
    out["random_101px_stamps"] = ns.n
    out["random_equal_crop64_crop101"] = [equal[64], equal[101]]
    print(json.dumps(out))
    cases = out["cases"]
    ok = all(equal.values()) and cases["planted_shifted_annulus_differs"] and all(
        v["values"] and v["degenerate"] and v["channels_last_values"] and v["channels_last_layout"]
        for v in cases.values() if isinstance(v, dict))
    print("raw_robust kernel equal to torch's CUDA operations:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
