"""A sequence classifier that reads the mean of an encoder's token states, not its first token.

Sentence-embedding encoders (all-mpnet-base-v2, MiniLM-L6) were trained through a mean over
their token states; their first token was never trained to summarise the text, so a head on it
starts from nothing while a head on the mean starts from a good sentence vector.

Hugging Face has no mean-pooled `...ForSequenceClassification`, so this wraps any `AutoModel`
encoder: its HF dir is the encoder's own (config marked `classifier_pooling: mean`, loadable by
`AutoModel`) plus the head's weights in `pooled_classifier.safetensors`.
"""

import os
from typing import Optional

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel
from transformers.modeling_outputs import SequenceClassifierOutput

HEAD_FILE = "pooled_classifier.safetensors"
POOLINGS = ("cls", "mean")


def saved_pooling(config) -> str:
    """The pooling an HF config says its classifier uses: `mean` for ours, `cls` for HF's own."""
    return getattr(config, "classifier_pooling", "cls")


class MeanPooledClassifier(nn.Module):
    """encoder -> masked mean of the token states -> dropout -> linear over the labels."""

    def __init__(self, encoder: nn.Module, head: Optional[nn.Linear] = None):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.config.classifier_pooling = "mean"
        self.dropout = nn.Dropout(getattr(self.config, "hidden_dropout_prob", 0.1))
        self.classifier = head or nn.Linear(self.config.hidden_size, self.config.num_labels)

    @property
    def base_model(self) -> nn.Module:
        """The encoder (what frozen-layer training reaches into, as with HF's classifiers)."""
        return self.encoder

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **_) -> SequenceClassifierOutput:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds).last_hidden_state
        if attention_mask is None:
            pooled = states.mean(dim=1)
        else:
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)))

    def save_pretrained(self, hf_dir: str) -> None:
        self.encoder.save_pretrained(hf_dir)
        save_file({name: tensor.contiguous() for name, tensor in self.classifier.state_dict().items()}, os.path.join(hf_dir, HEAD_FILE))

    @classmethod
    def from_pretrained(cls, hf_dir: str, **options) -> "MeanPooledClassifier":
        encoder = AutoModel.from_pretrained(hf_dir, **options)
        head = nn.Linear(encoder.config.hidden_size, encoder.config.num_labels)
        head.load_state_dict(load_file(os.path.join(hf_dir, HEAD_FILE)))
        return cls(encoder, head)

