"""What a classifier's held-out figures are: accuracy with its 95% interval, per-class precision
and recall, expected calibration error, and the latency of one served request."""

import math
import statistics
import time
from typing import Dict, List, Sequence, Tuple


def wilson_interval(correct: int, total: int, z: float = 1.96) -> Tuple[float, float]:
    """The 95% Wilson score interval of a proportion (sound near 0 and 1, unlike the normal one)."""
    if total == 0:
        return (math.nan, math.nan)
    share = correct / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (centre - half, centre + half)


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 15) -> float:
    """Weighted gap between the top score and the accuracy within equal-width score bins (Guo
    et al. 2017): 0 means a score of 0.8 is right 80% of the time."""
    total, error = len(confidences), 0.0
    for lower in range(bins):
        members = [
            index for index, confidence in enumerate(confidences)
            if lower / bins < confidence <= (lower + 1) / bins or (lower == 0 and confidence == 0)
        ]
        if members:
            accuracy = sum(correct[index] for index in members) / len(members)
            confidence = sum(confidences[index] for index in members) / len(members)
            error += len(members) / total * abs(accuracy - confidence)
    return error


def classification_report(classifier, examples: List[Tuple[str, str]], latency_requests: int = 200) -> Dict:
    """Held-out figures of a SentimentClassifier on (text, label) pairs, rounded for metrics.json."""
    results = classifier.run_batch([text for text, _ in examples], truncate_input_tokens=-1)
    predicted = [result.results[0].label for result in results]
    confidences = [result.results[0].score for result in results]
    gold = [label for _, label in examples]
    correct = [p == g for p, g in zip(predicted, gold)]
    low, high = wilson_interval(sum(correct), len(correct))
    per_class = {}
    for label in classifier.labels:
        true_positive = sum(p == label and g == label for p, g in zip(predicted, gold))
        predicted_count, gold_count = predicted.count(label), gold.count(label)
        per_class[label] = {
            "precision": round(true_positive / predicted_count, 4) if predicted_count else None,
            "recall": round(true_positive / gold_count, 4) if gold_count else None,
            "support": gold_count,
        }
    return {
        "test_examples": len(examples),
        "test_accuracy": round(sum(correct) / len(correct), 4),
        "test_accuracy_95ci": [round(low, 4), round(high, 4)],
        "test_per_class": per_class,
        "test_ece": round(expected_calibration_error(confidences, correct), 4),
        **request_latency(classifier, [text for text, _ in examples[:latency_requests]]),
    }


def request_latency(classifier, texts: List[str]) -> Dict[str, float]:
    """Median and 95th-percentile milliseconds of one `run` call at a time (one request, no
    batching partner: what a lone user waits, network aside)."""
    classifier.run(texts[0], truncate_input_tokens=-1)  # warm-up
    timings = []
    for text in texts:
        started = time.perf_counter()
        classifier.run(text, truncate_input_tokens=-1)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {
        "latency_ms_p50": round(statistics.median(timings), 2),
        "latency_ms_p95": round(timings[min(len(timings) - 1, int(0.95 * len(timings)))], 2),
    }
