r"""Fixed-point types as hls4ml and conifer spell them: ``ap_fixed<W,I>`` (W total bits, I integer bits
including the sign bit), ``ap_ufixed<W,I>`` (unsigned), ``ap_int<W>``, optionally with a rounding and an
overflow mode (``ap_fixed<16,6,AP_RND_CONV,AP_SAT>``).

A signed ``ap_fixed<W,I>`` holds [−2^(I−1), 2^(I−1) − 2^−(W−I)] in steps of 2^−(W−I). hls4ml's default
modes are truncation (AP_TRN) and wrap-around (AP_WRAP): a value outside the range wraps to the other
end, so the integer bits must cover every value a layer holds.

>>> p = parse_precision("ap_fixed<16,6>")
>>> p.total_bits, p.integer_bits, p.max_value, p.resolution
(16, 6, 31.9990234375, 0.0009765625)
>>> integer_bits_for(5.3)
4
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_TOTAL_BITS", "PRECISION_PATTERN", "Precision", "fixed", "integer_bits_for", "parse_precision",
           "quantize"]

MAX_TOTAL_BITS = 64
_MODES = r"(?:\s*,\s*AP_[A-Z_]+){0,3}"
PRECISION_PATTERN = (r"^\s*(?:ap_fixed<\s*\d+\s*,\s*-?\d+" + _MODES + r"\s*>|ap_ufixed<\s*\d+\s*,\s*-?\d+" + _MODES
                     + r"\s*>|ap_u?int<\s*\d+\s*>)\s*$")
_FIXED = re.compile(r"^(ap_u?fixed)<\s*(\d+)\s*,\s*(-?\d+)(.*)>$")
_INT = re.compile(r"^(ap_u?int)<\s*(\d+)\s*>$")


@dataclass(frozen=True)
class Precision:
    """A parsed fixed-point type."""

    text: str
    total_bits: int
    integer_bits: int
    signed: bool

    @property
    def fractional_bits(self) -> int:
        return self.total_bits - self.integer_bits

    @property
    def resolution(self) -> float:
        return 2.0 ** -self.fractional_bits

    @property
    def max_value(self) -> float:
        top = self.integer_bits - 1 if self.signed else self.integer_bits
        return 2.0 ** top - self.resolution


def fixed(total_bits: int, integer_bits: int) -> str:
    """The signed type ``ap_fixed<W,I>``."""
    return f"ap_fixed<{total_bits},{integer_bits}>"


def parse_precision(text: str) -> Precision:
    """Parse a type; raises ValueError naming what is wrong (callers turn it into a ToolInputError)."""
    compact = text.strip()
    match = _FIXED.match(compact)
    if match:
        name, width, integer, _ = match.groups()
        total, whole = int(width), int(integer)
    else:
        match = _INT.match(compact)
        if not match:
            raise ValueError("is not a fixed-point type; write it as ap_fixed<W,I> (e.g. ap_fixed<16,6>), "
                             "ap_ufixed<W,I> or ap_int<W>")
        name, total = match.group(1), int(match.group(2))
        whole = total
    if not 1 <= total <= MAX_TOTAL_BITS:
        raise ValueError(f"has {total} total bits; use 1 to {MAX_TOTAL_BITS}")
    if not 0 <= whole <= total:
        raise ValueError(f"has {whole} integer bits for {total} total bits; use 0 to {total}")
    return Precision(compact, total, whole, signed=not name.startswith("ap_u"))


def integer_bits_for(max_abs: float) -> int:
    """Integer bits (with the sign bit) a signed type needs to hold ±``max_abs`` without wrapping."""
    if not math.isfinite(max_abs) or max_abs <= 0:
        return 1
    return max(1, math.floor(math.log2(max_abs)) + 2)


def quantize(values: np.ndarray, total_bits: int, integer_bits: int) -> np.ndarray:
    """``values`` as a signed ``ap_fixed<W,I>`` with AP_TRN and AP_WRAP (hls4ml's defaults), in float64."""
    step = 2.0 ** -(total_bits - integer_bits)
    codes = np.floor(np.asarray(values, dtype=np.float64) / step)
    half = 2.0 ** (total_bits - 1)
    codes = np.mod(codes + half, 2 * half) - half
    return codes * step
