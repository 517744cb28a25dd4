"""Float matrices as compact little-endian bytes, and back: the wire encoding of attention weights
(and of the HTML view's embedded data). Plain numpy.

float16 and float32 are plain casts. uint8 scales each row by its own maximum, so a long row's
small weights keep 8 bits of resolution: weight ~= byte x scale, off by at most half a step
(row max / 510); the float32 scales travel beside the bytes, one per row.
"""

from typing import Sequence, Tuple

import numpy as np

# Precision name -> numpy dtype string (what the client passes to np.frombuffer).
PRECISIONS = {"float16": "<f2", "uint8": "u1", "float32": "<f4"}
ROW_SCALE_DTYPE = "<f4"


def pack_matrices(matrices: np.ndarray, precision: str) -> Tuple[str, bytes, bytes]:
    """(numpy dtype, packed values, row scales or b"") for `precision`, C order."""
    dtype = PRECISIONS[precision]
    if dtype != "u1":
        return dtype, np.ascontiguousarray(matrices, dtype=dtype).tobytes(), b""
    matrices = np.asarray(matrices, dtype=np.float32)
    scales = (matrices.max(axis=-1, keepdims=True) / 255.0).astype(ROW_SCALE_DTYPE)
    steps = np.divide(matrices, scales, out=np.zeros_like(matrices), where=scales > 0)
    return dtype, np.rint(steps).clip(0, 255).astype("u1").tobytes(), scales.tobytes()


def unpack_matrices(values: bytes, dtype: str, shape: Sequence[int], row_scales: bytes = b"") -> np.ndarray:
    """The float32 matrices of `shape` back from pack_matrices' output."""
    matrices = np.frombuffer(values, dtype).reshape(shape).astype(np.float32)
    if dtype == "u1":
        matrices *= np.frombuffer(row_scales, ROW_SCALE_DTYPE).reshape(*shape[:-1], 1)
    return matrices
