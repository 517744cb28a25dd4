"""English -> Indonesian LibreOffice user-interface strings (menus, dialogs, messages), from the
gettext catalogs (.mo) that Debian `libreoffice-l10n-id` ships (unpacked with `dpkg -x`, never
installed: it depends on LibreOffice).

Only the unpacked package is read. The Indonesian catalogs installed on the machine itself
(`/usr/share/locale`) are an outside test that nothing here trains or tunes on.
"""

import gettext
import glob
import os
import re
from typing import List, Optional, Tuple

from . import DATA_DIR

L10N_ID_DIR = os.path.join(DATA_DIR, "libreoffice-l10n-id")
CATALOG_GLOB = os.path.join("usr", "lib", "libreoffice", "program", "resource", "id", "LC_MESSAGES", "*.mo")

# Keyboard mnemonics: LibreOffice's "~Open" and GTK's "_Open" mark the accelerator letter.
MNEMONIC = re.compile(r"~|(?<![\w_])_(?=\w)")


def ui_catalogs(package_dir: Optional[str] = None) -> List[str]:
    """The .mo files of the unpacked package, sorted."""
    package_dir = package_dir or L10N_ID_DIR
    if os.path.abspath(package_dir).startswith("/usr/share/locale"):
        raise ValueError("the machine's own catalogs (/usr/share/locale) are an outside test, never training data")
    catalogs = sorted(glob.glob(os.path.join(package_dir, CATALOG_GLOB)))
    if not catalogs:
        raise FileNotFoundError(
            f"no LibreOffice Indonesian catalogs under {package_dir}: run `make {os.path.relpath(package_dir)}` "
            "(apt-get download libreoffice-l10n-id, then dpkg -x)"
        )
    return catalogs


def _clean(text: str) -> str:
    return " ".join(MNEMONIC.sub("", text).split())


def ui_pairs(package_dir: Optional[str] = None) -> List[Tuple[str, str]]:
    """(English, Indonesian) UI strings, each pair once: message context and keyboard mnemonics
    removed, plural forms and untranslated (identical or empty) strings left out."""
    pairs, seen = [], set()
    for catalog in ui_catalogs(package_dir):
        with open(catalog, "rb") as catalog_file:
            messages = gettext.GNUTranslations(catalog_file)._catalog  # pylint: disable=protected-access
        for key, value in messages.items():
            if not isinstance(key, str) or not key:
                continue  # plural forms are (msgid, n) tuples; "" is the header
            source, target = _clean(key.split("\x04")[-1]), _clean(value)
            if source and target and source != target and (source, target) not in seen:
                seen.add((source, target))
                pairs.append((source, target))
    return pairs
