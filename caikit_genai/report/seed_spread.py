"""`python -m caikit_genai.report.seed_spread`: how much a default model's held-out figure owes to
its seed. Builds of the same recipe on other seeds are scored as the default was (by their
builders); this puts each seed's figure, their mean and sample standard deviation into the
default build's metrics.json (`seed_spread`) and refreshes its record, so its card says whether a
mark is met by the recipe or only by the build that shipped.

    .venv/bin/python -m caikit_genai.report.seed_spread --model-dir models/sentiment \\
        --metric test_accuracy /tmp/sentiment-seed7 /tmp/sentiment-seed1
"""

import argparse
import os
import statistics
from typing import Dict, List, Sequence, Tuple

from ..toolkit.models.model_dir import METRICS_FILE, read_metrics, update_metrics
from .records import RECORDS_DIR, refresh_record


def spread(values_by_seed: Sequence[Tuple[int, float]]) -> Dict[str, float]:
    """The mean and sample standard deviation of one figure over builds of distinct seeds."""
    seeds = [seed for seed, _ in values_by_seed]
    if len(seeds) < 2 or None in seeds or len(set(seeds)) < len(seeds):
        raise ValueError(f"a spread over seeds needs two or more builds of distinct recorded seeds, got seeds {seeds}")
    values = [value for _, value in values_by_seed]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values)}


def seed_spread(model_dir: str, other_dirs: Sequence[str], metric: str) -> Dict:
    """The `seed_spread` of the build in `model_dir` and `other_dirs`: builds whose recipes differ
    in the seed alone, scored on the same number of held-out examples."""
    builds = [(path, read_metrics(path, {})) for path in [model_dir, *other_dirs]]
    recipe = _without_seed(builds[0][1], builds[0][0])
    for path, metrics in builds:
        if metrics.get(metric) is None:
            raise ValueError(f"{path}/{METRICS_FILE} has no {metric!r}")
        if _without_seed(metrics, path) != recipe:
            raise ValueError(f"{path} was built with another recipe than {model_dir}: {metrics.get('recipe')} vs {builds[0][1].get('recipe')}")
        if metrics.get("test_examples") != builds[0][1].get("test_examples"):
            raise ValueError(f"{path} was scored on {metrics.get('test_examples')} held-out examples, {model_dir} on {builds[0][1].get('test_examples')}")
    values = [(metrics["recipe"]["seed"], metrics[metric]) for _, metrics in builds]
    figures = spread(values)
    return {
        "metric": metric,
        "mean": round(figures["mean"], 4),
        "std": round(figures["std"], 4),
        "seeds": [{"seed": seed, "value": value} for seed, value in values],
    }


def _without_seed(metrics: Dict, path: str) -> Dict:
    if "seed" not in (metrics.get("recipe") or {}):
        raise ValueError(f"{path}/{METRICS_FILE} records no recipe with a seed")
    return {key: value for key, value in metrics["recipe"].items() if key != "seed"}


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="the default build (its seed's figure, and where the spread is written)")
    parser.add_argument("--metric", default="test_accuracy", help="a held-out figure of metrics.json (default: test_accuracy)")
    parser.add_argument("--name", help="its record's name (default: the model dir's name)")
    parser.add_argument("--records-dir", default=RECORDS_DIR)
    parser.add_argument("other_dirs", nargs="+", help="builds of the same recipe on other seeds")
    args = parser.parse_args(argv)
    try:
        figures = seed_spread(args.model_dir, args.other_dirs, args.metric)
    except ValueError as error:
        parser.error(str(error))
    name = args.name or os.path.basename(os.path.normpath(args.model_dir))
    try:  # the record is checked first: a refused dir is left as it was
        recorded = refresh_record(name, {**read_metrics(args.model_dir, {}), "seed_spread": figures}, "seed_spread", args.records_dir)
    except ValueError as error:
        parser.error(f"{args.model_dir} is {error}")
    update_metrics(args.model_dir, seed_spread=figures)
    each = ", ".join(f"{run['value']} (seed {run['seed']})" for run in figures["seeds"])
    print(f"{args.metric} over {len(figures['seeds'])} seeds: {figures['mean']} +- {figures['std']} (mean +- sample std): {each}")
    if recorded:
        print(f"recorded in {args.records_dir}/{name}.json: `make report` puts it on the card")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
