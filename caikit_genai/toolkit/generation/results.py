"""caikit-nlp's results from what a generator decodes: the unary result and the lazy stream."""

from typing import Iterable, Iterator, Optional, Tuple

from caikit.interfaces.nlp.data_model import (
    FinishReason,
    GeneratedTextResult,
    GeneratedTextStreamResult,
    TokenStreamDetails,
)

from .checks import GenerationParameters

# What a local generator yields as it decodes: the text a step adds, the tokens generated so far,
# and the finish reason (None until the last chunk).
Chunk = Tuple[str, int, Optional[FinishReason]]


def stream_message(
    text: str, generated_tokens: int, finish_reason, seed: Optional[int], input_token_count: int, producer_id
) -> GeneratedTextStreamResult:
    """One message of a caikit-nlp stream."""
    details = TokenStreamDetails(
        finish_reason=finish_reason, generated_tokens=generated_tokens, seed=seed, input_token_count=input_token_count
    )
    return GeneratedTextStreamResult(generated_text=text, details=details, producer_id=producer_id)


def generated_text_stream(
    chunks: Iterable[Chunk], input_text: str, parameters: GenerationParameters, input_token_count: int, producer_id
) -> Iterator[GeneratedTextStreamResult]:
    """The stream of `chunks` (lazily: each is decoded when the client asks for it), the input
    text first when preserve_input_text is set: the messages join to the unary text. Closing the
    stream (a client that went away) closes `chunks`, which stops the decoding."""
    seed = parameters.seed
    try:
        if parameters.preserve_input_text:
            yield stream_message(input_text, 0, FinishReason.NOT_FINISHED, seed, input_token_count, producer_id)
        for text, count, finished in chunks:
            yield stream_message(text, count, finished or FinishReason.NOT_FINISHED, seed, input_token_count, producer_id)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()


def generated_text_result(
    chunks: Iterable[Chunk], input_text: str, parameters: GenerationParameters, input_token_count: int, producer_id
) -> GeneratedTextResult:
    """The unary result: `chunks` joined (after the input text with preserve_input_text)."""
    texts, count, finish_reason = [], 0, FinishReason.EOS_TOKEN
    for text, count, finished in chunks:
        texts.append(text)
        finish_reason = finished or finish_reason
    generated = "".join(texts)
    return GeneratedTextResult(
        generated_text=input_text + generated if parameters.preserve_input_text else generated,
        generated_tokens=count,
        finish_reason=finish_reason,
        producer_id=producer_id,
        input_token_count=input_token_count,
        seed=parameters.seed,
    )
