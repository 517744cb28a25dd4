"""Objects that many request threads share, made safe to share.

Hugging Face fast tokenizers are Rust objects behind a borrow checker: a call that sets
truncation or padding borrows the tokenizer mutably, so two threads calling one tokenizer with
different settings fail with `RuntimeError: Already borrowed` (huggingface/tokenizers#537).
caikit's runtime calls a module from up to `server_thread_pool_size` threads at once.
A lock costs less than a copy per thread (a 250k-token vocabulary is ~20 MB a copy) and
tokenizing is a small part of a request, so every call goes through one lock.
"""

import functools
import threading
from typing import Any


class ThreadSafeTokenizer:
    """Wraps a tokenizer so that every method call (encode, decode, pad, save...) holds one lock.

    Attribute reads (`pad_token_id`, `model_max_length`...) pass straight through; the wrapped
    object is `unwrapped`, for code that needs the real class (e.g. a transformers pipeline).
    """

    def __init__(self, tokenizer: Any):
        if isinstance(tokenizer, ThreadSafeTokenizer):
            tokenizer = tokenizer.unwrapped
        self.unwrapped = tokenizer
        self._lock = threading.RLock()

    def __call__(self, *args, **kwargs):
        with self._lock:
            return self.unwrapped(*args, **kwargs)

    def __getattr__(self, name: str):
        value = getattr(self.unwrapped, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def locked(*args, **kwargs):
            with self._lock:
                return value(*args, **kwargs)

        return locked

    def __len__(self) -> int:
        return len(self.unwrapped)

    def __getstate__(self):
        return {"unwrapped": self.unwrapped}

    def __setstate__(self, state):
        self.__init__(state["unwrapped"])


# -- Hugging Face loads from many threads ------------------------------------------------------
#
# transformers' `from_pretrained` builds a model's modules with empty ("meta") weights by swapping
# the process-wide `torch.nn.Module.register_parameter` for a meta-device version, then putting
# back the one it saw on entry (transformers/integrations/accelerate.py, `init_on_device`). The
# runtime loads models on several threads at once: two loads interleave, one restores the other's
# swap, and from then on every network built anywhere in the process gets meta tensors ("Cannot
# copy out of meta tensor"); even without that, a network another thread builds during a load
# gets them. Here the swap is made once, for good, and the device lives in a thread-local: only
# the thread that is loading builds on the meta device.

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
