"""A module's train parameters as one dataclass, nanoGPT's GPTConfig style: every knob with its
default, its range and its one-line doc, checked in one place.

caikit builds the train RPC, the HTTP train route and their docs from `train`'s signature and
docstring. `recipe_train(RecipeClass)` writes both from the recipe's fields, so the list of
knobs lives once: the train API, `python -m caikit.runtime.train` (a Job) and bootstrap/ all
end in `RecipeClass.build(...)`. A recipe's PRESETS name the recipes the default models are
built with: `train(..., preset="translator-en-id")` trains as that default was built, and any
knob given overrides the preset.
"""

import dataclasses
import functools
import inspect
import textwrap
from typing import Any, Callable, ClassVar, Dict, Optional, Sequence, Union, get_args, get_origin

from ..models.device import PRECISIONS
from ..serving.errors import invalid_argument


def knob(
    default,
    doc: str,
    *,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    above: Optional[float] = None,
    choices: Optional[Sequence[str]] = None,
    late: bool = False,
):
    """A recipe field: its default, a one-line doc (the API docs show it) and its range.
    `minimum`/`maximum` are inclusive, `above` exclusive; `choices` lists the allowed strings.
    `late`: a knob added after the train RPC was published; it follows every earlier field of
    the train message (`preset` included), so a client built from the older protos still sends
    the field numbers it knows."""
    metadata = {"doc": doc, "minimum": minimum, "maximum": maximum, "above": above, "choices": choices, "late": late}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def precision_knob():
    """The `precision` knob of every trainer that offers it (see toolkit/models/device.py)."""
    return knob(
        "auto",
        "auto: bf16/fp16 autocast on CUDA, fp32 on a CPU; bf16: also bf16 autocast on a CPU that computes it "
        "natively (AVX512-BF16, AMX; about half the step time), fp32 elsewhere; fp32: no autocast. The weights "
        "stay fp32 and serving runs fp32 on a CPU.",
        choices=PRECISIONS,
    )


def _default(field: dataclasses.Field):
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def _base_type(annotation):
    """int for Optional[int], list for List[str]: what isinstance checks against."""
    if get_origin(annotation) is Union:
        annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
    return get_origin(annotation) or annotation


@dataclasses.dataclass
class Recipe:
    """Base of every module's recipe: subclasses add `knob` fields and PRESETS."""

    PRESETS: ClassVar[Dict[str, Dict[str, Any]]] = {}

    @classmethod
    def knobs(cls) -> Dict[str, dataclasses.Field]:
        return {field.name: field for field in dataclasses.fields(cls)}

    @classmethod
    def build(cls, preset: str = "", **given) -> "Recipe":
        """The recipe of a train call: the defaults, then `preset`'s values, then every knob
        given (not None); checked. caikit passes a train RPC's or route's parameters only when
        the request sets them, so an unset one keeps the preset's value."""
        knobs = cls.knobs()
        unknown = sorted(set(given) - set(knobs))
        if unknown:
            raise invalid_argument(f"unknown train parameter(s) {', '.join(unknown)}: use {', '.join(knobs)}")
        if preset and preset not in cls.PRESETS:
            raise invalid_argument(f"unknown preset {preset!r}: use one of {', '.join(cls.PRESETS) or 'none'}")
        values = dict(cls.PRESETS.get(preset, {})) if preset else {}
        values.update({name: value for name, value in given.items() if value is not None})
        recipe = cls(**values)
        recipe.check()
        return recipe

    def check(self) -> None:
        """INVALID_ARGUMENT naming the first knob of the wrong type or out of its range."""
        hints = {field.name: field.type for field in dataclasses.fields(self)}
        for name, field in self.knobs().items():
            value, rule = getattr(self, name), field.metadata
            if value is None:
                continue
            expected = _base_type(hints[name])
            if isinstance(expected, type):
                numeric = expected is float and isinstance(value, int) and not isinstance(value, bool)
                if not (isinstance(value, expected) or numeric) or (expected is not bool and isinstance(value, bool)):
                    raise invalid_argument(f"{name} must be {expected.__name__}, got {type(value).__name__} {value!r}")
            if rule.get("choices") and value not in rule["choices"]:
                raise invalid_argument(f"{name} must be one of {', '.join(rule['choices'])}, got {value!r}")
            if rule.get("minimum") is not None and value < rule["minimum"]:
                raise invalid_argument(f"{name} must be >= {rule['minimum']}, got {value!r}")
            if rule.get("maximum") is not None and value > rule["maximum"]:
                raise invalid_argument(f"{name} must be <= {rule['maximum']}, got {value!r}")
            if rule.get("above") is not None and value <= rule["above"]:
                raise invalid_argument(f"{name} must be > {rule['above']}, got {value!r}")
        self.check_together()

    def check_together(self) -> None:
        """Rules between knobs (a recipe overrides this); each knob's own range is checked above."""

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def recipe_train(recipe_class, data_parameters: str, trailing: Sequence[str] = ()) -> Callable:
    """Decorate a module's `train(cls, <data parameters>, preset="", **knobs)`: caikit sees a
    signature and an `Args:` docstring with every knob of `recipe_class` (and `preset`), and
    the body receives the knobs as given. `data_parameters` documents the data arguments, in the
    docstring's `Args:` form; `trailing` names data arguments that follow the knobs (where they
    stood in train's signature before the recipe, so the train RPC keeps its field numbers)."""

    def decorate(train):
        signature = inspect.signature(train)
        fixed = [param for param in signature.parameters.values() if param.kind != inspect.Parameter.VAR_KEYWORD]
        hints = {field.name: field.type for field in dataclasses.fields(recipe_class)}
        knobs, late_knobs = [], []
        for name, field in recipe_class.knobs().items():
            parameter = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=_default(field), annotation=hints[name])
            (late_knobs if field.metadata.get("late") else knobs).append(parameter)
        # `preset` after the knobs, as a keyword, and late knobs after it: caikit numbers the train
        # message's fields in this order, so every field keeps the number it was published with.
        preset = [param.replace(kind=inspect.Parameter.KEYWORD_ONLY) for param in fixed if param.name == "preset"]
        after = [param.replace(kind=inspect.Parameter.KEYWORD_ONLY) for param in fixed if param.name in trailing]
        fixed = [param for param in fixed if param.name != "preset" and param.name not in trailing]
        ordered = knobs + after + preset + late_knobs
        train.__signature__ = signature.replace(parameters=fixed + ordered)
        train.__annotations__ = {
            **{param.name: param.annotation for param in fixed if param.annotation is not inspect.Parameter.empty},
            **{param.name: param.annotation for param in ordered},
            "return": signature.return_annotation,
        }
        presets = ", ".join(recipe_class.PRESETS) or "none"
        lines = [textwrap.dedent(data_parameters).strip("\n")]
        for name, field in recipe_class.knobs().items():
            lines.append(f"{name}: {field.metadata['doc']}")
        lines.append(f"preset: Start from the recipe a default model was built with ({presets}); knobs given override it.")
        summary = (train.__doc__ or "").strip()
        train.__doc__ = f"{summary}\n\nArgs:\n" + textwrap.indent("\n".join(lines), "    ") + "\n"
        return functools.wraps(train, assigned=())(train)

    return decorate
