"""English <-> Indonesian paragraphs of the LibreOffice help pages, from Debian
`libreoffice-help-en-us` and `libreoffice-help-id` (unpacked with `dpkg -x`, never installed:
they depend on LibreOffice).

Both packages hold the same HTML pages, one per topic; a translated paragraph or heading keeps
its element id (`par_id...`, `hd_id...`), so pairs are matched by page path and id.
"""

import html.parser
import os
import re
from typing import Dict, List, Optional, Tuple

from . import DATA_DIR

HELP_EN_DIR = os.path.join(DATA_DIR, "libreoffice-help-en-us")
HELP_ID_DIR = os.path.join(DATA_DIR, "libreoffice-help-id")
HELP_ROOT = os.path.join("usr", "share", "libreoffice", "help")

PAIRED_ID = re.compile(r"^(par_id|hd_id)")
TEXT_TAGS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "td", "li"}
# A switchinline element holds one hidden variant per system; the `default` one is the text shown
# outside macOS, so the macOS variants are left out.
SKIPPED_CLASSES = {"MAC"}
SKIPPED_TAGS = {"script", "style"}


class _ParagraphParser(html.parser.HTMLParser):
    """Collects the text of every element whose id pairs it across languages."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paragraphs: Dict[str, str] = {}
        self._stack: List[Tuple[str, Optional[str], bool]] = []  # (tag, paired id, skipped)
        self._texts: Dict[str, List[str]] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        paired = attributes.get("id") if tag in TEXT_TAGS and PAIRED_ID.match(attributes.get("id") or "") else None
        skipped = tag in SKIPPED_TAGS or bool(SKIPPED_CLASSES & set((attributes.get("class") or "").split()))
        if tag in ("br", "img", "input", "meta", "link", "hr", "wbr"):
            return
        self._stack.append((tag, paired, skipped))
        if paired:
            self._texts[paired] = []

    def handle_endtag(self, tag):
        while self._stack:
            open_tag, paired, _ = self._stack.pop()
            if paired:
                text = " ".join("".join(self._texts.pop(paired)).split())
                if text:
                    self.paragraphs.setdefault(paired, text)
            if open_tag == tag:
                break

    def handle_data(self, data):
        if any(skipped for _, _, skipped in self._stack):
            return
        for _, paired, _ in self._stack:
            if paired:
                self._texts[paired].append(data)


def page_paragraphs(path: str) -> Dict[str, str]:
    """{element id: whitespace-normalised text} of one help page."""
    parser = _ParagraphParser()
    with open(path, encoding="utf-8") as page:
        parser.feed(page.read())
    parser.close()
    return parser.paragraphs


def help_pages_dir(package_dir: str, language: str) -> str:
    pages = os.path.join(package_dir, HELP_ROOT, language, "text")
    if not os.path.isdir(pages):
        raise FileNotFoundError(
            f"LibreOffice help pages are not at {pages}: run `make {os.path.relpath(package_dir)}` "
            f"(apt-get download {os.path.basename(package_dir)}, then dpkg -x into {package_dir})"
        )
    return pages


def help_pairs(
    en_dir: Optional[str] = None, id_dir: Optional[str] = None, max_pages: Optional[int] = None
) -> List[Tuple[str, str]]:
    """(English, Indonesian) paragraph and heading pairs, each pair once, in page order.

    Paragraphs the Indonesian pages leave in English (identical text) are dropped: they would
    teach the model to copy. `max_pages` reads only the first pages (sorted), for quick tests.
    """
    english_pages = help_pages_dir(en_dir or HELP_EN_DIR, "en-US")
    indonesian_pages = help_pages_dir(id_dir or HELP_ID_DIR, "id")
    relative_paths = sorted(
        os.path.relpath(os.path.join(root, name), english_pages)
        for root, _, names in os.walk(english_pages)
        for name in names
        if name.endswith(".html")
    )
    if max_pages:
        relative_paths = relative_paths[:max_pages]
    pairs, seen = [], set()
    for relative_path in relative_paths:
        indonesian_path = os.path.join(indonesian_pages, relative_path)
        if not os.path.exists(indonesian_path):
            continue
        english = page_paragraphs(os.path.join(english_pages, relative_path))
        indonesian = page_paragraphs(indonesian_path)
        for element_id, source in english.items():
            target = indonesian.get(element_id)
            if target and target != source and (source, target) not in seen:
                seen.add((source, target))
                pairs.append((source, target))
    return pairs
