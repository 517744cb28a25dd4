"""The task sub-commands: classify, generate, translate, images, attention."""

import os
import sys

from .output import key_values, print_json, print_table

PARAM_HELP = "any other task parameter, VALUE read as JSON where it can be (repeatable)"


def add(commands, common) -> None:
    classify = commands.add_parser("classify", parents=[common], help="text classification (sentiment)")
    classify.add_argument("model")
    classify.add_argument("text")
    classify.add_argument("--top-k", type=int, help="how many labels, best first (default: all)")
    classify.set_defaults(handler=run_classify)

    generate = commands.add_parser("generate", parents=[common], help="text generation, unary or --stream")
    generate.add_argument("model")
    generate.add_argument("text")
    generate.add_argument("--stream", action="store_true", help="print the text as it arrives")
    generate.add_argument("--max-new-tokens", type=int)
    generate.add_argument("--temperature", type=float)
    generate.add_argument("--top-k", type=int)
    generate.add_argument("--top-p", type=float)
    generate.add_argument("--seed", type=int)
    generate.add_argument("--decoding-method", choices=["SAMPLING", "GREEDY"])
    generate.add_argument("--stop", action="append", dest="stop_sequences", metavar="TEXT", help="a stop sequence (repeatable)")
    generate.add_argument("--param", action="append", metavar="KEY=VALUE", help=PARAM_HELP)
    generate.set_defaults(handler=run_generate)

    translate = commands.add_parser("translate", parents=[common], help="translate one text, or many in one call")
    translate.add_argument("model")
    translate.add_argument("texts", nargs="+", metavar="text")
    translate.add_argument("--num-beams", type=int)
    translate.add_argument("--max-new-tokens", type=int)
    translate.add_argument("--param", action="append", metavar="KEY=VALUE", help=PARAM_HELP)
    translate.set_defaults(handler=run_translate)

    images = commands.add_parser("images", parents=[common], help="generate images into a directory")
    images.add_argument("model")
    images.add_argument("--out", required=True, metavar="DIR", help="where the image files go (created if missing)")
    images.add_argument("--count", type=int, default=1, help="how many images (default 1)")
    images.add_argument("--seed", type=int, help="image i is seed + i's image (default: a random seed)")
    images.add_argument("--label", help="the class to draw, by name or index")
    images.add_argument("--grid", action="store_true", help="one tiled image instead of one file per image")
    images.add_argument("--format", dest="image_format", choices=["png", "jpeg"])
    images.add_argument("--param", action="append", metavar="KEY=VALUE", help=PARAM_HELP)
    images.set_defaults(handler=run_images)

    attention = commands.add_parser("attention", parents=[common], help="attention weights; --html / --png views")
    attention.add_argument("model")
    attention.add_argument("text")
    attention.add_argument("--text-pair")
    attention.add_argument("--target-text", help="the decoder's text (encoder-decoder models)")
    attention.add_argument("--layers", type=int, nargs="+")
    attention.add_argument("--heads", type=int, nargs="+")
    attention.add_argument("--aggregate", choices=["none", "mean", "max", "rollout"])
    attention.add_argument("--precision", choices=["float16", "uint8", "float32"])
    attention.add_argument("--max-tokens", type=int)
    attention.add_argument("--exclude-special-tokens", action="store_true", default=None)
    attention.add_argument("--html", metavar="FILE", help="write the offline HTML head and model view here")
    attention.add_argument("--png", metavar="FILE", help="write the heatmap grid here")
    attention.add_argument("--param", action="append", metavar="KEY=VALUE", help=PARAM_HELP)
    attention.set_defaults(handler=run_attention)


def run_classify(args, client) -> int:
    labels = client.classify(args.model, args.text, top_k=args.top_k)
    if args.json:
        print_json({"results": [{"label": item.label, "score": item.score} for item in labels]})
    else:
        print_table([(item.label, f"{item.score:.4f}") for item in labels])
    return 0


