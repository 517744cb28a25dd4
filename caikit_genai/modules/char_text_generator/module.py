"""CharTextGenerator: a character-level RNN (LSTM/GRU) served as caikit-nlp text generation.

Implements caikit's own `TextGenerationTask`, unary and server-streaming, so the RPCs
(`TextGenerationTaskPredict`, `ServerStreamingTextGenerationTaskPredict`), the HTTP routes
(`/api/v1/task/text-generation` and its SSE twin) and the parameter names are caikit-nlp's, and
caikit-nlp's clients work unchanged. A "token" is one character here: `max_new_tokens` counts
characters, `input_token_count` is the prompt's length in characters.

Generation primes the recurrent state with the prompt in one pass, then costs one RNN step per
new character; the stream is a lazy generator, so a client that goes away stops the work.
"""

import json
import os
import threading
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional

import numpy as np
import torch

from caikit.core import ModuleBase, ModuleConfig, ModuleSaver, module
from caikit.core.data_model import DataStream
from caikit.interfaces.nlp.data_model import FinishReason, GeneratedTextResult, GeneratedTextStreamResult
from caikit.interfaces.nlp.tasks import TextGenerationTask
import alog

from ...nets.char_rnn import CharRNN
from ...toolkit.models.device import serving_device
from ...toolkit.serving.errors import choice, invalid_argument, require_text
from ...toolkit.generation import Chunk, GenerationArgument, GenerationParameters, GenerationSignature, choose_next_token, generated_text_result, generated_text_stream, sampling_rng
from ...toolkit.models.model_dir import BuildInfo, atomic_model_dir, read_metrics, write_metrics
from ...toolkit.training.recipes import recipe_train
from .recipe import DEFAULT_MAX_NEW_TOKENS_LIMIT, CharRecipe
from .training import mean_loss, train_char_generator

log = alog.use_channel("CHARGEN")

WEIGHTS_FILE = "char_rnn.pt"
VOCAB_FILE = "vocab.json"
# The first is the default.
UNKNOWN_CHARACTER_POLICIES = ("REJECT", "DROP")

CHAR_GENERATION = GenerationSignature(
    unit="character",
    text_doc="The prompt; the model reads it whole before the first new character.",
    max_new_tokens=200,
    temperature=0.8,
    docs={"decoding_method": "SAMPLING (the default: greedy argmax makes a character model loop) or GREEDY."},
    extra=(
        GenerationArgument(
            "unknown_characters", Optional[str], UNKNOWN_CHARACTER_POLICIES[0],
            "REJECT (the default) refuses a prompt with characters the model never saw; DROP leaves them out of "
            "what the model reads.",
        ),
    ),
)


@dataclass
class CharPrompt:
    """A checked request: the prompt as the model reads it, and the checked parameters."""

    input_text: str
    prompt_ids: List[int]
    parameters: GenerationParameters


