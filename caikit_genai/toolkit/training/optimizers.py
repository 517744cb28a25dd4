"""The one optimizer factory: AdamW with one weight-decay policy for every trainer.

Decay applies to weight matrices and embeddings only; biases and normalization weights (every
parameter of fewer than 2 dimensions) are exempt, as BERT's and nanoGPT's recipes do: decaying a
LayerNorm's gain towards 0 only fights the normalization.
"""

from typing import Iterable, List, Optional, Sequence, Tuple

import torch


def decay_groups(named_parameters: Iterable[Tuple[str, torch.nn.Parameter]], weight_decay: float, lr: Optional[float] = None) -> list:
    """Two parameter groups of the trainable parameters: with and without weight decay."""
    decayed, exempt = [], []
    for _, parameter in named_parameters:
        if parameter.requires_grad:
            (decayed if parameter.dim() >= 2 else exempt).append(parameter)
    extra = {} if lr is None else {"lr": lr}
    return [
        group
        for group in ({"params": decayed, "weight_decay": weight_decay, **extra}, {"params": exempt, "weight_decay": 0.0, **extra})
        if group["params"]
    ]


def adamw(
    named_parameters: Iterable[Tuple[str, torch.nn.Parameter]],
    lr: float,
    weight_decay: float,
    betas: Tuple[float, float] = (0.9, 0.999),
    extra_groups: Sequence[Tuple[Iterable[Tuple[str, torch.nn.Parameter]], float]] = (),
) -> torch.optim.AdamW:
    """AdamW over `named_parameters` at `lr`, plus (named parameters, lr) groups at their own
    rates (a pretrained encoder tuned slower than a new decoder), all with the decay policy above."""
    groups = decay_groups(named_parameters, weight_decay)
    for named, group_lr in extra_groups:
        groups += decay_groups(named, weight_decay, lr=group_lr)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay)


NamedParameters = List[Tuple[str, torch.nn.Parameter]]


def layer_decayed_rates(
    named_parameters: Iterable[Tuple[str, torch.nn.Parameter]], layers: Sequence[torch.nn.Module], lr: float, decay: float
) -> Tuple[NamedParameters, List[Tuple[NamedParameters, float]]]:
    """Layer-wise learning-rate decay (Clark et al. 2020, ELECTRA): (the parameters outside
    `layers`, at `lr`; then each layer's parameters at `lr * decay ** depth`, depth 1 for the top
    layer), the `adamw` arguments that tune a pretrained encoder's lower layers, whose features are
    the most general, slower than its top."""
    layer_of = {id(parameter): index for index, layer in enumerate(layers) for parameter in layer.parameters()}
    outside: NamedParameters = []
    per_layer: List[NamedParameters] = [[] for _ in layers]
    for name, parameter in named_parameters:
        index = layer_of.get(id(parameter))
        (outside if index is None else per_layer[index]).append((name, parameter))
    groups = [(named, lr * decay ** (len(layers) - index)) for index, named in enumerate(per_layer)]
    return outside, groups
