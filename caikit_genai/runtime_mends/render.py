"""docs/caikit-mends.md, written from the registry (tests/test_runtime_mends.py fails on drift)."""

import os
from typing import List

from .registry import HOOKS, MENDS, NESTING, PINS, UNTESTED_VERSIONS_SETTING, UPSTREAM_REPORTS, Mend

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MENDS_PAGE = os.path.join(REPO_ROOT, "docs", "caikit-mends.md")

INTRO = """\
caikit-genai changes caikit's behaviour in a few places that no configuration key or extension
point reaches. Each such *mend* replaces one or a few caikit functions or methods (one mend
replaces torch's) by a wrapper that keeps caikit's behaviour for good requests; each lives in
its own file under `caikit_genai/runtime_mends/`, which says what caikit does wrong and what the
mend does instead. Mends are a last resort: where caikit offers an extension point, that is used
instead (see the end of this page). `import caikit_genai`, which `python -m caikit.runtime` does
before it builds its servers, applies them all, in the order below, once."""

GUARD = f"""\
Before it patches anything, `apply()` checks the installed versions against these pins and that
every symbol a mend replaces still exists. Outside a pin it refuses with `UntestedVersionError`,
naming the pin, for example: "caikit_genai's runtime mends were tested on caikit 0.28.3; found
0.29.1: pin caikit==0.28.3 or re-check the mends (docs/caikit-mends.md)". A private symbol
(underscore) can change in any caikit release; a public one changes with notice.

**Testing an upgrade.** Set `{UNTESTED_VERSIONS_SETTING}=1` to apply the mends anyway: each version
outside its pin is logged as a warning instead, and a mend whose symbol is gone is skipped (the
log names it). Then run `tests/test_runtime_mends.py` (it fails on a missing symbol) and the
runtime tests, re-check each mend against the new caikit (drop those it fixed: see
[{os.path.basename(UPSTREAM_REPORTS)}]({os.path.basename(UPSTREAM_REPORTS)})), move the pins in
`caikit_genai/runtime_mends/registry.py` and render this page again."""

HOOK_DECISION = """\
caikit 0.28.3 builds some of its parts from the config through `import_class` factories:
`model_management.trainers`, `.finders`, `.initializers` (caikit.core) and the runtime's
`.loaders` and `.sizers`. Recording failed loads (mend 13) moved from a patch of the private
`ModelLoaderBase._wrapped_load_model` to a loader: `FailureRememberingLoader` subclasses
caikit's `CoreModelLoader` and overrides its public `load_module_instance`. A config without
that `loaders.default` key keeps mend 13's other parts, and the runtime logs a warning that
failed loads are not remembered.

The other mends of model loading (1, 4, the rest of 13, 14, 17) do not fit a finder or an initializer:

- **They run too late.** A finder and an initializer run inside the loader, in caikit's load pool,
  after `ModelManager.load_model` has registered a `LoadedModel`, counted it in the metrics and
  logged "Loading model". A refusal there (a hidden entry, a path outside the models dir, a model
  whose files failed before) becomes a failed load: listed in `/info/models`, retried
  `lazy_load_retries` times, and NOT_FOUND instead of INVALID_ARGUMENT. These mends act before that,
  in `ModelManager`, which caikit constructs itself with no factory.
- **Nothing would call them.** caikit calls no loader, finder or initializer for a dir it already
  serves; reloading a replaced one (mend 17) has to start in `ModelManager`'s sync.
- **They see a path, not a request.** `find_model(model_path)` gets the path caikit already joined
  from the model id (or the bare id, for ephemeral models); not the id, the request, nor whether
  the call comes from the lazy loader's sync.
- **An initializer would take over the user's backends.** The TGIS backend is configured under
  `model_management.initializers.default.config.backend_priority`; an initializer type of ours
  there would have to copy caikit's `LocalModelInitializer.init` to skip its second load by path
  (which hides the first error: mend 13 reads the first error from the exception chain instead).

The serving mends (2, 3, 6-11) live in the servers and servicers, which caikit builds with no
factory, and mend 5 in the batch entry point's `__main__`."""


def _upstream(mend: Mend) -> str:
    if mend.upstream.startswith("http"):
        return f"[{mend.upstream.split('github.com/')[-1]}]({mend.upstream})"
    if mend.upstream.startswith(UPSTREAM_REPORTS):
        anchor = mend.upstream.split("#", 1)[1]
        return f"ready to file: [{anchor}]({os.path.basename(UPSTREAM_REPORTS)}#{anchor})"
    return mend.upstream


def _mend_section(place: int, mend: Mend) -> List[str]:
    checked = ", ".join(f"{package} {PINS[package].shown}" for package in mend.packages)
    lines = [
        f"### {place}. Mend {mend.number}: `{mend.name}.py`",
        "",
        mend.why,
        "",
        "- Replaces:",
    ]
    lines += [f"  - `{symbol}` ({'private' if symbol.private else 'public'})" for symbol in mend.replaces]
    lines += [
        f"- Checked on: {checked}" + (" (applied only where caikit's HTTP extra is installed)" if mend.http_only else ""),
        f"- Upstream: {_upstream(mend)}",
        f"- Applied by: `{mend.apply.__module__}.{mend.apply.__name__}`",
    ]
    if mend.order:
        lines.append(f"- Order: {mend.order}")
    return lines + [""]


def render_markdown() -> str:
    lines = [
        "# caikit mends",
        "",
        "<!-- Rendered from caikit_genai/runtime_mends/registry.py by "
        "`python -m caikit_genai.runtime_mends --render`: edit the registry, not this page. -->",
        "",
        INTRO,
        "",
        "## Versions",
        "",
        "| package | checked on | pin |",
        "|---|---|---|",
    ]
    lines += [f"| {pin.package} | {pin.shown} | `{pin.package}{pin.specifier}` |" for pin in PINS.values()]
    lines += [
        "",
        GUARD,
        "",
        "## The mends, in the order they are applied",
        "",
        "| order | mend | file | symbols replaced | upstream |",
        "|---|---|---|---|---|",
    ]
    for place, mend in enumerate(MENDS, start=1):
        private = sum(symbol.private for symbol in mend.replaces)
        lines.append(
            f"| {place} | {mend.number} | `{mend.name}.py` | {len(mend.replaces)} ({private} private) | {_upstream(mend)} |"
        )
    lines.append("")
    for place, mend in enumerate(MENDS, start=1):
        lines += _mend_section(place, mend)
    lines += [
        "## How wrappers of one method nest",
        "",
        "Several mends wrap the same method; the one applied last runs first on every call:",
        "",
    ]
    lines += [
        f"- `{method}`: " + " -> ".join(f"mend {number}" for number in order) + " -> caikit's"
        for method, order in NESTING.items()
    ]
    lines += [
        "",
        "## caikit's extension points used instead of mends",
        "",
        "| config key | `import_class` | what it does |",
        "|---|---|---|",
    ]
    lines += [f"| `{hook.setting}` | `{hook.import_class}` | {hook.does} |" for hook in HOOKS]
    lines += ["", "### Why caikit's finders and initializers do not replace the other mends", "", HOOK_DECISION, ""]
    return "\n".join(lines)
