"""SentimentClassifier: text -> labels with softmax scores, over any HF sequence classifier.

Implements caikit's own `TextClassificationTask`, so the RPC (`TextClassificationTaskPredict`),
the HTTP route (`/api/v1/task/text-classification`) and the messages are caikit-nlp's. The
model dir holds a Hugging Face checkpoint (`hf_model/`): with the default head (on the first
token) it loads in `transformers.pipeline("text-classification", ...)` untouched; a mean-pooled
head (`pooling: mean`, nets/pooled_classifier.py) is the encoder, which `AutoModel` loads, plus
the head's weights. Training lives in training.py,
its parameters in recipe.py.
"""

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from transformers import AutoTokenizer

from caikit.core import ModuleBase, ModuleConfig, module
from caikit.core.data_model import DataStream
from caikit.interfaces.nlp.data_model import ClassificationResult, ClassificationResults
from caikit.interfaces.nlp.tasks import TextClassificationTask
import alog

from ...data_model import LabeledText
from ...toolkit.serving.batching import DynamicBatcher, model_id_of
from ...toolkit.models.device import autocast, serving_device
from ...toolkit.serving.errors import invalid_argument, require_text
from ...toolkit.training.frozen_layers import cached_scores, pad_token_ids
from ...toolkit.models.hf_models import hf_model_dir_paths, model_input_limit, save_hf_model_dir
from ...toolkit.models.model_dir import BuildInfo, read_metrics
from ...toolkit.training.recipes import recipe_train
from ...toolkit.serving.thread_safe import ThreadSafeTokenizer
from .distillation import teacher_name
from .recipe import SentimentRecipe
from .training import load_hf_classifier, load_saved_classifier, train_sentiment

log = alog.use_channel("SENTIMENT")

INFERENCE_BATCH_SIZE = 64


@module(id="c974c406-8a2e-41eb-a80d-4e6c4eb526db", name="SentimentClassifier", version="0.1.0", task=TextClassificationTask)
class SentimentClassifier(BuildInfo, ModuleBase):
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
        self.device = serving_device(device)
        # Request threads share one model: torch's forward pass is safe to share, the
        # tokenizer is not (see toolkit/serving/thread_safe.py).
        self.tokenizer = ThreadSafeTokenizer(tokenizer)
        self.model = model.to(self.device).eval()
        self.max_input_tokens = max_input_tokens
        self.metrics = metrics or {}
        self.labels = [self.model.config.id2label[index] for index in range(self.model.config.num_labels)]
        # Single requests from many threads run as shared forward passes (toolkit/serving/batching.py).
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
            scores[cached] = cached_scores(self.model, known["freeze_layers"], states)
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
        config = {"max_input_tokens": self.max_input_tokens, "labels": self.labels}
        save_hf_model_dir(self, model_path, self.model, self.tokenizer.unwrapped, config, self.metrics)

    @classmethod
    def load(cls, model_path) -> "SentimentClassifier":
        """Load from a model dir (the runtime passes a ModuleConfig, tests and users a path)."""
        config = ModuleConfig.load(model_path)
        hf_dir, _ = hf_model_dir_paths(config)
        tokenizer = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
        model = load_saved_classifier(hf_dir)
        max_input_tokens = int(config.get("max_input_tokens", model_input_limit(tokenizer, model)))
        return cls(tokenizer, model, max_input_tokens, "auto", read_metrics(config.model_path, config), model_id_of(config.model_path))

    # -- training ------------------------------------------------------------------------

    @classmethod
    @recipe_train(
        SentimentRecipe,
        """
        training_data: Examples with `text` and `label` (2 or more distinct labels).
        validation_data: Optional held-out examples; accuracy on them is reported per epoch, and the weights of the best epoch are kept.
        unlabelled_texts: More texts, without labels, learned from the teacher's scores alone (needs teacher_model).
        """,
        trailing=("unlabelled_texts",),
    )
    def train(
        cls,
        training_data: DataStream[LabeledText],
        validation_data: Optional[DataStream[LabeledText]] = None,
        unlabelled_texts: Optional[List[str]] = None,
        preset: str = "",
        **knobs,
    ) -> "SentimentClassifier":
        """Fine-tune a transformer on labelled text; the labels are whatever the data carries."""
        teacher = knobs.get("teacher_model")
        if isinstance(teacher, cls):
            # An in-process teacher (the bootstrap's): the recipe names it, the trainer uses it.
            knobs["teacher_model"] = teacher_name(teacher)
        else:
            teacher = None
        recipe = SentimentRecipe.build(preset, **knobs)
        return train_sentiment(cls, training_data, validation_data, unlabelled_texts, recipe, teacher)
