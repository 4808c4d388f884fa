"""MASKBITS bit names of the Legacy Surveys DR9/DR10 Tractor catalogues.

From https://www.legacysurvey.org/dr10/bitmasks/#maskbits .
"""

from __future__ import annotations

import numpy as np

MASKBITS = {
    "NPRIMARY": 0, "BRIGHT": 1, "SATUR_G": 2, "SATUR_R": 3, "SATUR_Z": 4,
    "ALLMASK_G": 5, "ALLMASK_R": 6, "ALLMASK_Z": 7, "WISEM1": 8, "WISEM2": 9,
    "BAILOUT": 10, "MEDIUM": 11, "GALAXY": 12, "CLUSTER": 13, "SATUR_I": 14,
    "ALLMASK_I": 15, "SUB_BLOB": 16,
}
BIT_NAMES = {v: k for k, v in MASKBITS.items()}

#: Bits that exclude a galaxy from the N1 parity pool (DESIGN section 3).
N1_EXCLUDED_BITS = (1, 5, 6, 7, 11, 12, 13)


def mask_of(bits) -> int:
    return int(sum(1 << int(b) for b in bits))


def has_any_bit(maskbits, bits):
    """True where any of ``bits`` is set (vectorised)."""
    return (np.asarray(maskbits).astype(np.int64) & mask_of(bits)) != 0


def bit_names(value: int) -> list[str]:
    return [BIT_NAMES.get(b, f"BIT{b}") for b in range(32) if int(value) >> b & 1]
