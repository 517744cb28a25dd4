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
import math
import os
import random
import threading
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from caikit.core import ModuleBase, ModuleConfig, ModuleSaver, module
from caikit.core.data_model import DataStream
from caikit.interfaces.nlp.data_model import (
    FinishReason,
    GeneratedTextResult,
    GeneratedTextStreamResult,
    TokenStreamDetails,
)
from caikit.interfaces.nlp.tasks import TextGenerationTask
import alog

from ..nets.char_rnn import CharRNN, detach_state
from ..toolkit.device import describe, resolve_device
from ..toolkit.errors import choice, invalid_argument, require_text
from ..toolkit.generation import check_generation_parameters, choose_next_token
from ..toolkit.model_dir import atomic_model_dir, read_metrics, write_metrics
from ..toolkit.training import run_training, warmup_cosine_schedule

log = alog.use_channel("CHARGEN")

WEIGHTS_FILE = "char_rnn.pt"
VOCAB_FILE = "vocab.json"

DEFAULT_MAX_NEW_TOKENS = 200
DEFAULT_MAX_NEW_TOKENS_LIMIT = 4096
DEFAULT_TEMPERATURE = 0.8
# The first is the default.
UNKNOWN_CHARACTER_POLICIES = ("REJECT", "DROP")
EVAL_CHUNK = 256

# The parameters of both inference methods (caikit turns this into the API documentation).
GENERATION_ARGS_DOC = """
    Args:
        text: The prompt; the model reads it whole before the first new character.
        max_new_tokens: Characters to generate at most (default 200; the model's
            max_new_tokens_limit caps it).
        min_new_tokens: Characters to generate before a stop sequence may end the text.
        truncate_input_tokens: 0 reads the whole prompt; N > 0 reads only its last N characters.
        decoding_method: SAMPLING (the default: greedy argmax makes a character model loop)
            or GREEDY.
        top_k: Sample only from the k likeliest characters (0 or unset: all).
        top_p: Sample only from the likeliest characters whose probabilities add up to
            top_p, in (0, 1] (unset: 1, all).
        temperature: Divides the logits before sampling: lower is safer, higher wilder;
            0 means greedy (default 0.8).
        repetition_penalty: CTRL's penalty (> 0, 1 = none) on characters already in the
            prompt or the output.
        stop_sequences: End the text when it ends with one of these (included in the output).
        seed: Seeds sampling: the same seed, prompt and parameters give the same text.
            Unset: a random seed, reported in the result (or in each message's details).
        preserve_input_text: Put the prompt in front of the generated text (streaming: as the
            first message).
        unknown_characters: REJECT (the default) refuses a prompt with characters the
            model never saw; DROP leaves them out of what the model reads.
"""


def _documented(summary: str):
    """Give an inference method `summary` plus GENERATION_ARGS_DOC as its docstring."""

    def decorate(method):
        method.__doc__ = summary + "\n" + GENERATION_ARGS_DOC
        return method

    return decorate


@dataclass
class GenerationRequest:
    """A checked generation request: every field is valid and has its default filled in."""

    input_text: str
    prompt_ids: List[int]
    max_new_chars: int
    min_new_chars: int
    greedy: bool
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    seed: Optional[int]
    stop_sequences: List[str]
    preserve_input_text: bool


