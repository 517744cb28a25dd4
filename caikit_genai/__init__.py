"""caikit-genai: generative-AI modules for the Caikit runtime."""

from . import data_model, modules, tasks
from .modules import AttentionInspector, CharTextGenerator, SentimentClassifier
