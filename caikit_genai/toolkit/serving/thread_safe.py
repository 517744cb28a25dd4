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
