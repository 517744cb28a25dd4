"""README.md and docs/*.md as tests read them: pages, sections, fenced blocks, shell commands."""

import glob
import os
import re

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Pages a command runner reads, README first; generated pages hold no commands of their own.
GENERATED_PAGES = ("docs/models.md", "docs/caikit-mends.md")
PAGES = ["README.md"] + sorted(
    os.path.relpath(path, REPO_ROOT)
    for path in glob.glob(os.path.join(REPO_ROOT, "docs", "*.md"))
    if os.path.relpath(path, REPO_ROOT) not in GENERATED_PAGES
)
SHELL = ("sh", "bash", "shell")


def page_text(page: str) -> str:
    with open(os.path.join(REPO_ROOT, page), encoding="utf-8") as page_file:
        return page_file.read()


def section_text(page: str, heading: str) -> str:
    """The text under `heading` (its title, any level), up to the next heading of its level or
    above; a `# comment` inside a fenced block is no heading."""
    text = page_text(page)
    found = re.search(rf"^(#+) {re.escape(heading)}\n", text, re.M)
    assert found, f"{page} has no heading {heading!r}"
    ends = re.compile(rf"^#{{1,{len(found.group(1))}}} ", re.M).finditer(text, found.end())
    end = next((match.start() for match in ends if text.count("```", 0, match.start()) % 2 == 0), len(text))
    return text[found.end() : end]


def doc_blocks(page: str, section=None):
    """(language, code) of every fenced block of a page (or of one section), in order."""
    text = page_text(page) if section is None else section_text(page, section)
    return [(match.group(1), match.group(2)) for match in re.finditer(r"```(\w*)\n(.*?)```", text, re.S)]


def shell_commands(code):
    """(command, output comment lines) for each command of a shell block: a command runs on
    over lines that end with a backslash or sit inside an open single quote."""
    commands, pending = [], []
    for line in code.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            if commands and line.lstrip().startswith("#"):
                commands[-1][1].append(line.lstrip()[1:].strip())
            continue
        pending.append(line)
        joined = "\n".join(pending)
        if joined.count("'") % 2 == 0 and not line.rstrip().endswith("\\"):
            commands.append((joined, []))
            pending = []
    assert not pending, f"unfinished command: {pending}"
    return commands
