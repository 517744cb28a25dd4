"""Translation data objects: the Translator's training pairs and its results."""

from typing import List

from py_to_proto.dataclass_to_proto import Annotated, FieldNumber

from caikit.core import DataObjectBase, dataobject
from caikit.interfaces.nlp.data_model import FinishReason

from .package import GENAI_PACKAGE


@dataobject(package=GENAI_PACKAGE)
class TranslationPair(DataObjectBase):
    """One translation training example: a source text and its translation."""

    source: Annotated[str, FieldNumber(1)]  # The text to translate, e.g. English
    target: Annotated[str, FieldNumber(2)]  # Its translation, e.g. Indonesian


@dataobject(package=GENAI_PACKAGE)
class TranslationResult(DataObjectBase):
    """One translated text, with honest token counts."""

    # The translation (the field name Hugging Face's translation pipeline uses)
    translation_text: Annotated[str, FieldNumber(1)]
    # Source tokens the encoder read, special tokens included, over all sentences
    input_token_count: Annotated[int, FieldNumber(2)]
    # Target tokens generated over all sentences, not counting the end-of-sentence token
    generated_tokens: Annotated[int, FieldNumber(3)]
    # EOS_TOKEN when every sentence ended by itself; MAX_TOKENS when one hit max_new_tokens
    finish_reason: Annotated[FinishReason, FieldNumber(4)]
    # How many sentences the input was split into (1 unless it was longer than the model takes)
    sentences: Annotated[int, FieldNumber(5)]


@dataobject(package=GENAI_PACKAGE)
class TranslationListResult(DataObjectBase):
    """The translations of a list of texts, in the order given."""

    results: Annotated[List[TranslationResult], FieldNumber(1)]