@module(
    id="21ffbb05-8769-4c3c-b8a2-baf8c416ba7a",
    name="CharTextGenerator",
    version="0.1.0",
    task=TextGenerationTask,
)
class CharTextGenerator(ModuleBase):
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
        self.device = resolve_device(os.environ.get("CAIKIT_GENAI_DEVICE") or device)
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
    @_documented("Continue a prompt, one character at a time.")
    def run(
        self,
        text: str = None,
        max_new_tokens: Optional[int] = DEFAULT_MAX_NEW_TOKENS,
        min_new_tokens: Optional[int] = 0,
        truncate_input_tokens: Optional[int] = 0,
        decoding_method: Optional[str] = "SAMPLING",
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        temperature: Optional[float] = None,
        repetition_penalty: Optional[float] = None,
        stop_sequences: Optional[List[str]] = None,
        seed: Optional[np.uint64] = None,
        preserve_input_text: bool = False,
        unknown_characters: Optional[str] = "REJECT",
    ) -> GeneratedTextResult:
        request = self.check_request(
            text, max_new_tokens, min_new_tokens, truncate_input_tokens, decoding_method, top_k, top_p,
            temperature, repetition_penalty, stop_sequences, seed, preserve_input_text, unknown_characters,
        )
        characters, finish_reason = [], FinishReason.MAX_TOKENS
        for char, finished in self._characters(request):
            characters.append(char)
            finish_reason = finished or finish_reason
        generated = "".join(characters)
        return GeneratedTextResult(
            generated_text=request.input_text + generated if request.preserve_input_text else generated,
            generated_tokens=len(characters),
            finish_reason=finish_reason,
            producer_id=self.PRODUCER_ID,
            input_token_count=len(request.prompt_ids),
            seed=request.seed,
        )

    @TextGenerationTask.taskmethod(output_streaming=True)
    @_documented(
        "Continue a prompt, streaming one message per new character (the prompt first when "
        "preserve_input_text is set): the chunks join to exactly the unary text."
    )
    def run_stream_out(
        self,
        text: str = None,
        max_new_tokens: Optional[int] = DEFAULT_MAX_NEW_TOKENS,
        min_new_tokens: Optional[int] = 0,
        truncate_input_tokens: Optional[int] = 0,
        decoding_method: Optional[str] = "SAMPLING",
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        temperature: Optional[float] = None,
        repetition_penalty: Optional[float] = None,
        stop_sequences: Optional[List[str]] = None,
        seed: Optional[np.uint64] = None,
        preserve_input_text: bool = False,
        unknown_characters: Optional[str] = "REJECT",
    ) -> Iterable[GeneratedTextStreamResult]:
        # Checked here, before the generator starts, so bad input fails the call itself
        # (gRPC INVALID_ARGUMENT) rather than the stream half-way.
        request = self.check_request(
            text, max_new_tokens, min_new_tokens, truncate_input_tokens, decoding_method, top_k, top_p,
            temperature, repetition_penalty, stop_sequences, seed, preserve_input_text, unknown_characters,
        )
        return self._stream(request)

    def _stream(self, request: GenerationRequest) -> Iterator[GeneratedTextStreamResult]:
        def message(text: str, count: int, finish_reason: FinishReason) -> GeneratedTextStreamResult:
            details = TokenStreamDetails(
                finish_reason=finish_reason,
                generated_tokens=count,
                seed=request.seed,
                input_token_count=len(request.prompt_ids),
            )
            return GeneratedTextStreamResult(generated_text=text, details=details, producer_id=self.PRODUCER_ID)

        if request.preserve_input_text:
            yield message(request.input_text, 0, FinishReason.NOT_FINISHED)
        for count, (char, finished) in enumerate(self._characters(request), start=1):
            yield message(char, count, finished or FinishReason.NOT_FINISHED)

    def _characters(self, request: GenerationRequest) -> Iterator[Tuple[str, Optional[FinishReason]]]:
        """Yield (character, finish reason or None) pairs; the last pair carries the reason.

        The next RNN step runs only when the consumer asks for the next character, so a stream
        nobody reads any more costs nothing; closing the generator (a client that went away)
        ends it.
        """
        with self._counter_lock:
            self.open_generations += 1
        produced, finish_reason = 0, None
        try:
            logits, state = self._prime(request.prompt_ids)
            rng = None if request.greedy else np.random.Generator(np.random.PCG64(request.seed))
            seen = np.zeros(len(self.vocab), dtype=bool)
            if request.repetition_penalty != 1.0:
                seen[request.prompt_ids] = True
            longest_stop = max((len(stop) for stop in request.stop_sequences), default=0)
            tail = ""
            while True:
                char_id = self.choose_next_char(logits, request, rng, seen)
                seen[char_id] = True
                char = self.vocab[char_id]
                produced += 1
                with self._counter_lock:
                    self.chars_generated += 1
                if longest_stop:
                    tail = (tail + char)[-longest_stop:]
                if produced >= request.min_new_chars and any(tail.endswith(s) for s in request.stop_sequences):
                    finish_reason = FinishReason.STOP_SEQUENCE
                elif produced >= request.max_new_chars:
                    finish_reason = FinishReason.MAX_TOKENS
                yield char, finish_reason
                if finish_reason is not None:
                    return
                logits, state = self._step(char_id, state)
        finally:
            with self._counter_lock:
                self.open_generations -= 1
            if finish_reason is None:
                log.info("generation stopped by its consumer after %d of %d characters", produced, request.max_new_chars)

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

    @staticmethod
    def choose_next_char(logits: np.ndarray, request: GenerationRequest, rng, seen: np.ndarray) -> int:
        """Pick the next character: repetition penalty, then greedy or temperature/top-k/top-p sampling."""
        return choose_next_token(logits, request, rng, seen)

    # -- request checking ------------------------------------------------------------------

    def check_request(
        self, text, max_new_tokens, min_new_tokens, truncate_input_tokens, decoding_method, top_k, top_p,
        temperature, repetition_penalty, stop_sequences, seed, preserve_input_text, unknown_characters,
    ) -> GenerationRequest:
        """Turn raw arguments into a GenerationRequest, or raise INVALID_ARGUMENT naming the problem."""
        text = require_text(text)
        checked = check_generation_parameters(
            max_new_tokens, min_new_tokens, truncate_input_tokens, decoding_method, top_k, top_p, temperature,
            repetition_penalty, stop_sequences, seed,
            max_new_tokens_limit=self.max_new_tokens_limit,
            default_max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
            default_temperature=DEFAULT_TEMPERATURE,
            unit="character",
        )
        truncate = checked.truncate_input_tokens

        policy = choice("unknown_characters", unknown_characters, UNKNOWN_CHARACTER_POLICIES)
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
        return GenerationRequest(
            input_text=text,
            prompt_ids=prompt_ids,
            max_new_chars=checked.max_new_tokens,
            min_new_chars=checked.min_new_tokens,
            greedy=checked.greedy,
            temperature=checked.temperature,
            top_k=checked.top_k,
            top_p=checked.top_p,
            repetition_penalty=checked.repetition_penalty,
            seed=checked.seed,
            stop_sequences=checked.stop_sequences,
            preserve_input_text=bool(preserve_input_text),
        )

    # -- evaluation ------------------------------------------------------------------------

    def encode(self, text: str) -> List[int]:
        """Character ids for a text the model can read (ValueError names unknown characters)."""
        unknown = sorted({char for char in text if char not in self.char_ids})
        if unknown:
            raise ValueError(f"text has characters outside the vocabulary: {unknown[:10]}")
        return [self.char_ids[char] for char in text]

    def loss_on(self, text: str, streams: int = 32) -> float:
        """Mean cross-entropy in nats per character of `text` (each char predicted from those before)."""
        return _mean_loss(self.net, torch.tensor(self.encode(text), dtype=torch.long), self.device, streams)

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
    def train(
        cls,
        training_data: DataStream[str],
        cell: str = "lstm",
        hidden_size: int = 512,
        num_layers: int = 2,
        embedding_dim: int = 64,
        dropout: float = 0.0,
        seq_length: int = 64,
        batch_size: int = 32,
        learning_rate: float = 3e-3,
        weight_decay: float = 0.0,
        epochs: int = 1,
        max_steps: int = 0,
        grad_clip: float = 1.0,
        val_fraction: float = 0.05,
        eval_every: int = 0,
        seed: int = 42,
        device: str = "auto",
        max_seconds: Optional[float] = None,
        max_new_tokens_limit: int = DEFAULT_MAX_NEW_TOKENS_LIMIT,
        sample_prompt: str = "",
    ) -> "CharTextGenerator":
        """Train a character-level LSTM/GRU language model from scratch on plain text.

        Args:
            training_data: Texts (lines or whole documents), joined with newlines. In-process,
                also a path to a .txt file or to a directory of .txt files.
            cell: lstm or gru.
            hidden_size: Units per recurrent layer.
            num_layers: Stacked recurrent layers.
            embedding_dim: Width of each character's embedding.
            dropout: Dropout between recurrent layers and before the read-out.
            seq_length: Characters per chunk of truncated backpropagation through time.
            batch_size: Parallel streams of text per step. (The defaults, 64-character chunks in
                batches of 32, are char-austen's recipe: on 2 CPU cores, at equal characters per
                second, they beat 128-character chunks.)
            learning_rate: Peak AdamW learning rate (short warm-up, then cosine decay to a tenth).
            weight_decay: AdamW weight decay.
            epochs: Passes over the training text (ignored when max_steps is set).
            max_steps: Optimizer steps to take (0: as many as epochs give).
            grad_clip: Clip the gradient norm to this (0: no clipping).
            val_fraction: The tail of the text held out for validation loss (0: none).
            eval_every: Validate every N steps (0: ten times per run).
            seed: Seeds the initialisation, dropout and chunk offsets.
            device: auto (CUDA when present), cpu or cuda[:N].
            max_seconds: Optional wall-clock budget; the learning-rate schedule is paced to it.
            max_new_tokens_limit: The most characters one request may ask the trained model for.
            sample_prompt: Prompt for the sample written into the metrics (default: the start
                of the text).
        """
        text = read_training_text(training_data)
        _check_training_arguments(
            text, cell, hidden_size, num_layers, embedding_dim, dropout, seq_length, batch_size, learning_rate,
            epochs, max_steps, val_fraction, max_new_tokens_limit,
        )
        vocab = "".join(sorted(set(text)))
        char_ids = {char: index for index, char in enumerate(vocab)}
        ids = torch.tensor([char_ids[char] for char in text], dtype=torch.long)
        held_out = int(len(ids) * val_fraction)
        if val_fraction > 0 and held_out < 2:
            raise ValueError(f"val_fraction {val_fraction} of {len(ids)} characters holds out fewer than 2")
        train_ids, val_ids = ids[: len(ids) - held_out], ids[len(ids) - held_out :]
        if len(train_ids) < batch_size * (seq_length + 1):
            raise ValueError(
                f"the training text has {len(train_ids)} characters (after holding out validation), fewer "
                f"than one step needs (batch_size x (seq_length + 1) = {batch_size * (seq_length + 1)}): "
                "lower batch_size or seq_length, or give more text"
            )

        torch.manual_seed(seed)
        target = resolve_device(device)
        net = CharRNN(len(vocab), hidden_size, num_layers, cell, embedding_dim, dropout).to(target)
        log.info(
            "training a %dx%d %s on %d characters (vocab %d), %s",
            num_layers, hidden_size, cell.upper(), len(train_ids), len(vocab), describe(target),
        )
        steps_per_epoch = (len(train_ids) // batch_size - 1) // seq_length
        total_steps = max_steps if max_steps > 0 else epochs * steps_per_epoch
        optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
        carried = {"state": None}

        def step_fn(model, batch):
            state = None if batch["reset"] else detach_state(carried["state"])
            logits, carried["state"] = model(batch["inputs"], state)
            return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch["targets"].reshape(-1))

        def evaluate():
            return {"val_loss": round(_mean_loss(net, val_ids, target), 4)}

        report = run_training(
            net,
            optimizer,
            _tbptt_batches(train_ids, batch_size, seq_length, random.Random(seed)),
            step_fn,
            total_steps=total_steps,
            device=target,
            scheduler=warmup_cosine_schedule(optimizer, total_steps, max_seconds),
            grad_clip=grad_clip or None,
            evaluate=evaluate if len(val_ids) else None,
            eval_every=eval_every or max(1, total_steps // 10),
            max_seconds=max_seconds,
            description=f"char-{cell}",
        )
        net.eval()
        generator = cls(net, vocab, max_new_tokens_limit, str(target))
        chars_seen = report.steps * batch_size * seq_length
        generator.metrics = {
            "recipe": {
                "cell": cell,
                "hidden_size": hidden_size,
                "num_layers": num_layers,
                "embedding_dim": embedding_dim,
                "dropout": dropout,
                "seq_length": seq_length,
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "weight_decay": weight_decay,
                "grad_clip": grad_clip,
                "seed": seed,
                "max_seconds": max_seconds,
            },
            "parameters": sum(p.numel() for p in net.parameters()),
            "vocab_size": len(vocab),
            "train_chars": len(train_ids),
            "validation_chars": len(val_ids),
            "steps": report.steps,
            "chars_seen": chars_seen,
            "epochs_seen": round(chars_seen / len(train_ids), 3),
            "train_seconds": round(report.seconds, 1),
            "stopped_by_time_budget": report.stopped_by_time_budget,
            "device": describe(target),
            "final_train_loss": round(report.last_loss, 4),
            "evaluations": report.evaluations,
        }
        if report.evaluations:
            generator.metrics["val_loss_nats_per_char"] = report.evaluations[-1]["val_loss"]
            generator.metrics["val_bits_per_char"] = round(report.evaluations[-1]["val_loss"] / math.log(2), 4)
        prompt = sample_prompt or _default_prompt(text)
        sample = generator.run(
            prompt, max_new_tokens=min(300, max_new_tokens_limit), temperature=0.8, seed=seed, unknown_characters="DROP"
        )
        generator.metrics["sample"] = {"prompt": prompt, "temperature": 0.8, "seed": seed, "text": sample.generated_text}
        return generator


def read_training_text(training_data) -> str:
    """One training text from a DataStream/iterable of strings, or (in-process) a .txt path."""
    if isinstance(training_data, (str, os.PathLike)):
        return _read_text_path(os.fspath(training_data))
    if training_data is None:
        raise ValueError("training_data is required: texts, or a path to a .txt file or directory")
    pieces = []
    for index, element in enumerate(training_data):
        if not isinstance(element, str):
            raise ValueError(f"training_data element {index} is not a string: {element!r:.200}")
        pieces.append(element)
    text = "\n".join(pieces)
    if not text.strip():
        raise ValueError("training_data is empty")
    return text


def _read_text_path(path: str) -> str:
    if os.path.isdir(path):
        files = sorted(
            os.path.join(root, name) for root, _, names in os.walk(path) for name in names if name.endswith(".txt")
        )
        if not files:
            raise ValueError(f"directory {path} has no .txt files")
    elif os.path.isfile(path):
        files = [path]
    else:
        raise ValueError(
            f"training_data {path!r} is neither a .txt file nor a directory (pass raw text as a list of strings)"
        )
    texts = []
    for name in files:
        with open(name, encoding="utf-8") as text_file:
            texts.append(text_file.read())
    text = "\n".join(texts)
    if not text.strip():
        raise ValueError(f"{path} holds no text")
    return text


def _default_prompt(text: str) -> str:
    first_line = text.strip().split("\n", 1)[0]
    return first_line[:40] or text.strip()[:1]


def _tbptt_batches(ids: torch.Tensor, batch_size: int, seq_length: int, rng: random.Random):
    """Endless (inputs, targets) chunks for truncated BPTT: the text cut into `batch_size`
    contiguous streams read side by side, so each chunk's state carries on from the last. Each
    pass starts at a new random offset, and resets the carried state."""
    while True:
        # Any offset that still leaves one whole chunk per stream.
        offset = rng.randrange(min(seq_length, len(ids) - batch_size * (seq_length + 1) + 1))
        stream_length = (len(ids) - offset) // batch_size
        streams = ids[offset : offset + batch_size * stream_length].view(batch_size, stream_length)
        for index, start in enumerate(range(0, stream_length - seq_length, seq_length)):
            yield {
                "inputs": streams[:, start : start + seq_length],
                "targets": streams[:, start + 1 : start + seq_length + 1],
                "reset": index == 0,
            }


def _mean_loss(net: CharRNN, ids: torch.Tensor, device: torch.device, streams: int = 32) -> float:
    """Cross-entropy in nats per predicted character, read as parallel streams with carried state."""
    streams = max(1, min(streams, (len(ids) - 1) // EVAL_CHUNK))
    length = len(ids) // streams
    if length < 2:
        raise ValueError("need at least 2 characters to measure a loss")
    data = ids[: streams * length].view(streams, length).to(device)
    was_training = net.training
    net.eval()
    total, count, state = 0.0, 0, None
    with torch.inference_mode():
        for start in range(0, length - 1, EVAL_CHUNK):
            inputs = data[:, start : min(start + EVAL_CHUNK, length - 1)]
            targets = data[:, start + 1 : start + 1 + inputs.shape[1]]
            logits, state = net(inputs, state)
            total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum").item()
            count += targets.numel()
    net.train(was_training)
    return total / count


def _check_training_arguments(
    text, cell, hidden_size, num_layers, embedding_dim, dropout, seq_length, batch_size, learning_rate, epochs,
    max_steps, val_fraction, max_new_tokens_limit,
) -> None:
    if cell not in ("lstm", "gru"):
        raise ValueError(f"cell must be lstm or gru, got {cell!r}")
    for name, value in (
        ("hidden_size", hidden_size),
        ("num_layers", num_layers),
        ("embedding_dim", embedding_dim),
        ("seq_length", seq_length),
        ("batch_size", batch_size),
        ("max_new_tokens_limit", max_new_tokens_limit),
    ):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    if max_steps < 0 or (max_steps == 0 and epochs < 1):
        raise ValueError(f"give epochs >= 1 or max_steps >= 1, got epochs={epochs}, max_steps={max_steps}")
    if not 0 <= val_fraction < 0.5:
        raise ValueError(f"val_fraction must be in [0, 0.5), got {val_fraction}")
    if len(text) < 2:
        raise ValueError("training_data needs at least 2 characters")

