"""CharTextGenerator's trainer: plain text -> CharRecipe -> truncated BPTT through the toolkit's
training loop -> a generator with its metrics; and the loss it is measured by."""

import math
import os
import random

import torch
import torch.nn.functional as F
import alog

from ...nets.char_rnn import CharRNN, detach_state
from ...toolkit.models.device import amp_dtype, describe, dtype_name, resolve_device
from ...toolkit.training.optimizers import adamw
from ...toolkit.training.loop import run_training, warmup_cosine_schedule
from .recipe import CharRecipe

log = alog.use_channel("CHARGEN")

EVAL_CHUNK = 256
SAMPLE_CHARS = 300
SAMPLE_TEMPERATURE = 0.8
# The recipe knobs metrics.json records under "recipe".
RECORDED_KNOBS = (
    "cell", "hidden_size", "num_layers", "embedding_dim", "dropout", "seq_length", "batch_size",
    "learning_rate", "weight_decay", "grad_clip", "seed", "max_seconds", "precision",
)


def train_char_generator(module_class, training_data, recipe: CharRecipe):
    """A `module_class` (CharTextGenerator) trained from scratch on `training_data` as `recipe` says."""
    text = read_training_text(training_data)
    if len(text) < 2:
        raise ValueError("training_data needs at least 2 characters")
    vocab = "".join(sorted(set(text)))
    char_ids = {char: index for index, char in enumerate(vocab)}
    ids = torch.tensor([char_ids[char] for char in text], dtype=torch.long)
    train_ids, val_ids = _split(ids, recipe)

    torch.manual_seed(recipe.seed)
    target = resolve_device(recipe.device)
    net = CharRNN(len(vocab), recipe.hidden_size, recipe.num_layers, recipe.cell, recipe.embedding_dim, recipe.dropout)
    net = net.to(target)
    log.info(
        "training a %dx%d %s on %d characters (vocab %d), %s",
        recipe.num_layers, recipe.hidden_size, recipe.cell.upper(), len(train_ids), len(vocab), describe(target),
    )
    steps_per_epoch = (len(train_ids) // recipe.batch_size - 1) // recipe.seq_length
    total_steps = recipe.max_steps if recipe.max_steps > 0 else recipe.epochs * steps_per_epoch
    optimizer = adamw(net.named_parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    carried = {"state": None}

    def step_fn(model, batch):
        state = None if batch["reset"] else detach_state(carried["state"])
        logits, carried["state"] = model(batch["inputs"], state)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch["targets"].reshape(-1))

    def evaluate():
        return {"val_loss": round(mean_loss(net, val_ids, target), 4)}

    report = run_training(
        net,
        optimizer,
        _tbptt_batches(train_ids, recipe.batch_size, recipe.seq_length, random.Random(recipe.seed)),
        step_fn,
        total_steps=total_steps,
        device=target,
        scheduler=warmup_cosine_schedule(optimizer, total_steps, recipe.max_seconds),
        grad_clip=recipe.grad_clip or None,
        evaluate=evaluate if len(val_ids) else None,
        eval_every=recipe.eval_every or max(1, total_steps // 10),
        max_seconds=recipe.max_seconds,
        description=f"char-{recipe.cell}",
        precision=recipe.precision,
    )
    net.eval()
    generator = module_class(net, vocab, recipe.max_new_tokens_limit, str(target))
    chars_seen = report.steps * recipe.batch_size * recipe.seq_length
    generator.metrics = {
        "recipe": {name: getattr(recipe, name) for name in RECORDED_KNOBS},
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
        "precision": dtype_name(amp_dtype(target, recipe.precision)),
        "final_train_loss": round(report.last_loss, 4),
        "evaluations": report.evaluations,
    }
    if report.evaluations:
        generator.metrics["val_loss_nats_per_char"] = report.evaluations[-1]["val_loss"]
        generator.metrics["val_bits_per_char"] = round(report.evaluations[-1]["val_loss"] / math.log(2), 4)
    prompt = recipe.sample_prompt or _default_prompt(text)
    sample = generator.run(
        prompt,
        max_new_tokens=min(SAMPLE_CHARS, recipe.max_new_tokens_limit),
        temperature=SAMPLE_TEMPERATURE,
        seed=recipe.seed,
        unknown_characters="DROP",
    )
    generator.metrics["sample"] = {
        "prompt": prompt, "temperature": SAMPLE_TEMPERATURE, "seed": recipe.seed, "text": sample.generated_text
    }
    return generator


def _split(ids: torch.Tensor, recipe: CharRecipe):
    """(training ids, validation ids): the tail of the text is held out."""
    held_out = int(len(ids) * recipe.val_fraction)
    if recipe.val_fraction > 0 and held_out < 2:
        raise ValueError(f"val_fraction {recipe.val_fraction} of {len(ids)} characters holds out fewer than 2")
    train_ids, val_ids = ids[: len(ids) - held_out], ids[len(ids) - held_out :]
    one_step = recipe.batch_size * (recipe.seq_length + 1)
    if len(train_ids) < one_step:
        raise ValueError(
            f"the training text has {len(train_ids)} characters (after holding out validation), fewer "
            f"than one step needs (batch_size x (seq_length + 1) = {one_step}): "
            "lower batch_size or seq_length, or give more text"
        )
    return train_ids, val_ids


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


def mean_loss(net: CharRNN, ids: torch.Tensor, device: torch.device, streams: int = 32) -> float:
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
