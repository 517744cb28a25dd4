"""The registry of caikit mends (caikit_genai/runtime_mends/registry.py): its version guard refuses
an untested caikit or torch before patching anything, every symbol it names exists in the
installed caikit as shipped, applying twice changes nothing, wrappers nest as it says, and
docs/caikit-mends.md is its current rendering."""

import dataclasses
import json
import os
import re
import subprocess
import sys
from importlib import import_module

import pytest
import yaml

from caikit_genai import runtime_mends
from caikit_genai.runtime_mends import registry
from caikit_genai.runtime_mends.render import MENDS_PAGE, render_markdown

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTED = {"caikit": "0.28.3", "torch": "2.13.0+cpu", "transformers": "4.57.6"}


def test_the_guard_refuses_a_caikit_outside_its_pin():
    with pytest.raises(registry.UntestedVersionError) as refused:
        registry.check_versions({**TESTED, "caikit": "0.29.1"}, allowed=False)
    message = str(refused.value)
    assert "tested on caikit 0.28.3; found 0.29.1: pin caikit==0.28.3 or re-check the mends (docs/caikit-mends.md)" in message
    assert registry.UNTESTED_VERSIONS_SETTING in message


def test_the_guard_refuses_a_torch_outside_its_pin():
    with pytest.raises(registry.UntestedVersionError, match=r"tested on torch 2\.13\.x; found 2\.14\.1: pin torch>=2\.13,<2\.14"):
        registry.check_versions({**TESTED, "torch": "2.14.1"}, allowed=False)


def test_the_guard_passes_the_tested_versions_and_this_installation():
    registry.check_versions(TESTED, allowed=False)
    registry.check_versions({**TESTED, "torch": "2.13.1"}, allowed=False)
    registry.check_versions(allowed=False)  # what is installed here


def test_the_escape_setting_turns_the_refusal_into_a_warning(monkeypatch):
    warnings = []
    monkeypatch.setattr(registry.log, "warning", lambda *args: warnings.append(args[0] % args[1:]))
    monkeypatch.setenv(registry.UNTESTED_VERSIONS_SETTING, "1")
    registry.check_versions({**TESTED, "caikit": "0.29.1"})
    assert len(warnings) == 1 and "found 0.29.1" in warnings[0] and registry.UNTESTED_VERSIONS_SETTING in warnings[0]


def recording_mends(monkeypatch, extra_symbol=None):
    """MENDS with each apply replaced by a recorder (and one symbol added to the first mend)."""
    applied = []
    mends = [dataclasses.replace(mend, apply=lambda number=mend.number: applied.append(number)) for mend in registry.MENDS]
    if extra_symbol is not None:
        mends[0] = dataclasses.replace(mends[0], replaces=mends[0].replaces + (extra_symbol,))
    monkeypatch.setattr(registry, "MENDS", tuple(mends))
    return applied


def test_apply_refuses_an_untested_caikit_before_patching_anything(monkeypatch):
    applied = recording_mends(monkeypatch)
    monkeypatch.delenv(registry.UNTESTED_VERSIONS_SETTING, raising=False)
    monkeypatch.setattr(registry, "installed_versions", lambda: {**TESTED, "caikit": "0.29.1"})
    with pytest.raises(registry.UntestedVersionError, match="pin caikit==0.28.3"):
        registry.apply()
    assert applied == []
    monkeypatch.setattr(registry, "installed_versions", lambda: dict(TESTED))
    registry.apply()
    assert applied == [mend.number for mend in registry.MENDS]  # in the table's order


def test_apply_refuses_a_renamed_symbol_or_skips_its_mend_when_told(monkeypatch):
    gone = registry.Symbol("caikit.runtime.names", "_renamed_in_a_later_caikit")
    applied = recording_mends(monkeypatch, extra_symbol=gone)
    monkeypatch.delenv(registry.UNTESTED_VERSIONS_SETTING, raising=False)
    with pytest.raises(registry.UntestedVersionError, match=r"caikit\.runtime\.names\._renamed_in_a_later_caikit \(mend 15\)"):
        registry.apply()
    assert applied == []
    monkeypatch.setenv(registry.UNTESTED_VERSIONS_SETTING, "1")
    registry.apply()
    assert applied == [mend.number for mend in registry.MENDS[1:]]


CHECK_SYMBOLS = """
import json, sys
from importlib import import_module
missing = []
for module, attribute in json.loads(sys.argv[1]):
    found = import_module(module)
    for part in attribute.split("."):
        if not hasattr(found, part):
            missing.append(module + "." + attribute)
            break
        found = getattr(found, part)
assert "caikit_genai" not in sys.modules
print(json.dumps(missing))
"""


