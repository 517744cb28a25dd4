"""Tiny, locally built models for tests: nothing is downloaded."""

import contextlib
import os

import torch
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


@contextlib.contextmanager
def seeded(seed: int):
    """Random weights that do not depend on which tests ran before (an unlucky draw, about one in
    twelve for the tiny BERT, never learns the synthetic labels), without moving the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_tiny_bert(
    directory: str, layers: int = 2, hidden: int = 32, max_positions: int = 64, seed: int = 0, words=None
) -> str:
    """A randomly initialised 2-layer BERT with a ~100-token WordPiece vocab and a real tokenizer
    (trained on the sentiment words, or on `words`)."""
    os.makedirs(directory, exist_ok=True)
    # The vocab is written, not trained: WordPiece training breaks its merge ties differently from
    # one process to the next, so the same seed built a different model each run (and about one
    # build in five left the tiny sentiment trainings at chance). Whole words, then characters
    # alone and as continuations, so any text still tokenizes.
    vocab_words = sorted({word.lower() for word in (words or POSITIVE_WORDS + NEGATIVE_WORDS + FILLER)})
    characters = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-") | set("".join(vocab_words)))
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + vocab_words
    pieces += [char for char in characters if char not in pieces] + [f"##{char}" for char in characters]
    with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as vocab_file:
        vocab_file.write("\n".join(pieces) + "\n")
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
    with seeded(seed):
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


SEQ2SEQ_CORPUS = [
    "the cat sat on the mat",
    "kucing itu duduk di atas tikar",
    "the dog sat on the log",
    "anjing itu duduk di atas kayu",
    "open the file and save it",
    "buka berkas lalu simpan",
]


def build_tiny_bart(directory: str, max_positions: int = 64) -> str:
    """A randomly initialised BART (2 encoder layers x 2 heads, 3 decoder layers x 4 heads, so
    every count differs) with a byte-level BPE tokenizer trained here: one tokenizer, both sides."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizerFast

    os.makedirs(directory, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        SEQ2SEQ_CORPUS * 4, vocab_size=320, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    bpe.save_model(directory)
    tokenizer = BartTokenizerFast(
        vocab_file=os.path.join(directory, "vocab.json"),
        merges_file=os.path.join(directory, "merges.txt"),
        model_max_length=max_positions,
    )
    tokenizer.save_pretrained(directory)
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=2,
        decoder_layers=3,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=max_positions,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
    )
    with seeded(0):
        BartForConditionalGeneration(config).save_pretrained(directory)
    return directory


