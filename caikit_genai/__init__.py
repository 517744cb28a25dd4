"""caikit-genai: generative-AI modules for the Caikit runtime."""

from . import data_model, modules
from .modules import CharTextGenerator, SentimentClassifier