def test_every_symbol_the_mends_replace_exists_in_the_installed_caikit():
    """Checked in a fresh interpreter that never imports caikit_genai, so what is found is caikit's
    (or torch's) own attribute, not a mend's wrapper: an upgrade that renames one fails here."""
    symbols = sorted({(symbol.module, symbol.attribute) for mend in registry.MENDS for symbol in mend.replaces})
    checked = subprocess.run(
        [sys.executable, "-c", CHECK_SYMBOLS, json.dumps(symbols)], capture_output=True, text=True, timeout=300, check=False
    )
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert json.loads(checked.stdout.strip().splitlines()[-1]) == []
    assert registry.missing_symbols() == []


def test_each_entry_names_its_symbols_why_upstream_and_versions():
    numbers = [mend.number for mend in registry.MENDS]
    assert sorted(numbers) == list(range(1, len(numbers) + 1)), numbers
    for mend in registry.MENDS:
        assert mend.replaces and mend.why and mend.upstream, mend.number
        assert os.path.exists(os.path.join(REPO_ROOT, "caikit_genai", "runtime_mends", f"{mend.name}.py")), mend.name
        assert set(mend.packages) <= set(registry.PINS), mend.number
    private = registry.Symbol("m", "ModelManager._local_models_dir_sync")
    assert private.private and not registry.Symbol("m", "ModelManager.load_model").private


def current(symbol: registry.Symbol):
    found = import_module(symbol.module)
    for part in symbol.attribute.split("."):
        found = getattr(found, part)
    return found


def test_apply_is_idempotent():
    symbols = {symbol for mend in registry.MENDS for symbol in mend.replaces}
    before = {symbol: current(symbol) for symbol in symbols}
    tables = {symbol: dict(value) for symbol, value in before.items() if isinstance(value, dict)}
    runtime_mends.apply()
    runtime_mends.apply()
    for symbol in symbols:
        assert current(symbol) is before[symbol], symbol
    for symbol, table in tables.items():
        assert current(symbol) == table, symbol


@pytest.mark.parametrize("method", list(registry.NESTING))
def test_wrappers_nest_in_the_order_the_registry_states(method):
    """Each wrapper is defined in its mend's file; the chain ends in caikit's own function."""
    owner = {
        "ModelManager": "caikit.runtime.model_management.model_manager",
        "GlobalPredictServicer": "caikit.runtime.servicers.global_predict_servicer",
        "InfoServicer": "caikit.runtime.servicers.info_servicer",
    }[method.split(".")[0]]
    function = current(registry.Symbol(owner, method))
    files_by_number = {mend.number: mend.name for mend in registry.MENDS}
    chain = []
    while hasattr(function, "__wrapped__"):
        chain.append(os.path.basename(function.__code__.co_filename).removesuffix(".py"))
        function = function.__wrapped__
    assert chain == [files_by_number[number] for number in registry.NESTING[method]]
    assert f"{os.sep}caikit{os.sep}runtime{os.sep}" in function.__code__.co_filename


def test_the_docs_page_is_the_current_rendering_of_the_registry():
    with open(MENDS_PAGE, encoding="utf-8") as page:
        written = page.read()
    assert written == render_markdown(), "docs/caikit-mends.md is stale: run python -m caikit_genai.runtime_mends --render"


def github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_upstream_report_the_registry_names_is_in_the_reports_page():
    with open(os.path.join(REPO_ROOT, registry.UPSTREAM_REPORTS), encoding="utf-8") as page:
        anchors = {github_anchor(line[3:]) for line in page if line.startswith("## ")}
    named = [mend.upstream.split("#", 1)[1] for mend in registry.MENDS if mend.upstream.startswith(registry.UPSTREAM_REPORTS)]
    assert len(named) >= 12
    assert [anchor for anchor in named if anchor not in anchors] == []


def test_the_hooks_are_plugged_in_by_the_runtime_config():
    with open(os.path.join(REPO_ROOT, "runtime_config.yaml"), encoding="utf-8") as config_file:
        config = yaml.safe_load(config_file)
    for hook in registry.HOOKS:
        entry = config
        for key in hook.setting.split("."):
            entry = entry[key]
        assert entry["import_class"] == hook.import_class
        module, name = hook.import_class.rsplit(".", 1)
        assert entry["type"] == getattr(import_module(module), name).name