def build_tiny_translator_dir(directory: str, encoder_dir: str) -> str:
    """A caikit model dir shaped as the Translator issue plans its default model: an HF
    EncoderDecoderModel in hf_model/ (a pretrained encoder, here the tiny BERT, plus a BERT decoder
    with cross-attention) with the source tokenizer, and its own target-side tokenizer in
    target_tokenizer/, both named by config.yml."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import BertLMHeadModel, EncoderDecoderModel, PreTrainedTokenizerFast

    hf_dir = os.path.join(directory, "hf_model")
    target_dir = os.path.join(directory, "target_tokenizer")
    target = Tokenizer(models.BPE(unk_token="[UNK]"))
    target.pre_tokenizer = pre_tokenizers.Whitespace()
    target.train_from_iterator(
        SEQ2SEQ_CORPUS[1::2] * 4, trainers.BpeTrainer(vocab_size=120, special_tokens=["[PAD]", "[UNK]", "[BOS]", "[EOS]"])
    )
    target.post_processor = processors.TemplateProcessing(single="$A [EOS]", special_tokens=[("[EOS]", 3)])
    target_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=target, bos_token="[BOS]", eos_token="[EOS]", pad_token="[PAD]", unk_token="[UNK]"
    )
    target_tokenizer.save_pretrained(target_dir)
    decoder_config = BertConfig(
        vocab_size=len(target_tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        is_decoder=True,
        add_cross_attention=True,
    )
    with seeded(0):
        decoder = BertLMHeadModel(decoder_config)
    model = EncoderDecoderModel(encoder=BertModel.from_pretrained(encoder_dir), decoder=decoder)
    model.config.decoder_start_token_id = target_tokenizer.bos_token_id
    model.config.pad_token_id = target_tokenizer.pad_token_id
    model.save_pretrained(hf_dir)
    BertTokenizerFast.from_pretrained(encoder_dir).save_pretrained(hf_dir)
    with open(os.path.join(directory, "config.yml"), "w", encoding="utf-8") as config_file:
        config_file.write("module_id: translator-to-be\nhf_model: hf_model\ntarget_tokenizer: target_tokenizer\n")
    return directory


TINY_DCGAN_CLASSES = ("ring", "square", "stripe")


def dcgan_training_images(count: int = 96, size: int = 16, seed: int = 0):
    """uint8 images [count, size, size, 1] of three shapes (a class each, in turn), jittered."""
    import numpy as np

    rng = np.random.default_rng(seed)
    images = np.zeros((count, size, size, 1), dtype=np.uint8)
    labels = []
    yy, xx = np.mgrid[:size, :size]
    for index in range(count):
        name = TINY_DCGAN_CLASSES[index % 3]
        dx, dy = rng.integers(-2, 3, size=2)
        cx, cy = size / 2 + dx, size / 2 + dy
        if name == "ring":
            radius = np.hypot(xx - cx, yy - cy)
            mask = (radius > size / 5) & (radius < size / 3)
        elif name == "square":
            mask = (abs(xx - cx) < size / 4) & (abs(yy - cy) < size / 4)
        else:
            mask = abs(xx - cx) < size / 8
        images[index, mask, 0] = 255
        labels.append(name)
    return images, labels


# A 16-channel DCGAN at 16x16 that trains in about a second on 2 cores.
TINY_DCGAN_RECIPE = {"nz": 16, "ngf": 16, "ndf": 16, "batch_size": 32, "max_steps": 12, "eval_every": 6, "eval_samples": 48, "seed": 5}
TINY_DCGAN_MAX_IMAGES = 64


def build_tiny_dcgan(directory: str, seed: int = 0, class_names=TINY_DCGAN_CLASSES):
    """Train the tiny cDCGAN a few steps, from fixed weights and data, and save it; `class_names`
    renames the three shapes (a stand-in for dcgan-fashion answers to garment names)."""
    from caikit_genai import DCGANImageGenerator

    images, labels = dcgan_training_images()
    labels = [class_names[TINY_DCGAN_CLASSES.index(label)] for label in labels]
    with seeded(seed):
        model = DCGANImageGenerator.train((images, labels), max_images=TINY_DCGAN_MAX_IMAGES, **TINY_DCGAN_RECIPE)
    model.save(directory)
    return model


# A toy English -> Indonesian: "the <subject> <verb> the <object>" -> "<subjek> itu <verba> <objek>".
TOY_SUBJECTS = {"cat": "kucing", "dog": "anjing", "hen": "ayam", "bird": "burung"}
TOY_VERBS = {"sees": "melihat", "eats": "makan", "likes": "suka"}
TOY_OBJECTS = {"fish": "ikan", "rice": "nasi", "water": "air", "bread": "roti"}
TOY_ENGLISH_WORDS = ["the", "."] + list(TOY_SUBJECTS) + list(TOY_VERBS) + list(TOY_OBJECTS)


def toy_translation_pairs():
    """All 48 toy sentence pairs, as {"source", "target"} dicts."""
    return [
        {"source": f"the {s} {v} the {o}", "target": f"{si} itu {vi} {oi}"}
        for s, si in TOY_SUBJECTS.items()
        for v, vi in TOY_VERBS.items()
        for o, oi in TOY_OBJECTS.items()
    ]


# Small enough to train in a few seconds on a shared 2-core machine, and to learn the toy pairs.
TINY_TRANSLATOR_RECIPE = {
    "decoder_layers": 1,
    "decoder_heads": 2,
    "target_vocab_size": 60,
    "batch_size": 8,
    "max_steps": 240,
    "learning_rate": 5e-3,
    "label_smoothing": 0.0,
    "val_fraction": 0.0,
    "max_source_tokens": 32,
    "max_new_tokens_limit": 64,
    "seed": 1,
}


def build_tiny_toy_encoder(directory: str) -> str:
    """The tiny BERT with the toy English words in its vocabulary (one token per word)."""
    return build_tiny_bert(directory, words=TOY_ENGLISH_WORDS, max_positions=64, seed=2)


def build_tiny_models_dir(directory: str) -> str:
    """One tiny model per served module, in `directory` under the session runtime's ids
    (tiny-sentiment, tiny-char, tiny-attention, tiny-dcgan, tiny-translator): a models dir for
    scripts that start their own runtime (benchmarks/overload.py --tiny). A minute on 2 cores."""
    import shutil
    import tempfile

    from caikit_genai import AttentionInspector, CharTextGenerator, SentimentClassifier, Translator

    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tiny-bases-") as bases:
        bert = build_tiny_bert(os.path.join(bases, "tiny-bert"))
        SentimentClassifier.train(
            sentiment_examples(200), base_model=bert, epochs=6, batch_size=16, learning_rate=3e-3
        ).save(os.path.join(directory, "tiny-sentiment"))
        CharTextGenerator.train([char_training_text()], max_new_tokens_limit=4096, **TINY_CHAR_RECIPE).save(
            os.path.join(directory, "tiny-char")
        )
        AttentionInspector.bootstrap(bert).save(os.path.join(directory, "tiny-attention"))
        build_tiny_dcgan(os.path.join(directory, "tiny-dcgan"))
        encoder = build_tiny_toy_encoder(os.path.join(bases, "toy-encoder"))
        with seeded(0):
            translator = Translator.train(toy_translation_pairs(), encoder_model=encoder, **TINY_TRANSLATOR_RECIPE)
        translator.save(os.path.join(directory, "tiny-translator"))
    shutil.rmtree(os.path.join(directory, ".cache"), ignore_errors=True)
    return directory
