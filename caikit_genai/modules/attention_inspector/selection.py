"""From a forward pass's attention maps to the response: the layers and heads asked for,
aggregated or not, special tokens left out if asked, packed; and the response-size check that
refuses an oversized request before any work."""

from typing import Dict, List, Optional, Tuple

import numpy as np

from ...data_model.attention import ATTENTION_NOTE, AttentionWeights
from ...toolkit.serving.errors import invalid_argument
from ...toolkit.serving.packing import PRECISIONS, pack_matrices
from .encoding import EncodedSide
from .request import InspectionRequest

Stacks = Dict[str, Tuple[int, int]]

# What one token costs in a response besides its text (offsets, segment, message framing).
TOKEN_OVERHEAD_BYTES = 16


def packed_group(
    kind: str, stacks: Stacks, attention_maps, request: InspectionRequest, queries: EncodedSide, keys: EncodedSide
) -> AttentionWeights:
    """One kind's matrices: selected or aggregated, special tokens left out if asked, packed."""
    matrices, layer_ids, head_ids = _select(kind, stacks, attention_maps, request)
    matrices = matrices[..., queries.kept(request.exclude_special_tokens), :]
    matrices = matrices[..., keys.kept(request.exclude_special_tokens)]
    renormalize = request.exclude_special_tokens and request.aggregate != "max"
    if renormalize:
        matrices = renormalize_rows(matrices)
    dtype, weights, row_scales = pack_matrices(matrices, request.precision)
    return AttentionWeights(
        kind=kind,
        layers=layer_ids,
        heads=head_ids,
        aggregate=request.aggregate,
        shape=list(matrices.shape),
        dtype=dtype,
        weights=weights,
        row_scales=row_scales,
        renormalized=renormalize,
    )


def _select(kind: str, stacks: Stacks, attention_maps, request: InspectionRequest):
    """The matrices asked for: [layers, heads or 1, queries, keys], with their layer and head ids."""
    layer_count, head_count = stacks[kind]
    layers = request.layers if request.layers is not None else list(range(layer_count))
    heads = request.heads if request.heads is not None else list(range(head_count))
    weights = attention_maps[kind]
    if request.aggregate == "rollout":
        return attention_rollout(weights[:, heads])[layers][:, None], layers, heads
    chosen = weights[np.ix_(layers, heads)]
    if request.aggregate == "mean":
        return chosen.mean(axis=1, keepdims=True), layers, heads
    if request.aggregate == "max":
        return chosen.max(axis=1, keepdims=True), layers, heads
    return chosen, layers, heads


def matrix_shape(kind: str, stacks: Stacks, request: InspectionRequest, queries: EncodedSide, keys: EncodedSide) -> List[int]:
    """The shape `packed_group` will return, known before the forward pass."""
    layer_count, head_count = stacks[kind]
    layers = len(request.layers) if request.layers is not None else layer_count
    heads = len(request.heads) if request.heads is not None else head_count
    return [
        layers,
        heads if request.aggregate == "none" else 1,
        len(queries.kept(request.exclude_special_tokens)),
        len(keys.kept(request.exclude_special_tokens)),
    ]


def check_response_size(
    request: InspectionRequest, shapes: Dict[str, List[int]], source: EncodedSide, target: Optional[EncodedSide], max_response_bytes: int
) -> None:
    """Refuse, before any work, a request whose matrices alone would pass the cap."""
    itemsize = np.dtype(PRECISIONS[request.precision]).itemsize
    matrix_bytes = sum(int(np.prod(shape)) * itemsize for shape in shapes.values())
    if request.precision == "uint8":
        matrix_bytes += sum(int(np.prod(shape[:-1])) * 4 for shape in shapes.values())
    sides = [source] + ([target] if target else [])
    token_bytes = sum(len(token.text.encode()) + TOKEN_OVERHEAD_BYTES for side in sides for token in side.tokens)
    size = matrix_bytes + token_bytes + len(ATTENTION_NOTE)
    if size <= max_response_bytes:
        return
    detail = "; ".join(
        f"{kind}: {shape[0]} layers x {shape[1]} {'heads' if request.aggregate == 'none' else request.aggregate} "
        f"x {shape[2]} x {shape[3]} tokens"
        for kind, shape in shapes.items()
    )
    raise invalid_argument(
        f"this response would be {size_text(size)} ({detail}, as {request.precision}), over this "
        f"model's cap of {size_text(max_response_bytes)} (gRPC clients refuse messages over "
        "4 MiB by default). Narrow it: fewer `layers` or `heads`, an `aggregate` (mean, max or rollout: "
        "one matrix per layer), `precision` uint8 (half of float16), fewer `kinds`, or fewer tokens "
        "(`max_tokens`)"
    )


def size_text(byte_count: int) -> str:
    return f"{byte_count / 2**20:.2f} MiB" if byte_count >= 2**20 else f"{byte_count / 2**10:.1f} KiB"


def attention_rollout(weights: np.ndarray) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020) of [layers, heads, n, n] self-attention.

    Each layer's attention is averaged over the heads and mixed half and half with the identity
    (the residual connection), rows renormalised, then multiplied up through the layers:
    rollout[l] = A[l] @ A[l-1] @ ... @ A[0]. Returns [layers, n, n]; rows sum to 1.
    """
    mean = weights.astype(np.float64).mean(axis=1)
    identity = np.eye(mean.shape[-1])
    rolled = np.empty_like(mean)
    current = identity
    for layer, attention in enumerate(mean):
        mixed = 0.5 * attention + 0.5 * identity
        mixed /= mixed.sum(axis=-1, keepdims=True)
        current = mixed @ current
        rolled[layer] = current
    return rolled.astype(np.float32)


def renormalize_rows(matrices: np.ndarray) -> np.ndarray:
    """Divide each row by its sum (rows that kept no weight stay zero)."""
    sums = matrices.sum(axis=-1, keepdims=True)
    return np.divide(matrices, sums, out=np.zeros_like(matrices), where=sums > 0)
