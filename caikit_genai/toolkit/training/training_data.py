"""Reading training examples out of whatever the train API hands a module.

The runtime builds `DataStream`s from inline JSON, JSON/JSONL/CSV files and directories; each
element is already a data object (or a dict/list when called in-process). A malformed element
raises a ValueError naming it, which the runtime reports as the job's ERRORED reason.
"""

from typing import Any, Iterable, List, Optional, Tuple


def two_fields(element: Any, first: str, second: str) -> Tuple[Any, Any]:
    """The two fields of an example, whichever form it came in: a data object, a dict with those
    keys (in-process callers), or a (first, second) pair; None where one is missing."""
    if isinstance(element, dict):
        return element.get(first), element.get(second)
    if isinstance(element, (list, tuple)) and len(element) == 2:
        return element[0], element[1]
    return getattr(element, first, None), getattr(element, second, None)


def labeled_pairs(stream: Optional[Iterable[Any]], what: str = "training_data") -> List[Tuple[str, str]]:
    """Turn a stream of LabeledText (or {"text", "label"} dicts, or (text, label) pairs) into pairs."""
    pairs = []
    for index, element in enumerate(stream or ()):
        text, label = two_fields(element, "text", "label")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{what} example {index} has no text: {element!r:.200}")
        if label is None or str(label).strip() == "":
            raise ValueError(f"{what} example {index} has no label: {element!r:.200}")
        pairs.append((text, str(label).strip()))
    return pairs


def translation_pairs(stream: Optional[Iterable[Any]], what: str = "training_data") -> List[Tuple[str, str]]:
    """Turn a stream of TranslationPair (or {"source", "target"} dicts, or (source, target) pairs) into pairs."""
    pairs = []
    for index, element in enumerate(stream or ()):
        source, target = two_fields(element, "source", "target")
        for side, text in (("source", source), ("target", target)):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{what} pair {index} has no {side} text: {element!r:.200}")
        pairs.append((" ".join(source.split()), " ".join(target.split())))
    return pairs
