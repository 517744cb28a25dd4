"""The runtime's own sub-commands: serve, build (the default models), models, report."""

import os
import subprocess
import sys
from typing import List

from .output import print_json, print_table

PASSTHROUGH_HELP = {
    "build": "build the default models: python -m caikit_genai.bootstrap's flags (--missing, --only NAME, ...)",
    "report": "caikit_genai.report, with its own flags (caikit-genai report --help)",
}


def add(commands, common) -> None:
    serve = commands.add_parser("serve", help="run the runtime (gRPC :8085, HTTP :8080) with runtime_config.yaml")
    serve.add_argument(
        "--config", action="append", metavar="FILE",
        help="a runtime config file, later ones laid over earlier ones (default: $CONFIG_FILES, else runtime_config.yaml)",
    )
    serve.add_argument("--build-missing", action="store_true", help="also build missing default models in the background, as `make serve` does")
    serve.set_defaults(handler=serve_runtime, needs_client=False)

    models = commands.add_parser("models", parents=[common], help="what the runtime serves: loaded, loading, failed and why")
    models.set_defaults(handler=list_models)

    # Commands with their own command line: main() hands them the words it does not know.
    for name, description in PASSTHROUGH_HELP.items():
        commands.add_parser(name, help=description, add_help=False).set_defaults(needs_client=False)


def serve_runtime(args) -> int:
    """`python -m caikit.runtime` in this process, as `make serve` runs it (without its setup)."""
    configs = args.config or [name for name in os.environ.get("CONFIG_FILES", "runtime_config.yaml").split(",") if name]
    missing = [path for path in configs if not os.path.isfile(path)]
    if missing:
        print(f"error: no runtime config {', '.join(missing)} (run in the checkout, or give --config FILE)", file=sys.stderr)
        return 2
    os.makedirs("models", exist_ok=True)
    os.makedirs("training_data", exist_ok=True)
    env = {**os.environ, "CONFIG_FILES": ",".join(configs)}
    # As the Makefile: no model hub at run time, and no tokenizer threads fighting torch's.
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.build_missing:
        subprocess.Popen([sys.executable, "-m", "caikit_genai.bootstrap", "--missing", "--quick-first"], env=env)  # pylint: disable=consider-using-with
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "caikit.runtime"], env)
    return 0  # not reached


def list_models(args, client) -> int:
    models = client.models()
    if args.json:
        print_json({"models": [model.raw for model in models]})
        return 0
    if not models:
        print("no models")
        return 0
    rows = [("NAME", "STATE", "MODULE", "DETAILS")]
    for model in sorted(models, key=lambda model: model.name):
        # caikit's size is its memory estimate: the dir's bytes x model_size_multipliers (10 by default)
        details = model.error or (f"~{model.size / 1e6:,.0f} MB in memory (caikit's estimate)" if model.size else "")
        if model.state == "loading":
            details = "listed; loads fully on its first request"
        elif model.quick:
            details = f"quick build (its full build replaces it live); {details}"
        rows.append((model.name, model.state, model.module or "-", details))
    print_table(rows)
    return 0


def passthrough(name: str, argv: List[str]) -> int:
    """`build`: python -m caikit_genai.bootstrap's command line; `report`: caikit_genai.report's.
    Each is imported only when asked for."""
    if name == "build":
        from caikit_genai.bootstrap import main as bootstrap  # pylint: disable=import-outside-toplevel

        return bootstrap(argv)
    try:
        from caikit_genai.report import main as report_main  # pylint: disable=import-outside-toplevel,no-name-in-module
    except ModuleNotFoundError as error:
        if error.name != f"{__package__.rsplit('.', 1)[0]}.report":
            raise
        print(f"error: no report in this caikit-genai ({error})", file=sys.stderr)
        return 1
    return report_main(argv) or 0
