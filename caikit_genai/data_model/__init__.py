"""All caikit-genai data objects. Outputs of the text tasks reuse caikit.interfaces.nlp's
messages so caikit-nlp clients read them unchanged; only what that package lacks lives here."""

from . import attention, image, text, translation
from .attention import AttentionResult, AttentionWeights
from .image import GeneratedImages, LabeledImage
from .package import GENAI_PACKAGE
from .text import LabeledText
from .translation import TranslationListResult, TranslationPair, TranslationResult
