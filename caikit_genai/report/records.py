"""A model's record, docs/model-records/<name>.json: the part of its build's metrics.json that its
card shows (cards.CARD_PATHS), with the build's date, machine, wall time and model dir size.

caikit_genai.bootstrap calls record_build after each build it finishes, so the committed records,
and docs/models.md rendered from them, follow the real builds. Per-step evaluations, samples and
examples stay in metrics.json: a record is a summary small enough to commit and review.
"""

import datetime
import json
import os
import platform
from typing import Any, Dict, List, Optional

import torch

import alog

from ..toolkit.models.model_dir import read_metrics
from .cards import CARD_PATHS, lookup

log = alog.use_channel("REPORT")

RECORDS_DIR = os.path.join("docs", "model-records")
BUILD_SOURCE = "metrics.json of this build, recorded by caikit_genai.bootstrap right after it"


def card_subset(metrics: Dict[str, Any]) -> Dict[str, Any]:
    """The paths of metrics.json that a card reads, nested as they are there."""
    subset: Dict[str, Any] = {}
    for path in CARD_PATHS:
        value = lookup(metrics, path)
        if value is None:
            continue
        *parents, leaf = path.split(".")
        target = subset
        for key in parents:
            target = target.setdefault(key, {})
        target[leaf] = value
    return subset


def record_from_model_dir(name: str, model_dir: str, build_seconds: float, opt_in: bool = False) -> Dict[str, Any]:
    """The record of a model dir a build just wrote (`build_seconds`: the builder's wall time,
    used where metrics.json has no build_seconds of its own)."""
    metrics = read_metrics(model_dir, {})
    return {
        "model": name,
        "opt_in": opt_in,
        "built": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "machine": machine_description(),
        "build_seconds": round(metrics.get("build_seconds", build_seconds), 1),
        "model_dir_mib": round(_dir_bytes(model_dir) / 2**20, 1),
        "source": BUILD_SOURCE,
        "metrics": card_subset(metrics),
    }


def record_build(
    name: str, model_dir: str, build_seconds: float, records_dir: str = RECORDS_DIR, opt_in: bool = False, quick: bool = False
) -> Optional[str]:
    """Write (or replace) the record of a model just built; returns its path. A quick build
    (`make serve`'s first) goes under its model's record as `quick_build`, which a full build
    keeps. Nothing is written where `records_dir` does not exist: a build outside this repo's
    checkout (an image, a Job) has no docs to refresh."""
    if not os.path.isdir(records_dir):
        log.info("%s: no %s here, so no record written", name, records_dir)
        return None
    path = os.path.join(records_dir, f"{name}.json")
    try:
        built = record_from_model_dir(name, model_dir, build_seconds, opt_in)
        recorded = _read_record(path)
        if quick:
            if recorded is None:
                log.info("%s: no full build recorded yet, so its quick build is not recorded", name)
                return None
            built = {**recorded, "quick_build": {key: built[key] for key in ("built", "machine", "build_seconds", "metrics")}}
        elif recorded and "quick_build" in recorded:
            built["quick_build"] = recorded["quick_build"]
        write_record(path, built)
    except OSError:  # the model is built and served all the same; only its card lags
        log.warning("%s: could not write its record %s", name, path, exc_info=True)
        return None
    log.info("%s: record written to %s (`make report` renders docs/models.md from it)", name, path)
    return path


def refresh_record(name: str, metrics: Dict[str, Any], added: str, records_dir: str = RECORDS_DIR) -> Optional[str]:
    """Re-read the card's figures of a recorded build from its `metrics` with the figure `added`
    (a key of metrics.json: a spread over seeds) set, keeping the record's build facts (date,
    machine, wall time); returns its path, or None where there is no record. Refuses metrics whose
    other recorded figures differ: they are not the build recorded."""
    path = os.path.join(records_dir, f"{name}.json")
    recorded = _read_record(path)
    if recorded is None:
        log.info("%s: no record at %s, so none refreshed", name, path)
        return None
    figures = card_subset(metrics)
    differing = [
        key
        for key in CARD_PATHS
        if key.split(".")[0] != added and lookup(recorded["metrics"], key) not in (None, lookup(figures, key))
    ]
    if differing:
        raise ValueError(f"not the build recorded in {path}: {', '.join(differing)} differ")
    write_record(path, {**recorded, "metrics": figures})
    return path


def _read_record(path: str) -> Optional[Dict[str, Any]]:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as record_file:
        return json.load(record_file)


def write_record(path: str, record: Dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as record_file:
        json.dump(record, record_file, indent=2, ensure_ascii=False)
        record_file.write("\n")


def read_records(records_dir: str = RECORDS_DIR) -> List[Dict[str, Any]]:
    records = []
    for name in sorted(os.listdir(records_dir)):
        if name.endswith(".json"):
            with open(os.path.join(records_dir, name), encoding="utf-8") as record_file:
                records.append(json.load(record_file))
    return records


def machine_description() -> str:
    """What a build's time and figures depend on: the CPU, the cores this process may use, the
    GPU if any, torch's threads."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU"
    return f"{_cpu_name()}, {cores} cores, {gpu}, {torch.get_num_threads()} torch threads"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _dir_bytes(directory: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(directory) for name in names)
