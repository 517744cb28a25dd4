"""The text generation layer shared by every generator (CharTextGenerator, Translator,
TGISTextGenerator): caikit-nlp's parameters declared once, checked once, sampled once.

caikit builds the TextGenerationTask RPCs and routes from `run`'s signature, so a module
declares its caikit-nlp signature with one `GenerationSignature` (its unit, its defaults, its own
extra parameters) and writes `def run(self, text: str = None, **generation)`:

    CHAR_GENERATION = GenerationSignature(unit="character", text_doc="The prompt.", temperature=0.8)

    @TextGenerationTask.taskmethod()
    @CHAR_GENERATION.method("Continue a prompt.")
    def run(self, text: str = None, **generation) -> GeneratedTextResult:
        parameters = CHAR_GENERATION.check(generation, self.max_new_tokens_limit)

`unit` names what a token is for the module ("character", "token", "target token"), so the
docs and the INVALID_ARGUMENT messages speak the caller's language.
"""

from .checks import DECODING_METHODS, MAX_SEED, GenerationParameters, check_generation_parameters, check_max_new_tokens, check_seed, check_stop_sequences
from .results import Chunk, generated_text_result, generated_text_stream, stream_message
from .sampling import choose_next_token, sampling_rng
from .signature import CAIKIT_NLP_ARGUMENTS, GenerationArgument, GenerationSignature

__all__ = [
    "CAIKIT_NLP_ARGUMENTS",
    "DECODING_METHODS",
    "MAX_SEED",
    "Chunk",
    "GenerationArgument",
    "GenerationParameters",
    "GenerationSignature",
    "check_generation_parameters",
    "check_max_new_tokens",
    "check_seed",
    "check_stop_sequences",
    "choose_next_token",
    "generated_text_result",
    "generated_text_stream",
    "sampling_rng",
    "stream_message",
]
