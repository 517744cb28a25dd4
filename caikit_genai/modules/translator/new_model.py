"""A new Translator to train: a pretrained encoder, a BERT-style decoder with cross-attention
from scratch, and a BPE vocabulary for the target language trained on the target texts."""

from typing import Sequence, Tuple

from ...toolkit.models.hf_models import model_input_limit, packaged_encoder_path
from .recipe import TranslatorRecipe

TARGET_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]


def new_translator(module_class, pairs: Sequence[Tuple[str, str]], recipe: TranslatorRecipe):
    """A `module_class` (the Translator) around the recipe's encoder and a new decoder."""
    # pylint: disable=import-outside-toplevel
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertLMHeadModel, EncoderDecoderModel

    encoder_dir = recipe.encoder_model or packaged_encoder_path()
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True)
    encoder = AutoModel.from_pretrained(encoder_dir, local_files_only=True, attn_implementation="eager")
    target_tokenizer = train_target_tokenizer([target_text for _, target_text in pairs], recipe.target_vocab_size)
    hidden = encoder.config.hidden_size
    if hidden % recipe.decoder_heads:
        raise ValueError(f"decoder_heads ({recipe.decoder_heads}) must divide the encoder's width ({hidden})")
    decoder_config = BertConfig(
        vocab_size=len(target_tokenizer),
        hidden_size=hidden,
        num_hidden_layers=recipe.decoder_layers,
        num_attention_heads=recipe.decoder_heads,
        intermediate_size=hidden * 4,
        max_position_embeddings=max(recipe.max_target_tokens, recipe.max_new_tokens_limit) + 2,
        is_decoder=True,
        add_cross_attention=True,
        pad_token_id=target_tokenizer.pad_token_id,
        attn_implementation="eager",
    )
    model = EncoderDecoderModel(encoder=encoder, decoder=BertLMHeadModel(decoder_config))
    model.config.decoder_start_token_id = target_tokenizer.bos_token_id
    model.config.pad_token_id = target_tokenizer.pad_token_id
    model.config.eos_token_id = target_tokenizer.eos_token_id
    model.config.tie_word_embeddings = False
    max_input_tokens = min(recipe.max_source_tokens, model_input_limit(tokenizer, encoder))
    return module_class(model, tokenizer, target_tokenizer, max_input_tokens, recipe.max_new_tokens_limit)


def train_target_tokenizer(texts: Sequence[str], vocab_size: int):
    """A BPE vocabulary for the target language, sentencepiece-style (a word's first piece carries
    the space), trained on the target texts; every sequence ends with [EOS]."""
    # pylint: disable=import-outside-toplevel
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.normalizer = normalizers.NFKC()
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    bpe.decoder = decoders.Metaspace()
    bpe.train_from_iterator(
        list(texts), trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=TARGET_SPECIAL_TOKENS, show_progress=False)
    )
    bpe.post_processor = processors.TemplateProcessing(single="$A [EOS]", special_tokens=[("[EOS]", bpe.token_to_id("[EOS]"))])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="[BOS]", eos_token="[EOS]", pad_token="[PAD]", unk_token="[UNK]"
    )
