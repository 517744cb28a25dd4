"""Fine-tuning only the top layers of a BERT-family encoder, over lower-layer states cached once.

With the embeddings and the lowest N layers frozen, their output for an example never changes,
so it is computed once (in eval mode) and kept; each epoch then runs only the top layers. For a
12-layer MPNet with 8 frozen, an epoch costs a third of a full fine-tune's forward pass plus
the top layers' backward. Works for encoders shaped like BERT (`base_model.embeddings` and
`base_model.encoder.layer`: BERT, MiniLM, MPNet, RoBERTa...); others get a clear error.
"""

import contextlib
from typing import List, Sequence, Tuple

import numpy as np
import torch


class _CachedStatesIn(torch.nn.Module):
    """Stands in for the embeddings while the top layers run: passes `inputs_embeds` (the cached
    states of the last frozen layer) straight through."""

    def forward(self, input_ids=None, inputs_embeds=None, **_):  # pylint: disable=unused-argument
        return inputs_embeds


def encoder_layers(model: torch.nn.Module) -> Tuple[torch.nn.Module, torch.nn.ModuleList]:
    """(the base encoder, its list of transformer layers), or ValueError naming the model type."""
    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not isinstance(layers, torch.nn.ModuleList) or not hasattr(base, "embeddings"):
        raise ValueError(
            f"freeze_layers and layer_lr_decay need a BERT-family encoder (embeddings, then encoder.layer); "
            f"{type(model).__name__} is not one"
        )
    return base, layers


def freeze_lower_layers(model: torch.nn.Module, count: int) -> None:
    """Stop gradients into everything the lowest `count` layers compute with: the embeddings,
    those layers, and what the encoder shares across its layers (MPNet's relative position
    bias). Trained, a shared part would change what the frozen layers give at serving time, no
    longer the states the top layers were trained on."""
    base, layers = encoder_layers(model)
    if not 0 < count < len(layers):
        raise ValueError(f"freeze_layers must be between 1 and {len(layers) - 1} for this model, got {count}")
    for frozen in (base.embeddings, *layers[:count]):
        frozen.requires_grad_(False)
    in_layers = {id(parameter) for parameter in layers.parameters()}
    for parameter in base.encoder.parameters():
        if id(parameter) not in in_layers:
            parameter.requires_grad_(False)


@contextlib.contextmanager
def _encoder_parts(base: torch.nn.Module, embeddings: torch.nn.Module, layers: torch.nn.ModuleList):
    saved = base.embeddings, base.encoder.layer
    base.embeddings, base.encoder.layer = embeddings, layers
    try:
        yield
    finally:
        base.embeddings, base.encoder.layer = saved


@torch.no_grad()
def lower_states(model, count: int, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The hidden states after the lowest `count` layers, computed in eval mode (no dropout)."""
    base, layers = encoder_layers(model)
    was_training = base.training
    base.eval()
    try:
        with _encoder_parts(base, base.embeddings, layers[:count]):
            return base(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    finally:
        base.train(was_training)


def upper_output(model, count: int, states: torch.Tensor, attention_mask: torch.Tensor):
    """`model`'s output from cached states, running only the layers above `count` (with grad)."""
    base, layers = encoder_layers(model)
    with _encoder_parts(base, _CachedStatesIn(), layers[count:]):
        return model(inputs_embeds=states, attention_mask=attention_mask)


def upper_logits(model, count: int, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The classifier's logits from cached states, running only the layers above `count`."""
    return upper_output(model, count, states, attention_mask).logits


def pad_token_ids(rows: Sequence[Sequence[int]], pad_id: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists as one batch padded to its longest, and its attention mask."""
    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, ids in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask


def pad_states(states: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Stack per-example (tokens, hidden) states into a float32 batch and its attention mask."""
    width = max(one.shape[0] for one in states)
    batch = torch.zeros((len(states), width, states[0].shape[1]), dtype=torch.float32)
    mask = torch.zeros((len(states), width), dtype=torch.long)
    for row, one in enumerate(states):
        batch[row, : one.shape[0]] = one
        mask[row, : one.shape[0]] = 1
    return batch, mask


def cache_lower_states(
    model, count: int, encoded: List[List[int]], pad_id: int, device: torch.device, batch_size: int = 64, progress=None
) -> List[torch.Tensor]:
    """Each example's states after the frozen layers, kept on the CPU in float16 (padding cut off)."""
    order = sorted(range(len(encoded)), key=lambda index: len(encoded[index]))
    cached: List[torch.Tensor] = [None] * len(encoded)  # type: ignore[list-item]
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        input_ids, attention_mask = pad_token_ids([encoded[index] for index in chunk], pad_id)
        states = lower_states(model, count, input_ids.to(device), attention_mask.to(device)).float().cpu()
        for row, index in enumerate(chunk):
            cached[index] = states[row, : len(encoded[index])].to(torch.float16).clone()
        if progress is not None:
            progress.update(len(chunk))
    return cached


@torch.no_grad()
def cached_scores(model, count: int, states: List[torch.Tensor], batch_size: int = 64) -> np.ndarray:
    """A classifier's softmax scores from cached lower-layer states (texts x labels): what serving
    computes, at a fraction of the cost."""
    was_training = model.training
    model.eval()
    scores = np.zeros((len(states), model.config.num_labels), dtype=np.float32)
    device = next(model.parameters()).device
    order = sorted(range(len(states)), key=lambda index: states[index].shape[0])
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch, mask = pad_states([states[index] for index in chunk])
        logits = upper_logits(model, count, batch.to(device), mask.to(device))
        scores[chunk] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    model.train(was_training)
    return scores
