"""One file per Caikit module."""

from .attention_inspector import AttentionInspector
from .char_text_generator import CharTextGenerator
from .dcgan_image_generator import DCGANImageGenerator
from .sentiment_classifier import SentimentClassifier
from .translator import Translator

# The `tgis` extra: TGISTextGenerator exists only where caikit-tgis-backend is installed; the
# rest of the library and the runtime serve without it.
import importlib.util as _importlib_util

if _importlib_util.find_spec("caikit_tgis_backend") is not None:
    from .tgis_text_generator import TGISTextGenerator
