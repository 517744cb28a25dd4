"""An outside test for the translator: Django's English -> Indonesian messages (form errors, admin
screens, dates and times), read from the Indonesian gettext catalogs (.mo) inside Django's PyPI
wheel (`make data` downloads it, never installs it).

Another program's strings, written by other people for other screens: nothing from this source is
trained or tuned on, and a string whose English any training source also holds is left out, so
the set measures English the translator has not seen the like of.
"""

import gettext
import glob
import io
import os
import re
import zipfile
from typing import Iterable, List, Optional, Tuple

from . import DATA_DIR

DJANGO_DIR = os.path.join(DATA_DIR, "django")
CATALOG = re.compile(r"^django/(?:.+/)?locale/id/LC_MESSAGES/[^/]+\.mo$")
# Strings with a placeholder (%(name)s, %s, {0}) or markup are templates, not English sentences.
TEMPLATE = re.compile(r"%\(|%[sdif]|\{|<[a-z/]")


def django_wheel(package_dir: Optional[str] = None) -> str:
    """The newest Django wheel that `make data` downloaded."""
    package_dir = package_dir or DJANGO_DIR
    wheels = sorted(glob.glob(os.path.join(package_dir, "Django-*.whl")) + glob.glob(os.path.join(package_dir, "django-*.whl")))
    if not wheels:
        raise FileNotFoundError(f"no Django wheel under {package_dir}: run `make {os.path.relpath(package_dir)}`")
    return wheels[-1]


def django_pairs(wheel: Optional[str] = None, exclude_sources: Iterable[str] = ()) -> List[Tuple[str, str]]:
    """(English, Indonesian) messages, each English string once, in catalog order: plural forms,
    untranslated strings, templates and any English in `exclude_sources` left out."""
    excluded = {" ".join(source.split()).lower() for source in exclude_sources}
    pairs, seen = [], set()
    with zipfile.ZipFile(wheel or django_wheel()) as archive:
        for name in sorted(name for name in archive.namelist() if CATALOG.match(name)):
            messages = gettext.GNUTranslations(io.BytesIO(archive.read(name)))._catalog  # pylint: disable=protected-access
            for key, value in messages.items():
                if not isinstance(key, str) or not key:
                    continue  # plural forms are (msgid, n) tuples; "" is the header
                source, target = " ".join(key.split("\x04")[-1].split()), " ".join(value.split())
                if not source or not target or source == target or TEMPLATE.search(source) or TEMPLATE.search(target):
                    continue
                if source.lower() in excluded or source.lower() in seen:
                    continue
                seen.add(source.lower())
                pairs.append((source, target))
    return pairs
