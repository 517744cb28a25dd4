"""Distillation: a student learns a teacher's softened scores as well as the gold labels
(Hinton et al. 2015; DistilBERT's recipe), and texts without labels from the scores alone."""

import os
from typing import Dict, List, Optional

import torch

import alog

from ...toolkit.models.hf_models import CAIKIT_CONFIG, HF_SUBDIR, hf_source

log = alog.use_channel("SENTIMENT")

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


def teacher_scores(teacher, texts: List[str], label_names: List[str], temperature: float) -> torch.Tensor:
    """The teacher's scores for each text, over `label_names` in order, softened to `temperature`
    (a softmax of logits / T, computed from the probabilities the teacher serves)."""
    missing = sorted(set(label_names) - set(teacher.labels))
    if missing:
        raise ValueError(f"teacher_model has labels {teacher.labels}, not the training data's {missing}")
    log.info("scoring %d texts with the teacher", len(texts))
    by_label = teacher.scores_of(texts)
    probabilities = torch.tensor(by_label[:, [teacher.labels.index(name) for name in label_names]])
    softened = probabilities.clamp_min(1e-12) ** (1.0 / temperature)
    return softened / softened.sum(dim=-1, keepdim=True)


def load_teacher(module_class, teacher_model: str):
    """A teacher named by path: one of our sentiment model dirs (or its hf_model/), or an HF
    sequence classifier."""
    source = hf_source(teacher_model)
    model_dir = os.path.dirname(source.path)
    if os.path.isfile(os.path.join(model_dir, CAIKIT_CONFIG)) and os.path.basename(source.path) == HF_SUBDIR:
        return module_class.load(model_dir)
    return module_class.bootstrap(teacher_model)


def teacher_name(teacher) -> str:
    """What an in-process teacher is called in the student's metrics: its base model."""
    return str(teacher.metrics.get("base_model") or "in-process SentimentClassifier")


def unlabelled_list(texts: Optional[List[str]], teacher_model: str) -> List[str]:
    """The unlabelled texts, checked: a list of non-empty strings, and a teacher to learn them from."""
    if texts is None:
        return []
    if isinstance(texts, str):
        raise ValueError("unlabelled_texts must be a list of strings, not one string")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"unlabelled_texts item {index} is not a non-empty string: {text!r:.200}")
    if texts and not teacher_model:
        raise ValueError("unlabelled_texts are learned from a teacher's scores: give teacher_model too")
    return texts
