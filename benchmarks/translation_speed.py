"""Sentences per second of the Translator's list form (length-sorted batches) against one
generate() call per sentence, same model, same sentences, same run; greedy and 4 beams.

    python benchmarks/translation_speed.py [--model-dir models/translator-en-id] [--sentences 200] [--beams 1 4]

The sentences are the first N held-out help sentences of the default model's test split
(`make data` unpacks them), or --texts. Both ways decode the same way (greedy or beam search
through transformers' generate()); the list form batches sentences of similar length, the other
runs them one by one. "same output" compares the two translations of every sentence.
"""

import argparse
import sys
import time

import torch

from caikit_genai import Translator
from caikit_genai.modules.translator import Piece


def one_by_one(translator: Translator, texts, beams: int):
    """A generate() call per sentence: what a client that sends one request per sentence gets."""
    outputs = []
    for text in texts:
        ids = translator.tokenizer(text, truncation=True, max_length=translator.max_input_tokens)["input_ids"]
        decoded = translator._generate_batched([Piece(0, ids)], 128, beams)  # pylint: disable=protected-access
        outputs.append(translator.detokenize(decoded[0].token_ids))
    return outputs


def listed(translator: Translator, texts, beams: int):
    return [result.translation_text for result in translator.run_list(list(texts), num_beams=beams, truncate_input_tokens=translator.max_input_tokens).results]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="models/translator-en-id")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--texts", nargs="+", help="sentences to translate instead of the held-out help sentences")
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    translator = Translator.load(args.model_dir)
    translator.batch_size = args.batch_size
    if args.texts:
        texts = args.texts
    else:
        from caikit_genai.toolkit.offline_data.en_id import en_id_splits  # pylint: disable=import-outside-toplevel

        texts = [source for source, _ in en_id_splits().help_test[: args.sentences]]
    print(f"model {args.model_dir}, {len(texts)} sentences, torch threads {torch.get_num_threads()}, batch {args.batch_size}")
    print("| decoding | one generate() per sentence: sentences/s | list form: sentences/s | speed-up | same output |")
    print("|---|---|---|---|---|")
    for beams in args.beams:
        timings = {}
        for name, way in (("single", one_by_one), ("list", listed)):
            started = time.perf_counter()
            timings[name] = (way(translator, texts, beams), time.perf_counter() - started)
        single_rate = len(texts) / timings["single"][1]
        list_rate = len(texts) / timings["list"][1]
        same = sum(a == b for a, b in zip(timings["single"][0], timings["list"][0]))
        decoding = "greedy" if beams == 1 else f"{beams} beams"
        print(f"| {decoding} | {single_rate:.1f} | {list_rate:.1f} | {list_rate / single_rate:.1f}x | {same}/{len(texts)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
