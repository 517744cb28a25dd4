"""Attention data objects: what AttentionInspector returns.

caikit data models cannot nest lists, and a 6-layer x 12-head model at 128 tokens is 4.7 MB as
float32 protobuf, so every matrix of one attention kind travels packed in one `bytes` field, never
padded, with its numpy dtype and shape beside it: a client rebuilds the whole stack in one line,

    weights = np.frombuffer(group.weights, group.dtype).reshape(group.shape)

(for `u1`, multiply by `np.frombuffer(group.row_scales, "<f4").reshape(*group.shape[:-1], 1)`).
These are attention weights, the softmax outputs of each head: not an explanation of the model.
"""

from typing import List, Optional

import numpy as np
from py_to_proto.dataclass_to_proto import Annotated, FieldNumber

from caikit.core import DataObjectBase, dataobject
from caikit.interfaces.nlp.data_model import Token
from caikit.interfaces.vision.data_model import Image

from ..toolkit.serving.packing import unpack_matrices
from .package import GENAI_PACKAGE

ATTENTION_NOTE = (
    "Attention weights: each head's softmax over the key tokens, one row per query token (a row "
    "sums to 1). They show where the model looked, not why it decided: not an explanation."
)


@dataobject(package=GENAI_PACKAGE)
class AttentionWeights(DataObjectBase):
    """The matrices of one attention kind, packed: shape [layers, heads (or 1), queries, keys]."""

    # encoder (self-attention of an encoder, the only kind an encoder-only model has),
    # decoder (decoder self-attention) or cross (decoder queries over encoder keys)
    kind: Annotated[str, FieldNumber(1)]
    # The model's layer index of each matrix stack along axis 0, in the order returned
    layers: Annotated[List[int], FieldNumber(2)]
    # The heads along axis 1, or, for an aggregate, the heads it was taken over (axis 1 is then 1)
    heads: Annotated[List[int], FieldNumber(3)]
    # none, mean, max or rollout (Abnar & Zuidema 2020: mean over heads, + identity, multiplied up through the layers)
    aggregate: Annotated[str, FieldNumber(4)]
    # [layers, heads or 1, query tokens, key tokens]
    shape: Annotated[List[int], FieldNumber(5)]
    # numpy dtype of `weights`: <f2 (float16), <f4 (float32) or u1 (uint8, scaled per row)
    dtype: Annotated[str, FieldNumber(6)]
    # The matrices, C order, little-endian
    weights: Annotated[bytes, FieldNumber(7)]
    # u1 only: one little-endian float32 scale per row (weight = byte x scale); empty otherwise
    row_scales: Annotated[bytes, FieldNumber(8)]
    # True when special tokens were left out and each row was divided by what remained of its sum
    renormalized: Annotated[bool, FieldNumber(9)]

    def as_numpy(self) -> np.ndarray:
        """The matrices as a float32 array of `shape` (what the one-line numpy recipe gives)."""
        return unpack_matrices(self.weights, self.dtype, self.shape, self.row_scales)


@dataobject(package=GENAI_PACKAGE)
class AttentionResult(DataObjectBase):
    """Per-layer, per-head attention weights of a transformer for one input, with its tokens."""

    # The input (encoder) tokens; start/end are character offsets into `text` (segment 0) or
    # `text_pair` (segment 1); special tokens ([CLS], [SEP], </s>) are zero-width
    tokens: Annotated[List[Token], FieldNumber(1)]
    # The segment of each input token: 0 for text, 1 for text_pair
    token_segments: Annotated[List[int], FieldNumber(2)]
    # Encoder-decoder models only: the decoder's teacher-forced input tokens (its start token,
    # then target_text's tokens), with offsets into target_text
    target_tokens: Annotated[List[Token], FieldNumber(3)]
    # The model's (encoder's) layer and head counts
    num_layers: Annotated[int, FieldNumber(4)]
    num_heads: Annotated[int, FieldNumber(5)]
    # The decoder's layer and head counts (0 for an encoder-only model)
    num_decoder_layers: Annotated[int, FieldNumber(6)]
    num_decoder_heads: Annotated[int, FieldNumber(7)]
    # One packed stack per attention kind returned
    attentions: Annotated[List[AttentionWeights], FieldNumber(8)]
    # On request: a PNG heatmap of every returned matrix (a grid of layers x heads), token labels
    heatmap: Annotated[Optional[Image], FieldNumber(9)]
    # What these numbers are, and are not
    note: Annotated[str, FieldNumber(10)]
    # True when the input was cut to max_tokens
    truncated: Annotated[bool, FieldNumber(11)]

    def matrix_groups(self) -> List[dict]:
        """Each attention kind as plain data for the views: kind, layers, heads, aggregate, float32
        matrices [layers, heads or 1, queries, keys] and the query and key token labels."""
        source = [token.text for token in self.tokens]
        target = [token.text for token in self.target_tokens]
        sides = {"encoder": (source, source), "decoder": (target, target), "cross": (target, source)}
        return [
            {
                "kind": group.kind,
                "layers": list(group.layers),
                "heads": list(group.heads),
                "aggregate": group.aggregate,
                "matrices": group.as_numpy(),
                "query_labels": sides[group.kind][0],
                "key_labels": sides[group.kind][1],
            }
            for group in self.attentions
        ]

    def attention(self, kind: str) -> AttentionWeights:
        """The stack of one kind (encoder, decoder or cross)."""
        for group in self.attentions:
            if group.kind == kind:
                return group
        raise KeyError(f"no {kind!r} attention in this result: it has {[group.kind for group in self.attentions]}")
