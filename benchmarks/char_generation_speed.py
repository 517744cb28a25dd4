"""Characters per second of CharTextGenerator's stateful sampling against a naive loop that
re-reads the whole prefix at every step, same model, same sampling, same run.

    python benchmarks/char_generation_speed.py [--model-dir models/char-austen] [--lengths 100 1000 10000] [--device cuda]

Without --model-dir it times an untrained 2x512 LSTM (speed does not depend on training). The
naive loop costs O(n^2): each length gets --naive-budget seconds, and a run cut short reports its
rate so far, an upper bound (each further step is slower than the last), so the ratio printed
for it is a lower bound.
"""

import argparse
import string
import sys
import time

import numpy as np
import torch

from caikit_genai import CharTextGenerator
from caikit_genai.nets import CharRNN
from caikit_genai.toolkit.generation import choose_next_token, sampling_rng


def untrained_generator(device: str = "cpu") -> CharTextGenerator:
    torch.manual_seed(0)
    vocab = "".join(sorted(set(string.printable)))
    return CharTextGenerator(CharRNN(len(vocab), hidden_size=512, num_layers=2, cell="lstm", embedding_dim=64), vocab, 10_000_000, device)


def stateful(generator: CharTextGenerator, prompt: str, length: int, seed: int):
    started = time.perf_counter()
    text = generator.run(prompt, max_new_tokens=length, seed=seed, unknown_characters="DROP").generated_text
    return text, time.perf_counter() - started


def naive(generator: CharTextGenerator, prompt: str, length: int, seed: int, budget: float):
    """The same sampling, but every step runs the network over prompt + everything generated so far."""
    request = generator.check_request(prompt, {"max_new_tokens": length, "seed": seed, "unknown_characters": "DROP"})
    rng = sampling_rng(request.parameters)
    seen = np.zeros(len(generator.vocab), dtype=bool)
    ids = list(request.prompt_ids)
    started = time.perf_counter()
    chars = []
    with torch.inference_mode():
        while len(chars) < length and time.perf_counter() - started < budget:
            logits, _ = generator.net(torch.tensor([ids], dtype=torch.long, device=generator.device))
            char_id = choose_next_token(logits[0, -1].float().cpu().numpy(), request.parameters, rng, seen)
            ids.append(char_id)
            chars.append(generator.vocab[char_id])
    return "".join(chars), time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="a built CharTextGenerator model dir (default: an untrained 2x512 LSTM)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--naive-budget", type=float, default=60.0, help="seconds the naive loop gets per length")
    parser.add_argument("--prompt", default="The next morning")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--device", default="cpu", help="for the untrained LSTM (a --model-dir follows its own device)")
    args = parser.parse_args(argv)

    if args.model_dir:
        generator = CharTextGenerator.load(args.model_dir)
        # The served cap on one request's length (config.yml) does not bound a benchmark.
        generator.max_new_tokens_limit = max(generator.max_new_tokens_limit, *args.lengths)
        model = f"{args.model_dir}"
    else:
        generator = untrained_generator(args.device)
        model = "an UNTRAINED 2x512 LSTM (no --model-dir given; speed does not depend on the weights)"
    net = generator.net
    print(f"model: {model}: {net.num_layers}x{net.hidden_size} {net.cell.upper()}, vocab {net.vocab_size}")
    print(f"device: {generator.device}, torch threads: {torch.get_num_threads()}, prompt {args.prompt!r}, seed {args.seed}")
    stateful(generator, args.prompt, 20, args.seed)  # warm-up
    print(f"{'chars':>7} | {'stateful chars/s':>16} | {'naive chars/s':>13} | {'ratio':>7} | same text")
    for length in args.lengths:
        text, seconds = stateful(generator, args.prompt, length, args.seed)
        naive_text, naive_seconds = naive(generator, args.prompt, length, args.seed, args.naive_budget)
        rate, naive_rate = length / seconds, len(naive_text) / naive_seconds
        cut = len(naive_text) < length
        note = f"  (naive stopped after {len(naive_text)} chars / {naive_seconds:.0f} s: its rate is an upper bound)" if cut else ""
        same = "yes" if text.startswith(naive_text) else f"no, from char {next(i for i, (a, b) in enumerate(zip(text, naive_text)) if a != b)}"
        print(f"{length:>7,} | {rate:>16,.0f} | {naive_rate:>13,.1f} | {'>=' if cut else '  '}{rate / naive_rate:>5,.0f}x | {same}{note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
