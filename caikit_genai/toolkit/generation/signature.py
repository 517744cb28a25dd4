"""A module's caikit-nlp `run` signature, declared once: caikit reads the parameters (names,
types, defaults) and the Args docstring from it, and the module checks a request with it."""

import dataclasses
import functools
import inspect
import textwrap
from typing import Any, Callable, List, Mapping, Optional, Tuple

import numpy as np

from .checks import DECODING_METHODS, GenerationParameters, check_generation_parameters


@dataclasses.dataclass(frozen=True)
class GenerationArgument:
    """One parameter of `run`: caikit reads its name, type and default; `doc` is its line in the
    Args docstring, with {unit}, {units}, {Units} and the signature's defaults filled in."""

    name: str
    annotation: Any
    default: Any
    doc: str


# caikit-nlp's text generation parameters, in caikit-nlp's order (after `text`).
CAIKIT_NLP_ARGUMENTS = (
    GenerationArgument(
        "max_new_tokens", Optional[int], 200,
        "{Units} to generate at most (default {max_new_tokens_default}; the model's max_new_tokens_limit caps it).",
    ),
    GenerationArgument(
        "min_new_tokens", Optional[int], 0, "{Units} to generate before an end or a stop sequence may end the text."
    ),
    GenerationArgument(
        "truncate_input_tokens", Optional[int], 0, "0 reads the whole input; N > 0 reads only its last N {units}."
    ),
    GenerationArgument("decoding_method", Optional[str], "SAMPLING", "SAMPLING or GREEDY (default {decoding_method})."),
    GenerationArgument("top_k", Optional[int], None, "Sample only from the k likeliest {units} (0 or unset: all)."),
    GenerationArgument(
        "top_p", Optional[float], None,
        "Sample only from the likeliest {units} whose probabilities add up to top_p, in (0, 1] (unset: 1, all).",
    ),
    GenerationArgument(
        "temperature", Optional[float], None,
        "Divides the logits before sampling: lower is safer, higher wilder; 0 means greedy (unset: {temperature_default}).",
    ),
    GenerationArgument(
        "repetition_penalty", Optional[float], None, "CTRL's penalty (> 0, 1 = none) on {units} already seen."
    ),
    GenerationArgument(
        "stop_sequences", Optional[List[str]], None,
        "End the text when it ends with one of these (included in the output).",
    ),
    GenerationArgument(
        "seed", Optional[np.uint64], None,
        "Seeds sampling: the same seed, input and parameters give the same text. Unset: a random seed, "
        "reported in the result (or in each stream message's details).",
    ),
    GenerationArgument(
        "preserve_input_text", bool, False,
        "Put the input text in front of the generated text (streaming: as the first message).",
    ),
)


@dataclasses.dataclass(frozen=True)
class GenerationSignature:
    """A module's caikit-nlp `run` signature: what differs between generators, declared once.

    max_new_tokens: the signature's default (None: unset, then `default_max_new_tokens` applies;
        either way at most the model's limit).
    temperature: the temperature when unset.
    server_defaults: unset temperature, top_p, repetition_penalty and seed stay unset, for a
        remote server (TGIS) to fill in its own.
    docs: a module's own line for an argument whose meaning differs there.
    extra: the module's own parameters, after caikit-nlp's.
    """

    unit: str = "token"
    text_doc: str = "The prompt."
    max_new_tokens: Optional[int] = 200
    default_max_new_tokens: Optional[int] = None
    decoding_method: str = DECODING_METHODS[0]
    temperature: float = 1.0
    server_defaults: bool = False
    docs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    extra: Tuple[GenerationArgument, ...] = ()

    def __post_init__(self):
        if self.max_new_tokens is None and self.default_max_new_tokens is None:
            raise ValueError("give max_new_tokens or default_max_new_tokens: an unset max_new_tokens needs a default")

    def arguments(self) -> List[GenerationArgument]:
        """Every parameter after `text`, with this module's defaults."""
        defaults = {"max_new_tokens": self.max_new_tokens, "decoding_method": self.decoding_method}
        common = [dataclasses.replace(arg, default=defaults.get(arg.name, arg.default)) for arg in CAIKIT_NLP_ARGUMENTS]
        return common + list(self.extra)

    def docstring(self, summary: str) -> str:
        """`summary` and an Args section for `text` and every argument (caikit reads it)."""
        unit = self.unit
        fields = {
            "unit": unit,
            "units": f"{unit}s",
            "Units": f"{unit}s".capitalize(),
            "decoding_method": self.decoding_method,
            "max_new_tokens_default": self.max_new_tokens
            if self.max_new_tokens is not None
            else f"{self.default_max_new_tokens}, or the model's max_new_tokens_limit if lower",
            "temperature_default": "the server's default" if self.server_defaults else f"{self.temperature:g}",
        }
        lines = [f"text: {self.text_doc}"]
        lines += [f"{arg.name}: {self.docs.get(arg.name, arg.doc).format(**fields)}" for arg in self.arguments()]
        return f"{summary.strip()}\n\nArgs:\n" + textwrap.indent("\n".join(lines), "    ") + "\n"

    def method(self, summary: str) -> Callable:
        """Decorate `def run(self, text: str = None, **generation)`: caikit sees every argument
        (name, type, default) and its doc; the body gets `text` and every argument by name, with
        its default filled in (an unknown name is a TypeError, as for any Python call)."""

        def decorate(body):
            declared = inspect.signature(body)
            fixed = [param for param in declared.parameters.values() if param.kind != inspect.Parameter.VAR_KEYWORD]
            generation = [
                inspect.Parameter(arg.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=arg.default, annotation=arg.annotation)
                for arg in self.arguments()
            ]
            signature = declared.replace(parameters=fixed + generation)

            @functools.wraps(body, assigned=("__module__", "__name__", "__qualname__"))
            def run(*args, **kwargs):
                call = signature.bind(*args, **kwargs)
                call.apply_defaults()
                return body(*(call.arguments[param.name] for param in fixed), **{p.name: call.arguments[p.name] for p in generation})

            run.__signature__ = signature
            run.__annotations__ = {
                **{param.name: param.annotation for param in fixed if param.annotation is not inspect.Parameter.empty},
                **{param.name: param.annotation for param in generation},
                "return": declared.return_annotation,
            }
            run.__doc__ = self.docstring(summary)
            return run

        return decorate

    def check(self, generation: Mapping[str, Any], max_new_tokens_limit: int) -> GenerationParameters:
        """The checked caikit-nlp arguments of `generation` (a missing one takes this module's
        default; the module's extra arguments are its own to check), or INVALID_ARGUMENT."""
        values = {arg.name: generation.get(arg.name, arg.default) for arg in self.arguments()}
        return check_generation_parameters(
            values["max_new_tokens"], values["min_new_tokens"], values["truncate_input_tokens"],
            values["decoding_method"], values["top_k"], values["top_p"], values["temperature"],
            values["repetition_penalty"], values["stop_sequences"], values["seed"],
            max_new_tokens_limit=max_new_tokens_limit,
            default_max_new_tokens=self.default_max_new_tokens or self.max_new_tokens,
            default_temperature=None if self.server_defaults else self.temperature,
            default_decoding_method=self.decoding_method,
            unit=self.unit,
            server_defaults=self.server_defaults,
            preserve_input_text=values["preserve_input_text"],
        )
