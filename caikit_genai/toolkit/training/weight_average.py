"""An exponential moving average of trained weights (Polyak averaging): the average wanders less
than the weights the optimizer moves, so it often generalizes a little better (a GAN's generator,
a fine-tuned classifier's last epoch).

The decay warms up as TensorFlow's ExponentialMovingAverage does with num_updates,
min(decay, (1 + t) / (10 + t)) at update t, so a short run's average does not keep its
random or pretrained start for long.
"""

from contextlib import contextmanager
from typing import Iterable, Iterator, List

import torch


class WeightAverage:
    """The averages of some tensors, moved toward their current values by `update`."""

    def __init__(self, averages: List[torch.Tensor], decay: float):
        """`averages`: the tensors that hold the average, set to the starting weights (copies, or
        the parameters of a network kept for the average alone)."""
        if not 0 < decay < 1:
            raise ValueError(f"a weight average's decay must be in (0, 1), got {decay}")
        self.averages, self.decay, self.updates = list(averages), decay, 0

    @classmethod
    def of_trained(cls, net: torch.nn.Module, decay: float) -> "WeightAverage":
        """An average of `net`'s trained parameters (those that require grad), starting from them."""
        return cls([parameter.detach().clone() for parameter in trained_parameters(net)], decay)

    @torch.no_grad()
    def update(self, current: Iterable[torch.Tensor]) -> None:
        """Move each average toward its current value (same order as the averages)."""
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        current = [tensor.detach() for tensor in current]
        if len(current) != len(self.averages):
            raise ValueError(f"the average holds {len(self.averages)} tensors, update got {len(current)}")
        torch._foreach_lerp_(self.averages, current, 1.0 - decay)

    @contextmanager
    def swapped_into(self, parameters: List[torch.Tensor]) -> Iterator[None]:
        """Inside the block `parameters` hold the averages; after it, their own values again."""
        with torch.no_grad():
            own = [parameter.detach().clone() for parameter in parameters]
            for parameter, average in zip(parameters, self.averages):
                parameter.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for parameter, value in zip(parameters, own):
                    parameter.copy_(value)


def trained_parameters(net: torch.nn.Module) -> List[torch.nn.Parameter]:
    return [parameter for parameter in net.parameters() if parameter.requires_grad]
