"""One file per Caikit module."""

from .attention_inspector import AttentionInspector
from .char_text_generator import CharTextGenerator
from .sentiment_classifier import SentimentClassifier
from .translator import Translator
