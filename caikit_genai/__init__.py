"""caikit-genai: generative-AI modules for the Caikit runtime."""

from . import data_model, modules, tasks
from .modules import AttentionInspector, CharTextGenerator, DCGANImageGenerator, SentimentClassifier, Translator
from .toolkit import runtime_patches
from .toolkit.cpu_limit import size_torch_threads
from .toolkit.thread_safe import make_hf_loading_thread_safe

# In a container, as many torch threads as its CPU limit allows, not the node's cores.
size_torch_threads()

# Many threads load Hugging Face models at once in the runtime (see toolkit/thread_safe.py).
make_hf_loading_thread_safe()

# The runtime imports this library before it builds its servers: mend what caikit 0.28.3's
# config cannot reach (unchecked model paths, empty HTTP bodies, abandoned SSE streams).
runtime_patches.apply()
