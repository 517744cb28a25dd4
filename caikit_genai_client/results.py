"""Typed results, read from the JSON both wires hand over (the HTTP routes' shape). Each keeps
that JSON as `raw`, which is what `caikit-genai --json` prints."""

import base64
import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

import numpy as np

from .contract import TERMINAL_STATES


@dataclass
class Label:
    label: str
    score: float


def labels_from(raw: Dict[str, Any]) -> List[Label]:
    return [Label(item["label"], float(item["score"])) for item in raw.get("results") or []]


@dataclass
class GeneratedText:
    text: str
    generated_tokens: int
    finish_reason: str
    input_token_count: int
    seed: Optional[int]
    raw: Dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Dict[str, Any]) -> "GeneratedText":
        return cls(
            raw.get("generated_text") or "",
            int(raw.get("generated_tokens") or 0),
            str(raw.get("finish_reason") or ""),
            int(raw.get("input_token_count") or 0),
            _optional_int(raw.get("seed")),
            raw,
        )


@dataclass
class TextChunk:
    """One streamed message: the text it adds, and the counts so far."""

    text: str
    generated_tokens: int
    finish_reason: str
    seed: Optional[int]
    raw: Dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Dict[str, Any]) -> "TextChunk":
        details = raw.get("details") or {}
        return cls(
            raw.get("generated_text") or "",
            int(details.get("generated_tokens") or 0),
            str(details.get("finish_reason") or ""),
            _optional_int(details.get("seed")),
            raw,
        )


@dataclass
class Translation:
    text: str
    input_token_count: int
    generated_tokens: int
    finish_reason: str
    sentences: int
    raw: Dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Dict[str, Any]) -> "Translation":
        return cls(
            raw.get("translation_text") or "",
            int(raw.get("input_token_count") or 0),
            int(raw.get("generated_tokens") or 0),
            str(raw.get("finish_reason") or ""),
            int(raw.get("sentences") or 0),
            raw,
        )


@dataclass
class Images:
    """Encoded images (PNG unless `image_format` asked for JPEG), one per seed, or one grid."""

    images: List[bytes]
    seeds: List[int]
    labels: List[str]
    image_size: int
    channels: int
    columns: int
    raw: Dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Dict[str, Any]) -> "Images":
        return cls(
            [base64.b64decode(image["image_data"]) for image in raw.get("images") or []],
            [int(seed) for seed in raw.get("seeds") or []],
            list(raw.get("labels") or []),
            int(raw.get("image_size") or 0),
            int(raw.get("channels") or 0),
            int(raw.get("columns") or 0),
            raw,
        )

    def as_pil(self) -> list:
        """The images as PIL images (Pillow is imported only here)."""
        from PIL import Image  # pylint: disable=import-outside-toplevel

        return [Image.open(io.BytesIO(data)) for data in self.images]


@dataclass
class Attention:
    """Attention weights of one input: `arrays[kind]` is float32 [layers, heads (or 1), queries, keys]."""

    tokens: List[str]
    target_tokens: List[str]
    arrays: Dict[str, np.ndarray]
    note: str
    truncated: bool
    # A PNG of every returned matrix, when the request asked for `heatmap`
    heatmap_png: Optional[bytes]
    # The data object (caikit_genai.data_model.AttentionResult): what the offline views draw
    result: Any = field(repr=False, default=None)
    raw: Dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Dict[str, Any]) -> "Attention":
        from caikit_genai.data_model.attention import AttentionResult  # pylint: disable=import-outside-toplevel

        result = AttentionResult.from_json(json.dumps(raw), ignore_unknown_fields=True)
        heatmap = result.heatmap.image_data if result.heatmap is not None else None
        return cls(
            [token.text for token in result.tokens],
            [token.text for token in result.target_tokens],
            {group.kind: group.as_numpy() for group in result.attentions},
            result.note,
            bool(result.truncated),
            heatmap,
            result,
            raw,
        )


@dataclass
class TrainingJob:
    training_id: str
    model_name: str


