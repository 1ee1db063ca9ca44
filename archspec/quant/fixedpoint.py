"""TFLite's fixed-point requantization (gemmlowp's `SaturatingRoundingDoublingHighMul` and
`RoundingDivideByPOT`, composed as TFLite's `MultiplyByQuantizedMultiplier`).

A real multiplier M > 0 is `m · 2^(shift − 31)` with the Q31 multiplier m in [2^30, 2^31).
`multiply_by_quantized_multiplier(x, m, shift)` computes, on int32 x:

1. `x · 2^max(shift, 0)`, saturated to int32 (TFLite assumes it does not overflow; the C
   target saturates the same way);
2. the doubling high multiply: `(a · m + nudge) / 2^31` truncated toward zero, nudge = 2^30 for
   a · m ≥ 0 and 1 − 2^30 otherwise, i.e. `a · m / 2^31` rounded half up (toward +∞); the one
   overflowing case a = m = −2^31 saturates to 2^31 − 1 (m is never negative here);
3. the rounding divide by `2^max(−shift, 0)`: rounded half away from zero.

The C target's helper (`templates/c/ops/requant.c.j2`) is the same three steps in int64.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(Q31 multiplier, shift) with real ≈ multiplier · 2^(shift − 31), multiplier in
    [2^30, 2^31) (TFLite's `QuantizeMultiplier`: frexp, the mantissa rounded half away from zero
    to 31 bits, 2^31 folded back into 2^30 with shift + 1). 0 for 0 and for multipliers below
    2^−32 (their product with any int32 rounds to 0 or ±1; TFLite flushes them to 0 too).
    Multipliers of 2^30 or more are refused (ValueError): no int8 layer needs them."""
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"a requantization multiplier must be finite and >= 0, got {real!r}")
    if real == 0.0:
        return 0, 0
    mantissa, shift = math.frexp(real)  # real = mantissa · 2^shift, mantissa in [0.5, 1)
    q = math.floor(mantissa * 2**31 + 0.5)  # mantissa > 0: half away from zero
    if q == 2**31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise ValueError(f"requantization multiplier {real!r} is too large (>= 2^30)")
    return q, shift


def _round_half_up_shift31(prod: np.ndarray) -> np.ndarray:
    """(prod + nudge) / 2^31 truncated toward zero, on int64 products that fit in 63 bits."""
    nudge = np.where(prod >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    total = prod + nudge
    # truncation toward zero of total / 2^31
    q = np.abs(total) >> 31
    return np.where(total < 0, -q, q)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """x / 2^exponent rounded half away from zero (gemmlowp's `RoundingDivideByPOT`), int64."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(
    acc: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int
) -> np.ndarray:
    """TFLite's `MultiplyByQuantizedMultiplier` on int32 values (see the module docstring for
    the rounding); `multiplier` and `shift` broadcast against `acc` (per-channel arrays along
    the channel axis). Returns int32."""
    x = np.asarray(acc, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    a = np.clip(x << left, INT32_MIN, INT32_MAX)
    high = _round_half_up_shift31(a * m)
    high = np.where((a == INT32_MIN) & (m == INT32_MIN), INT32_MAX, high)
    out = rounding_divide_by_pot(high, right)
    return out.astype(np.int32)