@module(id="21ffbb05-8769-4c3c-b8a2-baf8c416ba7a", name="CharTextGenerator", version="0.1.0", task=TextGenerationTask)
class CharTextGenerator(BuildInfo, ModuleBase):
    """Generates text one character at a time from a trained character-level LSTM/GRU."""

    def __init__(
        self,
        net: CharRNN,
        vocab: str,
        max_new_tokens_limit: int = DEFAULT_MAX_NEW_TOKENS_LIMIT,
        device: str = "auto",
        metrics: Optional[dict] = None,
    ):
        super().__init__()
        if len(set(vocab)) != len(vocab) or len(vocab) != net.vocab_size:
            raise ValueError(f"vocab must be {net.vocab_size} distinct characters, got {len(vocab)}")
        self.device = serving_device(device)
        self.net = net.to(self.device).eval()
        self.vocab = vocab
        self.char_ids = {char: index for index, char in enumerate(vocab)}
        self.max_new_tokens_limit = int(max_new_tokens_limit)
        self.metrics = metrics or {}
        # Served-work counters (read by tests and useful in a debugger): characters generated
        # since load, and generations whose generator is still open.
        self.chars_generated = 0
        self.open_generations = 0
        self._counter_lock = threading.Lock()

    # -- inference -------------------------------------------------------------------------

    @TextGenerationTask.taskmethod()
    @CHAR_GENERATION.method("Continue a prompt, one character at a time.")
    def run(self, text: str = None, **generation) -> GeneratedTextResult:
        prompt = self.check_request(text, generation)
        return generated_text_result(
            self._characters(prompt), prompt.input_text, prompt.parameters, len(prompt.prompt_ids), self.PRODUCER_ID
        )

    @TextGenerationTask.taskmethod(output_streaming=True)
    @CHAR_GENERATION.method(
        "Continue a prompt, streaming one message per new character (the prompt first when "
        "preserve_input_text is set): the chunks join to exactly the unary text."
    )
    def run_stream_out(self, text: str = None, **generation) -> Iterable[GeneratedTextStreamResult]:
        # Checked here, before the generator starts, so bad input fails the call itself
        # (gRPC INVALID_ARGUMENT) rather than the stream half-way.
        prompt = self.check_request(text, generation)
        return generated_text_stream(
            self._characters(prompt), prompt.input_text, prompt.parameters, len(prompt.prompt_ids), self.PRODUCER_ID
        )

    def _characters(self, prompt: CharPrompt) -> Iterator[Chunk]:
        """Yield (character, characters so far, finish reason or None); the last carries the reason.

        The next RNN step runs only when the consumer asks for the next character, so a stream
        nobody reads any more costs nothing; closing the generator (a client that went away)
        ends it.
        """
        parameters = prompt.parameters
        with self._counter_lock:
            self.open_generations += 1
        produced, finish_reason = 0, None
        try:
            logits, state = self._prime(prompt.prompt_ids)
            rng = sampling_rng(parameters)
            seen = np.zeros(len(self.vocab), dtype=bool)
            if parameters.repetition_penalty != 1.0:
                seen[prompt.prompt_ids] = True
            longest_stop = max((len(stop) for stop in parameters.stop_sequences), default=0)
            tail = ""
            while True:
                char_id = choose_next_token(logits, parameters, rng, seen)
                seen[char_id] = True
                char = self.vocab[char_id]
                produced += 1
                with self._counter_lock:
                    self.chars_generated += 1
                if longest_stop:
                    tail = (tail + char)[-longest_stop:]
                if produced >= parameters.min_new_tokens and any(tail.endswith(s) for s in parameters.stop_sequences):
                    finish_reason = FinishReason.STOP_SEQUENCE
                elif produced >= parameters.max_new_tokens:
                    finish_reason = FinishReason.MAX_TOKENS
                yield char, produced, finish_reason
                if finish_reason is not None:
                    return
                logits, state = self._step(char_id, state)
        finally:
            with self._counter_lock:
                self.open_generations -= 1
            if finish_reason is None:
                log.info("generation stopped by its consumer after %d of %d characters", produced, parameters.max_new_tokens)

    def _prime(self, prompt_ids: List[int]):
        """Read the whole prompt in one pass: the logits for the first new character and the state."""
        with torch.inference_mode():
            ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.device)
            logits, state = self.net(ids)
            return logits[0, -1].float().cpu().numpy(), state

    def _step(self, char_id: int, state):
        with torch.inference_mode():
            logits, state = self.net.step(torch.tensor([char_id], dtype=torch.long, device=self.device), state)
            return logits[0].float().cpu().numpy(), state

    def check_request(self, text, generation) -> CharPrompt:
        """The prompt as character ids and the checked parameters, or INVALID_ARGUMENT naming the problem."""
        text = require_text(text)
        parameters = CHAR_GENERATION.check(generation, self.max_new_tokens_limit)
        policy = choice("unknown_characters", generation.get("unknown_characters"), UNKNOWN_CHARACTER_POLICIES)
        truncate = parameters.truncate_input_tokens
        read = text[-truncate:] if truncate else text
        unknown = sorted({char for char in read if char not in self.char_ids})
        if unknown and policy == "REJECT":
            shown = ", ".join(f"{char!r} (U+{ord(char):04X})" for char in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise invalid_argument(
                f"the prompt has characters this model never saw: {shown}{more}. "
                "Remove them, or pass unknown_characters=DROP to leave them out."
            )
        prompt_ids = [self.char_ids[char] for char in read if char in self.char_ids]
        if not prompt_ids:
            raise invalid_argument("the prompt has no character this model knows: nothing to continue from")
        return CharPrompt(text, prompt_ids, parameters)

    # -- evaluation ------------------------------------------------------------------------

    def encode(self, text: str) -> List[int]:
        """Character ids for a text the model can read (ValueError names unknown characters)."""
        unknown = sorted({char for char in text if char not in self.char_ids})
        if unknown:
            raise ValueError(f"text has characters outside the vocabulary: {unknown[:10]}")
        return [self.char_ids[char] for char in text]

    def loss_on(self, text: str, streams: int = 32) -> float:
        """Mean cross-entropy in nats per character of `text` (each char predicted from those before)."""
        return mean_loss(self.net, torch.tensor(self.encode(text), dtype=torch.long), self.device, streams)

    # -- persistence -----------------------------------------------------------------------

    def save(self, model_path: str) -> None:
        """Write config.yml, the weights, the vocabulary and metrics atomically (temp dir, then rename)."""
        with atomic_model_dir(model_path) as partial_dir:
            with ModuleSaver(self, model_path=partial_dir) as saver:
                torch.save(self.net.state_dict(), os.path.join(partial_dir, WEIGHTS_FILE))
                with open(os.path.join(partial_dir, VOCAB_FILE), "w", encoding="utf-8") as vocab_file:
                    json.dump(list(self.vocab), vocab_file, ensure_ascii=False)
                saver.update_config(
                    {
                        "weights": WEIGHTS_FILE,
                        "vocab": VOCAB_FILE,
                        "metrics": write_metrics(partial_dir, self.metrics),
                        "net": self.net.hyperparameters(),
                        "max_new_tokens_limit": self.max_new_tokens_limit,
                    }
                )

    @classmethod
    def load(cls, model_path) -> "CharTextGenerator":
        """Load from a model dir (the runtime passes a ModuleConfig, tests and users a path)."""
        config = ModuleConfig.load(model_path)
        model_dir = config.model_path
        with open(os.path.join(model_dir, config.get("vocab", VOCAB_FILE)), encoding="utf-8") as vocab_file:
            vocab = "".join(json.load(vocab_file))
        net = CharRNN(**dict(config.get("net")))
        state_dict = torch.load(
            os.path.join(model_dir, config.get("weights", WEIGHTS_FILE)), map_location="cpu", weights_only=True
        )
        net.load_state_dict(state_dict)
        limit = int(config.get("max_new_tokens_limit", DEFAULT_MAX_NEW_TOKENS_LIMIT))
        return cls(net, vocab, limit, "auto", read_metrics(model_dir, config))

    # -- training --------------------------------------------------------------------------

    @classmethod
    @recipe_train(
        CharRecipe,
        """
        training_data: Texts (lines or whole documents), joined with newlines. In-process, also a path to a .txt
            file or to a directory of .txt files.
        """,
    )
    def train(cls, training_data: DataStream[str], preset: str = "", **knobs) -> "CharTextGenerator":
        """Train a character-level LSTM/GRU language model from scratch on plain text."""
        return train_char_generator(cls, training_data, CharRecipe.build(preset, **knobs))
