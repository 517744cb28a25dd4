"""Tiny, locally built models for tests: nothing is downloaded."""

import os

from tokenizers import BertWordPieceTokenizer
from transformers import BertConfig, BertModel, BertTokenizerFast

POSITIVE_WORDS = "good great wonderful moving beautiful superb delightful brilliant charming lovely".split()
NEGATIVE_WORDS = "bad awful dull lifeless boring terrible tedious clumsy stale mess".split()
FILLER = "a the film movie story acting plot it is was very quite and with this".split()


def sentiment_examples(count: int, seed: int = 0):
    """Short synthetic reviews whose label a tiny BERT can learn in a few steps."""
    import random

    rng = random.Random(seed)
    examples = []
    for index in range(count):
        positive = index % 2 == 0
        words = rng.sample(FILLER, 4) + rng.sample(POSITIVE_WORDS if positive else NEGATIVE_WORDS, 2)
        rng.shuffle(words)
        examples.append({"text": " ".join(words), "label": "positive" if positive else "negative"})
    return examples


def build_tiny_bert(directory: str, layers: int = 2, hidden: int = 32, max_positions: int = 64) -> str:
    """A randomly initialised 2-layer BERT with a ~100-token WordPiece vocab and a real tokenizer."""
    os.makedirs(directory, exist_ok=True)
    corpus = [" ".join(POSITIVE_WORDS + NEGATIVE_WORDS + FILLER)] * 4
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(corpus, vocab_size=120, min_frequency=1)
    wordpiece.save_model(directory)
    tokenizer = BertTokenizerFast(vocab_file=os.path.join(directory, "vocab.txt"), model_max_length=max_positions)
    tokenizer.save_pretrained(directory)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=max_positions,
    )
    BertModel(config).save_pretrained(directory)
    return directory


TINY_CHAR_LINES = [
    "the cat sat on the mat.",
    "the dog sat on the log.",
    "a cat and a dog sat on a mat by the log.",
    "the hen sat in the pen, and the cat ran to the den.",
    "then the dog ran to the hen, and the hen sat on the log again.",
]


def char_training_text(repeats: int = 12) -> str:
    """A short, very regular text: a tiny char RNN learns its spelling in a few seconds."""
    return "\n".join(TINY_CHAR_LINES * repeats)


# Small enough to train in ~2 s on a shared 2-core machine.
TINY_CHAR_RECIPE = {
    "hidden_size": 32,
    "num_layers": 1,
    "embedding_dim": 16,
    "seq_length": 32,
    "batch_size": 8,
    "max_steps": 80,
    "learning_rate": 1e-2,
    "seed": 3,
}
