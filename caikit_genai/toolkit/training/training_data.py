"""Reading training examples out of whatever the train API hands a module.

The runtime builds `DataStream`s from inline JSON, JSON/JSONL/CSV files and directories; each
element is already a data object (or a dict/list when called in-process). A malformed element
raises a ValueError naming it, which the runtime reports as the job's ERRORED reason.
"""

from typing import Any, Iterable, List, Optional, Tuple

from caikit.core.data_model import DataStream


def labeled_pairs(stream: Optional[Iterable[Any]], what: str = "training_data") -> List[Tuple[str, str]]:
    """Turn a stream of LabeledText (or {"text", "label"} dicts, or (text, label) pairs) into pairs."""
    if stream is None:
        return []
    pairs = []
    for index, element in enumerate(stream):
        if isinstance(element, dict):
            text, label = element.get("text"), element.get("label")
        elif isinstance(element, (list, tuple)) and len(element) == 2:
            text, label = element
        else:
            text, label = getattr(element, "text", None), getattr(element, "label", None)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{what} example {index} has no text: {element!r:.200}")
        if label is None or str(label).strip() == "":
            raise ValueError(f"{what} example {index} has no label: {element!r:.200}")
        pairs.append((text, str(label).strip()))
    return pairs


def as_stream(data: Any) -> Optional[DataStream]:
    """Accept a DataStream or any in-process iterable (lists are handy in notebooks and tests)."""
    if data is None or isinstance(data, DataStream):
        return data
    return DataStream.from_iterable(list(data))


def translation_pairs(stream: Optional[Iterable[Any]], what: str = "training_data") -> List[Tuple[str, str]]:
    """Turn a stream of TranslationPair (or {"source", "target"} dicts, or (source, target) pairs) into pairs."""
    if stream is None:
        return []
    pairs = []
    for index, element in enumerate(stream):
        if isinstance(element, dict):
            source, target = element.get("source"), element.get("target")
        elif isinstance(element, (list, tuple)) and len(element) == 2:
            source, target = element
        else:
            source, target = getattr(element, "source", None), getattr(element, "target", None)
        for side, text in (("source", source), ("target", target)):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{what} pair {index} has no {side} text: {element!r:.200}")
        pairs.append((" ".join(source.split()), " ".join(target.split())))
    return pairs
