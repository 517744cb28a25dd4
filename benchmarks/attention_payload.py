"""Response bytes and latency of AttentionInspector's packed responses against BertViz's way
(float32 JSON of every layer and head), same model, same inputs, same run.

    python benchmarks/attention_payload.py [--model-dir models/attention-minilm] [--tokens 16 128 512]

Without --model-dir it wraps the packaged MiniLM-L6 (what models/attention-minilm holds). For each
input length (exactly that many tokens, [CLS] and [SEP] included) it times, from text to numpy
arrays in the client's hands:
- ours: the module's run() (tokenize, one forward pass, select, pack), protobuf serialization
  (the gRPC wire bytes) and the client's decode (from_proto, then one np.frombuffer per kind).
  The HTTP JSON size (base64 bytes) is printed beside it. At 512 tokens the defaults are over the
  served cap (the runtime refuses them with INVALID_ARGUMENT); their size is measured with the cap
  lifted, to show what the cap prevents.
- BertViz's way: the same forward pass with output_attentions, every layer's tensor .tolist(),
  json.dumps (what head_view/model_view embed in the page), and the client's json.loads + np.array.
Latency is the median of --repeats runs after one warm-up; the ratios are BertViz / ours.
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch

from caikit_genai import AttentionInspector
from caikit_genai.data_model import AttentionResult
from caikit_genai.toolkit.models.hf_models import packaged_encoder_path

VARIANTS = {
    "ours: defaults (float16, every layer and head)": {},
    "ours: uint8 rows, every layer and head": {"precision": "uint8"},
    "ours: mean over heads, float16": {"aggregate": "mean"},
}


def text_of(inspector: AttentionInspector, tokens: int) -> str:
    """A text that the model's tokenizer reads as exactly `tokens` tokens, specials included."""
    text = " ".join(["word"] * (tokens - 2))
    assert len(inspector.tokenizer(text)["input_ids"]) == tokens
    return text


def median_seconds(work, repeats: int):
    work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        outcome = work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), outcome


def ours(inspector: AttentionInspector, text: str, parameters: dict):
    """Server: run + serialize; client: parse + decode every kind. Returns (wire bytes, the result)."""
    result = inspector.run(text, **parameters)
    wire = result.to_proto().SerializeToString()
    received = AttentionResult.from_proto(AttentionResult.get_proto_class().FromString(wire))
    arrays = [np.frombuffer(group.weights, group.dtype).reshape(group.shape) for group in received.attentions]
    assert arrays[0].size
    return len(wire), result


def bertviz_way(inspector: AttentionInspector, text: str):
    """The same forward pass, every layer and head as float32 JSON, parsed back by the client."""
    with torch.inference_mode():
        encoded = inspector.tokenizer(text, return_tensors="pt")
        attentions = inspector.model(**encoded, output_attentions=True).attentions
    tokens = inspector.tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    payload = json.dumps({"attn": [layer[0].tolist() for layer in attentions], "left_text": tokens, "right_text": tokens})
    received = np.array(json.loads(payload)["attn"], dtype=np.float32)
    assert received.ndim == 4
    return len(payload)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="an AttentionInspector model dir (default: the packaged MiniLM-L6)")
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 128, 512])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    inspector = (
        AttentionInspector.load(args.model_dir) if args.model_dir else AttentionInspector.bootstrap(packaged_encoder_path())
    )
    cap = inspector.max_response_bytes
    inspector.max_response_bytes = sys.maxsize
    layers, heads = inspector.stacks["encoder"]
    print(
        f"model: {args.model_dir or 'packaged MiniLM-L6'} ({layers} layers x {heads} heads), CPU, "
        f"{torch.get_num_threads()} torch threads, median of {args.repeats} runs; served cap {cap / 2**20:.1f} MiB"
    )
    print("| tokens | response | gRPC bytes | HTTP JSON bytes | latency ms | BertViz bytes / gRPC bytes | BertViz bytes / HTTP JSON bytes | BertViz latency / latency |")
    print("|---|---|---|---|---|---|---|---|")
    for tokens in args.tokens:
        text = text_of(inspector, tokens)
        baseline_seconds, baseline_bytes = median_seconds(lambda: bertviz_way(inspector, text), args.repeats)
        for name, parameters in VARIANTS.items():
            seconds, (wire_bytes, result) = median_seconds(lambda: ours(inspector, text, parameters), args.repeats)
            over = " (over the cap: refused when served)" if wire_bytes > cap else ""
            json_bytes = len(result.to_json())
            print(
                f"| {tokens} | {name}{over} | {wire_bytes:,} | {json_bytes:,} | {seconds * 1e3:,.1f} "
                f"| {baseline_bytes / wire_bytes:,.1f}x | {baseline_bytes / json_bytes:,.1f}x | {baseline_seconds / seconds:,.1f}x |"
            )
        print(
            f"| {tokens} | BertViz's way: float32 JSON, every layer and head | - | {baseline_bytes:,} "
            f"| {baseline_seconds * 1e3:,.1f} | | 1x | 1x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
