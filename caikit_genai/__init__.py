"""caikit-genai: generative-AI modules for the Caikit runtime."""

from . import data_model, modules, runtime_mends, tasks
from .modules import AttentionInspector, CharTextGenerator, DCGANImageGenerator, SentimentClassifier, Translator
from .toolkit.serving.cpu_limit import size_torch_threads

# In a container, as many torch threads as its CPU limit allows, not the node's cores.
size_torch_threads()

# The runtime imports this library before it builds its servers: mend what caikit 0.28.3's config
# and extension points cannot reach (docs/caikit-mends.md). Refuses an untested caikit or torch.
runtime_mends.apply()
