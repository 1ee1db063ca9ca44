"""int8 post-training quantization (DESIGN.md §4b): parameters, calibration, TFLite's fixed-point
arithmetic and the integer network in numpy that every int8 target is checked against.

* `params`: `TensorQ`, `WeightQ`, `QParams` and what int8 supports (`check_supported`);
* `calibrate`: ranges from calibration inputs, activation parameters, weight quantization;
* `fixedpoint`: `quantize_multiplier` and `multiply_by_quantized_multiplier`;
* `reference`: `int8_forward`, `quantize_tensor`, `dequantize`.
"""

from __future__ import annotations

from archspec.quant.params import QParams, TensorQ, WeightQ, check_supported

__all__ = ["QParams", "TensorQ", "WeightQ", "check_supported"]
