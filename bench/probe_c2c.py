"""Probe (issue 16): the PSF stage's inverse transform as torch's c2r (irfft2, which clones its input)
against a c2c ifft2 of two stamps packed as one complex image (no clone), same batch, on a GPU."""
import time

import torch


def t(fn, reps=20):
    fn(); torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps * 1e3


B, n = 8192, 144
m = n // 2 + 1
half = torch.randn((B, 3, n, m), dtype=torch.complex64, device="cuda")
full = torch.randn((B // 2, 3, n, n), dtype=torch.complex64, device="cuda")
real = torch.randn((B, n, n), device="cuda")
pair = torch.randn((B // 2, n, n), dtype=torch.complex64, device="cuda")
for r in range(2):
    print(f"round {r}: irfft2 (B, 3, {n}, {m}) -> real: {t(lambda: torch.fft.irfft2(half, s=(n, n), norm='forward')):.2f} ms; "
          f"ifft2 (B/2, 3, {n}, {n}) c2c: {t(lambda: torch.fft.ifft2(full, norm='forward')):.2f} ms; "
          f"rfft2 (B, {n}, {n}): {t(lambda: torch.fft.rfft2(real)):.2f} ms; fft2 (B/2, {n}, {n}) c2c: "
          f"{t(lambda: torch.fft.fft2(pair)):.2f} ms; clone of the c2r input: {t(lambda: half.clone()):.2f} ms")
