"""Fixed-point requantization: TFLite's `MultiplyByQuantizedMultiplier` in its single-rounding
form (`TFLITE_SINGLE_ROUNDING`, which CMSIS-NN also offers as `CMSIS_NN_USE_SINGLE_ROUNDING`).

A real multiplier M > 0 is `m · 2^(shift − 31)` with the Q31 multiplier m in [2^30, 2^31) and
shift in [−31, 30]. `multiply_by_quantized_multiplier(x, m, shift)` computes, on int32 x,

    (x · m + 2^(30 − shift)) >> (31 − shift)      (in int64, the shift arithmetic)

i.e. x · M rounded once, half up (toward +∞), saturated to int32. Why one rounding and not
gemmlowp's two (a doubling high multiply rounded, then a rounding divide by a power of two):
ONNX Runtime's int8 kernels requantize in float and round once. On MobileNetV2 1.0/224, each op
of ONNX Runtime against the integer op on the same int8 inputs: 99.66 % of the values equal with
two roundings, 99.9999 % with one (`archspec verify --quantize int8`, the rest one step apart);
at the classifier, after 65 layers, 13 % equal (13 steps at most) against 48 % (6 at most).

The C target's helper (`q_mbqm` in `templates/c/ops/int8.c.j2`) is the same expression.
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


def multiply_by_quantized_multiplier(
    acc: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int
) -> np.ndarray:
    """x · m · 2^(shift − 31) rounded once, half up, saturated to int32 (see the module
    docstring); `multiplier` and `shift` broadcast against `acc` (per-channel arrays along the
    channel axis). Returns int32."""
    x = np.asarray(acc, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    total = 31 - np.asarray(shift, dtype=np.int64)
    out = (x * m + (np.int64(1) << (total - 1))) >> total
    return np.clip(out, INT32_MIN, INT32_MAX).astype(np.int32)