@dataclass
class TrainingProgress:
    """How far a training has come, as its training loop last wrote it (about once a second):
    the runtime's GET /api/v1/trainings/{id}/progress. `percent` runs toward whichever ends the
    run first, its `total_steps` or its `max_seconds` budget; `eta_seconds` is None until known.
    `started` is False while the job's process starts, before its first step."""

    step: int
    total_steps: int
    max_seconds: Optional[float]
    elapsed_seconds: float
    eta_seconds: Optional[float]
    percent: float
    losses: Dict[str, Optional[float]]
    last_evaluation: Optional[Dict[str, Any]]
    finished: bool
    updated_at: Optional[str]
    started: bool = True
    raw: Dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Dict[str, Any]) -> "TrainingProgress":
        eta = raw.get("eta_seconds")
        return cls(
            int(raw.get("step") or 0), int(raw.get("total_steps") or 0), raw.get("max_seconds"),
            float(raw.get("elapsed_seconds") or 0.0), None if eta is None else float(eta), float(raw.get("percent") or 0.0),
            dict(raw.get("losses") or {}), raw.get("last_evaluation"), bool(raw.get("finished")), raw.get("updated_at"),
            bool(raw.get("started", True)), raw,
        )


@dataclass
class TrainingStatus:
    """A training's state (QUEUED, RUNNING, COMPLETED, ERRORED, CANCELED) and why it ended so.
    caikit 0.28.3's status has no progress figure: `progress` comes from the runtime's progress
    route over HTTP (None over a gRPC-only client)."""

    training_id: str
    state: str
    submitted_at: Optional[str]
    completed_at: Optional[str]
    reasons: List[str]
    elapsed_seconds: Optional[float]
    raw: Dict[str, Any] = field(repr=False, default_factory=dict)
    progress: Optional[TrainingProgress] = None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    @classmethod
    def from_raw(cls, raw: Dict[str, Any]) -> "TrainingStatus":
        submitted, completed = raw.get("submission_timestamp"), raw.get("completion_timestamp")
        state = str(raw.get("state") or "")
        # A finished job's time is known only where the runtime stamped its end.
        elapsed = _seconds_between(submitted, completed) if completed or state not in TERMINAL_STATES else None
        return cls(raw.get("training_id") or "", state, submitted, completed, list(raw.get("reasons") or []), elapsed, raw)


@dataclass
class ModelInfo:
    """A model the runtime lists: `state` is `loaded`, `failed` (with `error`), or `loading`
    (listed, not loaded yet: caikit marks a model loaded once a request has waited for it).
    `size` is caikit's memory estimate: the dir's bytes x its size multiplier (10 by default).
    `quick`: a quick build, served until its full build replaces it (`make serve`)."""

    name: str
    state: str
    module: Optional[str]
    size: Optional[int]
    error: Optional[str]
    quick: bool = False
    raw: Dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Dict[str, Any]) -> "ModelInfo":
        metadata = raw.get("metadata") or {}
        error = metadata.get("load_error")
        state = "loaded" if raw.get("loaded") else "failed" if error else "loading"
        module = (raw.get("module_metadata") or {}).get("name")
        return cls(raw.get("name") or "", state, module, _optional_int(raw.get("size")), error, bool(metadata.get("quick")), raw)


def _optional_int(value: Any) -> Optional[int]:
    return None if value is None else int(value)


def _seconds_between(start: Optional[str], end: Optional[str]) -> Optional[float]:
    """Seconds from one RFC 3339 timestamp to another (None: to now)."""
    started, ended = _instant(start), _instant(end) if end else datetime.now(timezone.utc)
    if started is None or ended is None:
        return None
    return max(0.0, (ended - started).total_seconds())


def _instant(timestamp: Optional[str]) -> Optional[datetime]:
    if not timestamp:
        return None
    # Python 3.10 reads neither a `Z` nor more than 6 digits of fraction.
    text = re.sub(r"(\.\d{6})\d+", r"\1", timestamp.replace("Z", "+00:00"))
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        return None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=timezone.utc)
