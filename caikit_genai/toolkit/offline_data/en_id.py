"""The English -> Indonesian data the default translator is built from, split once for all.

Every source is split by a hash of the English text with one salt, so an English string held
out in one source's test split (help sentences, UI strings) is held out of every source's
training data too: a UI label that is also a help heading cannot leak into training. Django's
messages (django_ui.py) are a third, outside test set: another program's strings, none of whose
English any source here holds.
"""

from dataclasses import dataclass
from typing import List, Optional, Tuple

from . import stable_split
from .django_ui import django_pairs
from .freedict import dictionary_pairs
from .libreoffice_help import help_pairs
from .libreoffice_ui import ui_pairs

Pair = Tuple[str, str]
SPLIT_SALT = "translator-en-id"
TEST_FRACTION = 0.05


@dataclass
class EnIdSplits:
    """Training pairs (all three sources) and the three held-out test sets, never trained or tuned on."""

    train: List[Pair]
    help_test: List[Pair]
    ui_test: List[Pair]
    outside_test: List[Pair]  # Django's messages: English none of the sources holds
    sources: dict  # pairs per source before splitting


def en_id_splits(max_help_pages: Optional[int] = None, test_fraction: float = TEST_FRACTION) -> EnIdSplits:
    """Read the three sources and split them; `max_help_pages` reads a slice, for quick tests."""
    help_all, ui_all, words = help_pairs(max_pages=max_help_pages), ui_pairs(), dictionary_pairs()
    help_train, help_test = stable_split(help_all, test_fraction, SPLIT_SALT)
    ui_train, ui_test = stable_split(ui_all, test_fraction, SPLIT_SALT)
    words_train, _ = stable_split(words, test_fraction, SPLIT_SALT)
    held_out = {source for source, _ in help_test + ui_test}
    train = [pair for pair in help_train + ui_train + words_train if pair[0] not in held_out]
    outside = django_pairs(exclude_sources=[source for source, _ in help_all + ui_all + words])
    return EnIdSplits(
        train,
        help_test,
        ui_test,
        outside,
        {"help_pages": len(help_all), "ui_strings": len(ui_all), "dictionary": len(words)},
    )
