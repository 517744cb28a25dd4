"""15. Hugging Face loads from many threads. transformers' `from_pretrained` swaps process-wide
state for the length of a load, and the runtime loads models on several threads at once while
other threads build networks (a training, a model's own load):

- it builds a model's modules with empty ("meta") weights by swapping
  `torch.nn.Module.register_parameter` for a meta-device version, then putting back the one it
  saw on entry (transformers/integrations/accelerate.py, `init_on_device`). Two loads interleave,
  one restores the other's swap, and from then on every network built anywhere in the process gets
  meta tensors ("Cannot copy out of meta tensor"); even without that, a network another thread
  builds during a load gets them.
- it skips weight initialisation (`modeling_utils.no_init_weights`) by replacing
  `torch.nn.init`'s functions with no-ops and clearing the module flag `_init_weights`: a network
  another thread builds meanwhile keeps `torch.empty`'s garbage, and its training's first loss
  is NaN.

Here each swap is made once, for good, and what it switches lives in a thread-local: only the
thread that is loading builds on the meta device and skips initialisation.
"""

import contextlib
import functools
import threading

_building_on = threading.local()  # .device: where this thread's new parameters go; .skip_init


def _device_aware_register_parameter(original):
    @functools.wraps(original)
    def register_parameter(module, name, param):
        original(module, name, param)
        device = getattr(_building_on, "device", None)
        if device is not None and param is not None:
            param_class = type(module._parameters[name])  # pylint: disable=protected-access
            kwargs = module._parameters[name].__dict__  # pylint: disable=protected-access
            kwargs["requires_grad"] = param.requires_grad
            module._parameters[name] = param_class(module._parameters[name].to(device), **kwargs)  # pylint: disable=protected-access

    register_parameter.caikit_genai_thread_local = True
    return register_parameter


def _thread_aware_init(original):
    """torch.nn.init.<name> that does nothing on a thread inside `no_init_weights` (as
    transformers' `_skip_init` does) and initialises everywhere else."""

    @functools.wraps(original)
    def init(*args, **kwargs):
        if getattr(_building_on, "skip_init", False):
            return None
        return original(*args, **kwargs)

    return init


class _InitWeightsOnThisThread:
    """Stands for transformers' module flag `_init_weights` (`if _init_weights:` in
    `PreTrainedModel.init_weights`): false only on a thread inside `no_init_weights`."""

    def __bool__(self) -> bool:
        return not getattr(_building_on, "skip_init", False)


@contextlib.contextmanager
def _on_this_thread(attribute: str, value):
    """Set `_building_on.<attribute>` for the block, then put back what it was (nested loads)."""
    previous = getattr(_building_on, attribute, None)
    setattr(_building_on, attribute, value)
    try:
        yield
    finally:
        setattr(_building_on, attribute, previous)


def _no_init_weights_on_this_thread():
    return _on_this_thread("skip_init", True)


def make_hf_loading_thread_safe() -> None:
    """Replace transformers' `init_on_device` and `no_init_weights` with ones that switch only
    this thread."""
    import torch  # pylint: disable=import-outside-toplevel
    from transformers import modeling_utils  # pylint: disable=import-outside-toplevel
    from transformers.integrations import accelerate  # pylint: disable=import-outside-toplevel

    if getattr(torch.nn.Module.register_parameter, "caikit_genai_thread_local", False):
        return
    torch.nn.Module.register_parameter = _device_aware_register_parameter(torch.nn.Module.register_parameter)
    transformers_init_on_device = accelerate.init_on_device

    @contextlib.contextmanager
    def init_on_device(device, include_buffers: bool = False):
        if include_buffers:  # transformers' own path: torch's device context, already per thread
            with transformers_init_on_device(device, include_buffers=True):
                yield
            return
        with _on_this_thread("device", device):
            yield

    accelerate.init_on_device = init_on_device
    for name, original in modeling_utils.TORCH_INIT_FUNCTIONS.items():
        setattr(torch.nn.init, name, _thread_aware_init(original))
    modeling_utils.no_init_weights = _no_init_weights_on_this_thread
    modeling_utils._init_weights = _InitWeightsOnThisThread()  # pylint: disable=protected-access
