"""Offline attention views: `python -m caikit_genai.attention_view`.

Writes a self-contained HTML page (head view + model view, no CDN, no network) and/or a PNG
heatmap grid, either from a text run through a local model dir in-process, or from a response
the runtime already gave (the HTTP JSON body, or grpcurl's JSON output, saved to a file):

    python -m caikit_genai.attention_view --model models/attention-minilm \\
        --text "The cat sat on the mat." --html view.html --png view.png
    curl ... /api/v1/task/attention-inspection -d '{...}' > response.json
    python -m caikit_genai.attention_view --response response.json --html view.html
"""

import argparse
import os
import sys
from typing import List, Optional

from .data_model.attention import AttentionResult
from .views.attention_heatmap import draw_attention_heatmap
from .views.attention_html import page_data, render_page


def result_from_response(path: str) -> AttentionResult:
    """An AttentionResult from a saved response: HTTP JSON or protobuf JSON (camelCase) alike."""
    with open(path, encoding="utf-8") as response_file:
        return AttentionResult.from_json(response_file.read(), ignore_unknown_fields=True)


def result_from_model(model_path: str, text: str, **parameters) -> AttentionResult:
    """Run a model dir (ours, or any HF encoder/encoder-decoder dir) in-process.

    In-process nothing crosses gRPC, so the response-size cap is lifted, and float32 is asked
    for unless the caller chose a precision.
    """
    from .modules.attention_inspector import AttentionInspector  # pylint: disable=import-outside-toplevel

    if os.path.isfile(os.path.join(model_path, "config.yml")) and _is_attention_model(model_path):
        inspector = AttentionInspector.load(model_path)
    else:
        inspector = AttentionInspector.bootstrap(model_path)
    inspector.max_response_bytes = sys.maxsize
    parameters.setdefault("precision", "float32")
    return inspector.run(text, **parameters)


def _is_attention_model(model_path: str) -> bool:
    from caikit.core import ModuleConfig  # pylint: disable=import-outside-toplevel

    from .modules.attention_inspector import AttentionInspector  # pylint: disable=import-outside-toplevel

    return ModuleConfig.load(model_path).get("module_id") == AttentionInspector.MODULE_ID


def write_views(result: AttentionResult, title: str, html_path: Optional[str], png_path: Optional[str]) -> None:
    groups = result.matrix_groups()
    if html_path:
        data = page_data(
            [token.text for token in result.tokens],
            list(result.token_segments),
            [token.text for token in result.target_tokens],
            groups,
        )
        with open(html_path, "w", encoding="utf-8") as html_file:
            html_file.write(render_page(data, title, result.note))
    if png_path:
        draw_attention_heatmap(groups).save(png_path, format="PNG")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a model dir (attention-minilm, or any HF encoder/encoder-decoder dir)")
    source.add_argument("--response", help="a saved runtime response (HTTP JSON or grpcurl JSON output)")
    parser.add_argument("--text", help="the input text (with --model)")
    parser.add_argument("--text-pair", help="a second segment")
    parser.add_argument("--target-text", help="the decoder's text (encoder-decoder models)")
    parser.add_argument("--layers", type=int, nargs="+", help="0-based layers (default: all)")
    parser.add_argument("--heads", type=int, nargs="+", help="0-based heads (default: all)")
    parser.add_argument("--aggregate", default="none", choices=["none", "mean", "max", "rollout"])
    parser.add_argument("--max-tokens", type=int, default=0, help="cut the input to this many tokens")
    parser.add_argument("--exclude-special-tokens", action="store_true")
    parser.add_argument("--html", help="write the HTML head and model view here")
    parser.add_argument("--png", help="write the heatmap grid here")
    parser.add_argument("--title", help="the page title (default: the model or response path)")
    args = parser.parse_args(argv)
    if not args.html and not args.png:
        parser.error("say where to write: --html and/or --png")
    if args.model:
        if not args.text:
            parser.error("--model needs --text")
        result = result_from_model(
            args.model,
            args.text,
            text_pair=args.text_pair,
            target_text=args.target_text,
            layers=args.layers,
            heads=args.heads,
            aggregate=args.aggregate,
            max_tokens=args.max_tokens,
            exclude_special_tokens=args.exclude_special_tokens,
        )
    else:
        result = result_from_response(args.response)
    title = args.title or f"Attention: {os.path.basename(os.path.normpath(args.model or args.response))}"
    write_views(result, title, args.html, args.png)
    for path in (args.html, args.png):
        if path:
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