def run_generate(args, client) -> int:
    parameters = {
        "max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_k": args.top_k,
        "top_p": args.top_p, "seed": args.seed, "decoding_method": args.decoding_method,
        "stop_sequences": args.stop_sequences, **key_values(args.param, "--param"),
    }
    if not args.stream:
        result = client.generate(args.model, args.text, **parameters)
        if args.json:
            print_json(result.raw)
        else:
            print(result.text)
            print(f"[{result.generated_tokens} tokens, {result.finish_reason}, seed {result.seed}]", file=sys.stderr)
        return 0
    last = None
    for chunk in client.generate_stream(args.model, args.text, **parameters):
        last = chunk
        if args.json:
            print_json(chunk.raw)
        else:
            print(chunk.text, end="", flush=True)
    if not args.json:
        print()
        if last is not None:
            print(f"[{last.generated_tokens} tokens, {last.finish_reason}, seed {last.seed}]", file=sys.stderr)
    return 0


def run_translate(args, client) -> int:
    parameters = {"num_beams": args.num_beams, "max_new_tokens": args.max_new_tokens, **key_values(args.param, "--param")}
    if len(args.texts) == 1:
        translations = [client.translate(args.model, args.texts[0], **parameters)]
    else:
        translations = client.translate_list(args.model, args.texts, **parameters)
    if args.json:
        print_json(translations[0].raw if len(args.texts) == 1 else {"results": [item.raw for item in translations]})
    else:
        for translation in translations:
            print(translation.text)
    return 0


def run_images(args, client) -> int:
    parameters = {"as_grid": True if args.grid else None, "image_format": args.image_format, **key_values(args.param, "--param")}
    result = client.images(args.model, args.count, seed=args.seed, label=args.label, **parameters)
    os.makedirs(args.out, exist_ok=True)
    extension = "jpg" if (args.image_format or "png") == "jpeg" else "png"
    first_seed = result.seeds[0] if result.seeds else 0
    names = (
        [f"{args.model}-grid-{first_seed}.{extension}"] if len(result.images) == 1 and len(result.seeds) > 1
        else [f"{args.model}-{seed}.{extension}" for seed in result.seeds]
    )
    files = []
    for name, data in zip(names, result.images):
        path = os.path.join(args.out, name)
        with open(path, "wb") as image_file:
            image_file.write(data)
        files.append(path)
    if args.json:
        print_json({**{key: value for key, value in result.raw.items() if key != "images"}, "files": files})
    else:
        for index, path in enumerate(files):
            described = f"seed {result.seeds[index]}, {result.labels[index]}" if len(files) == len(result.seeds) else f"{len(result.seeds)} images"
            print(f"{path}  ({described})")
    return 0


def run_attention(args, client) -> int:
    parameters = {
        "text_pair": args.text_pair, "target_text": args.target_text, "layers": args.layers, "heads": args.heads,
        "aggregate": args.aggregate, "precision": args.precision, "max_tokens": args.max_tokens,
        "exclude_special_tokens": args.exclude_special_tokens, **key_values(args.param, "--param"),
    }
    result = client.attention(args.model, args.text, **parameters)
    files = [path for path in (args.html, args.png) if path]
    if files:
        from caikit_genai.attention_view import write_views  # pylint: disable=import-outside-toplevel

        write_views(result.result, f"Attention: {args.model}", args.html, args.png)
    if args.json:
        print_json({**result.raw, "files": files})
        return 0
    print("tokens: " + " ".join(result.tokens))
    if result.target_tokens:
        print("target tokens: " + " ".join(result.target_tokens))
    for group in result.result.attentions:
        layers, heads, queries, keys = result.arrays[group.kind].shape
        what = f"{heads} heads" if group.aggregate == "none" else f"{group.aggregate} of {len(group.heads)} heads"
        print(f"{group.kind}: layers {list(group.layers)}, {what}, {queries} x {keys} tokens (array {[layers, heads, queries, keys]})")
    print(result.note)
    for path in files:
        print(f"wrote {path}")
    return 0
