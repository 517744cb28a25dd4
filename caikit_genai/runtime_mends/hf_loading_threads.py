"""15. Hugging Face loads from many threads. transformers' `from_pretrained` builds a model's
modules with empty ("meta") weights by swapping the process-wide
`torch.nn.Module.register_parameter` for a meta-device version, then putting back the one it saw
on entry (transformers/integrations/accelerate.py, `init_on_device`). The runtime loads models
on several threads at once: two loads interleave, one restores the other's swap, and from then
on every network built anywhere in the process gets meta tensors ("Cannot copy out of meta
tensor"); even without that, a network another thread builds during a load gets them. Here the
swap is made once, for good, and the device lives in a thread-local: only the thread that is
loading builds on the meta device.
"""

import functools
import threading

_building_on = threading.local()


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


def make_hf_loading_thread_safe() -> None:
    """Replace transformers' `init_on_device` with one whose device is this thread's alone."""
    import contextlib  # pylint: disable=import-outside-toplevel

    import torch  # pylint: disable=import-outside-toplevel
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
        previous = getattr(_building_on, "device", None)
        _building_on.device = device
        try:
            yield
        finally:
            _building_on.device = previous

    accelerate.init_on_device = init_on_device
