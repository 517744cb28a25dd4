"""`python -m caikit_genai.runtime_mends --render` writes docs/caikit-mends.md from the registry;
`--check` exits 1 when the page is not the current rendering."""

import argparse
import sys

from .render import MENDS_PAGE, render_markdown


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m caikit_genai.runtime_mends", description=__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--render", action="store_true", help=f"write {MENDS_PAGE}")
    action.add_argument("--check", action="store_true", help=f"exit 1 when {MENDS_PAGE} differs from the registry")
    options = parser.parse_args()
    rendered = render_markdown()
    if options.render:
        with open(MENDS_PAGE, "w", encoding="utf-8") as page:
            page.write(rendered)
        print(f"wrote {MENDS_PAGE}")
        return 0
    with open(MENDS_PAGE, encoding="utf-8") as page:
        if page.read() == rendered:
            return 0
    print(f"{MENDS_PAGE} is not the registry's rendering: run python -m caikit_genai.runtime_mends --render")
    return 1


if __name__ == "__main__":
    sys.exit(main())
