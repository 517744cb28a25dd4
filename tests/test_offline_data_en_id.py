"""The English -> Indonesian offline sources (`make data` unpacks them into .data/) and their
held-out splits."""

import pytest

from caikit_genai.toolkit.offline_data import en_id, stable_split
from caikit_genai.toolkit.offline_data.django_ui import django_pairs
from caikit_genai.toolkit.offline_data.freedict import dictionary_pairs
from caikit_genai.toolkit.offline_data.libreoffice_help import help_pairs
from caikit_genai.toolkit.offline_data.libreoffice_ui import ui_catalogs, ui_pairs


@pytest.mark.slow
def test_help_pages_pair_by_element_id():
    pairs = dict(help_pairs())
    assert len(pairs) > 20_000
    assert pairs["Load/Save options"] == "Muat/Simpan opsi"
    assert pairs["Specifies general Load/Save settings."] == "Menentukan pengaturan umum Muat/Simpan."
    assert all(source != target and source.strip() == source for source, target in pairs.items())


def test_ui_strings_without_mnemonics_or_plurals():
    pairs = ui_pairs()
    assert len(pairs) > 15_000
    assert not any("~" in source or "~" in target for source, target in pairs)
    assert len(set(pairs)) == len(pairs)


def test_the_machines_own_catalogs_are_never_read():
    with pytest.raises(ValueError, match="outside test"):
        ui_catalogs("/usr/share/locale")


def test_dictionary_first_translation_per_headword():
    words = dict(dictionary_pairs())
    assert len(words) > 9000
    assert words["island"] == "pulau" and words["take"] == "ambil"
    assert not any(target[0].isdigit() and "." in target[:3] for target in words.values())


def test_held_out_english_never_reaches_training():
    splits = en_id.en_id_splits(max_help_pages=300)
    held_out = {source for source, _ in splits.help_test + splits.ui_test}
    assert splits.help_test and splits.ui_test
    assert not held_out & {source for source, _ in splits.train}
    again = en_id.en_id_splits(max_help_pages=300)
    assert again.help_test == splits.help_test and again.ui_test == splits.ui_test
    # The split is by text alone: the same sentence lands on the same side in any company.
    _, alone = stable_split(splits.help_test[:5], en_id.TEST_FRACTION, en_id.SPLIT_SALT)
    assert alone == splits.help_test[:5]
    # The outside set (Django's messages) holds no English that training holds.
    assert len(splits.outside_test) > 300
    assert not {source.lower() for source, _ in splits.outside_test} & {source.lower() for source, _ in splits.train}


def test_django_messages_are_whole_strings_without_templates():
    pairs = dict(django_pairs())
    assert pairs["Page not found"] == "Laman tidak ditemukan"
    assert not any("%(" in source or "{" in source or "<" in source for source in pairs)
    assert "Page not found" not in dict(django_pairs(exclude_sources=["page NOT  found"]))
