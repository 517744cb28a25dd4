"""The forward passes: requests from many threads share padded passes (toolkit/serving/batching.py),
and each input's attention maps are cut back to its own tokens."""

from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from .encoding import EncodedSide

# Attention weights one batched forward pass may hold (float32): 256 MB. A batch that would
# pass it is split; an input alone always runs.
ATTENTION_BATCH_FLOATS = 64 * 1024 * 1024

# One input: its source side, its target side (None for an encoder pass) and the kinds it asks for.
PassItem = Tuple[EncodedSide, Optional[EncodedSide], Tuple[str, ...]]


class AttentionPasses:
    """Runs a model with `output_attentions=True` over batches of inputs."""

    def __init__(self, model, device: torch.device, encoder_decoder: bool, source_pad_id, target_pad_id):
        self.model = model
        self.device = device
        self.encoder_decoder = encoder_decoder
        self.source_pad_id = source_pad_id
        self.target_pad_id = target_pad_id
        # {kind: (layers, heads)}: set by `probe`.
        self.stacks: Dict[str, Tuple[int, int]] = {}

    def probe(self, source: EncodedSide, target: Optional[EncodedSide], kinds) -> Dict[str, Tuple[int, int]]:
        """Read each kind's (layers, heads) from one real forward pass: it also proves the model
        returns attention weights at all (an sdpa-only model returns None)."""
        maps = self.maps_batch([(source, target, tuple(kinds))])[0]
        self.stacks = {kind: (int(weights.shape[0]), int(weights.shape[1])) for kind, weights in maps.items()}
        return self.stacks

    def maps_batch(self, items: List[PassItem]) -> List[Dict[str, np.ndarray]]:
        """The batcher's function: {kind: float32 [layers, heads, queries, keys]} per input.
        Inputs of the same shape of request (with or without a target) run as padded forward
        passes of at most ATTENTION_BATCH_FLOATS weights; each input's maps are cut back to its
        own tokens (padded keys get weight 0, padded queries are dropped)."""
        answers: List[Optional[Dict[str, np.ndarray]]] = [None] * len(items)
        order = sorted(range(len(items)), key=lambda index: (items[index][1] is not None, len(items[index][0].tokens)))
        batch: List[int] = []
        for index in order + [None]:
            if batch and (index is None or not self._fits(items, batch + [index])):
                for done, maps in zip(batch, self._padded_forward([items[i] for i in batch])):
                    answers[done] = maps
                batch = []
            if index is not None:
                batch.append(index)
        return answers

    def _fits(self, items: List[PassItem], indices: List[int]) -> bool:
        """Whether these inputs can share one forward pass: the same sides, and their padded
        attention weights within ATTENTION_BATCH_FLOATS."""
        if len({items[index][1] is None for index in indices}) > 1:
            return False
        source_width = max(len(items[index][0].tokens) for index in indices)
        target_width = max((len(items[index][1].tokens) for index in indices if items[index][1] is not None), default=0)
        widths = {"encoder": (source_width, source_width), "decoder": (target_width, target_width), "cross": (target_width, source_width)}
        per_input = sum(layers * heads * widths[kind][0] * widths[kind][1] for kind, (layers, heads) in self.stacks.items())
        return len(indices) == 1 or len(indices) * per_input <= ATTENTION_BATCH_FLOATS

    @torch.inference_mode()
    def _padded_forward(self, items: List[PassItem]) -> List[Dict[str, np.ndarray]]:
        inputs = _padded([source.model_inputs for source, _, _ in items], self.source_pad_id, self.device)
        if items[0][1] is None:
            encoder = self.model.get_encoder() if self.encoder_decoder else self.model
            outputs = {"encoder": encoder(**inputs, output_attentions=True).attentions}
        else:
            # Right padding: the causal mask keeps every real target position from seeing it.
            targets = [target.model_inputs for _, target, _ in items]
            decoder_ids = _padded(targets, self.target_pad_id, self.device)["decoder_input_ids"]
            forward = self.model(**inputs, decoder_input_ids=decoder_ids, output_attentions=True)
            outputs = {
                "encoder": forward.encoder_attentions,
                "decoder": forward.decoder_attentions,
                "cross": forward.cross_attentions,
            }
        # One copy to numpy per kind for the whole batch, [inputs, layers, heads, queries, keys].
        stacked = {kind: _stack(outputs[kind], kind) for kind in {kind for _, _, kinds in items for kind in kinds}}
        answers = []
        for row, (source, target, kinds) in enumerate(items):
            sides = {"encoder": (source, source), "decoder": (target, target), "cross": (target, source)}
            answers.append(
                {
                    kind: np.ascontiguousarray(stacked[kind][row, :, :, : len(sides[kind][0].tokens), : len(sides[kind][1].tokens)])
                    for kind in kinds
                }
            )
        return answers


def _stack(attentions, kind: str) -> np.ndarray:
    """A forward pass's per-layer attentions as one float32 array [inputs, layers, heads, queries, keys]."""
    if not attentions or any(not isinstance(layer, torch.Tensor) for layer in attentions):
        raise RuntimeError(
            f"the model returned no {kind} attention weights: load it with attn_implementation='eager' "
            "(the sdpa and flash kernels compute attention without returning the weights)"
        )
    return torch.stack(attentions, dim=1).float().cpu().numpy()


def _padded(model_inputs: List[Dict[str, List[int]]], pad_id: Optional[int], device) -> Dict[str, torch.Tensor]:
    """Right-padded tensors of several inputs' token lists (ids padded with pad_id, masks and
    segment ids with 0), with an attention mask that marks the real tokens."""
    width = max(len(inputs[name]) for inputs in model_inputs for name in inputs)
    padded = {}
    for name in model_inputs[0]:
        fill = (pad_id or 0) if name.endswith("input_ids") else 0
        padded[name] = torch.tensor([inputs[name] + [fill] * (width - len(inputs[name])) for inputs in model_inputs], device=device)
    if "input_ids" in padded:
        lengths = [len(inputs["input_ids"]) for inputs in model_inputs]
        padded["attention_mask"] = torch.tensor([[1] * length + [0] * (width - length) for length in lengths], device=device)
    return padded
