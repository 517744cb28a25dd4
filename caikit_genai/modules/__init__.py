"""One file per Caikit module."""

from .char_text_generator import CharTextGenerator
from .sentiment_classifier import SentimentClassifier
