"""Model dirs saved before the module redesign (issue 30) load and answer as they did.

The code of OLD_COMMIT (the last commit before modules became packages) is taken from git into a
temp dir; it builds the tiny model of each module there and records what each answers
(tests/model_dir_answers.py). Today's code then loads those same dirs and must answer the same
requests identically (floats to 1e-5). Needs the repo's history, as a clone has it.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from model_dir_answers import answers

OLD_COMMIT = "c1fc122"


def same(old, new, where="answer"):
    """Assert two JSON values are equal, floats within 1e-5 (relative or absolute)."""
    if isinstance(old, float) or isinstance(new, float):
        assert math.isclose(old, new, rel_tol=1e-5, abs_tol=1e-6), f"{where}: {old} != {new}"
    elif isinstance(old, dict):
        assert old.keys() == new.keys(), f"{where}: fields {sorted(old)} != {sorted(new)}"
        for key in old:
            same(old[key], new[key], f"{where}.{key}")
    elif isinstance(old, list):
        assert len(old) == len(new), f"{where}: {len(old)} items != {len(new)}"
        for index, (old_item, new_item) in enumerate(zip(old, new)):
            same(old_item, new_item, f"{where}[{index}]")
    else:
        assert old == new, f"{where}: {old!r} != {new!r}"


@pytest.fixture(scope="module")
def old_dirs(tmp_path_factory):
    """(models dir built by OLD_COMMIT's code, what that code answered)."""
    work = tmp_path_factory.mktemp("old-code")
    tree, models = work / "tree", work / "models"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", REPO_ROOT, "archive", OLD_COMMIT, "caikit_genai", "tests/tiny_models.py"], capture_output=True
    )
    assert archive.returncode == 0, f"needs commit {OLD_COMMIT} (a full clone): {archive.stderr.decode()}"
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    # Today's request script, beside the old tests/tiny_models.py; the old package first on the path.
    script = tree / "tests" / "model_dir_answers.py"
    script.write_text(open(os.path.join(REPO_ROOT, "tests", "model_dir_answers.py"), encoding="utf-8").read())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "tests")])}
    built = subprocess.run(
        [sys.executable, str(script), str(models), str(work / "old.json"), "--build"],
        cwd=str(work), env=env, capture_output=True, text=True, timeout=900,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert "model_dir_answers" not in built.stderr
    with open(work / "old.json", encoding="utf-8") as old_file:
        return str(models), json.load(old_file)


@pytest.mark.slow
def test_dirs_saved_by_the_old_code_answer_as_they_did(old_dirs):
    models, old_answers = old_dirs
    new_answers = answers(models)
    assert [row[:3] for row in new_answers] == [row[:3] for row in old_answers]
    for (name, module, request, old), (_, _, _, new) in zip(old_answers, new_answers):
        same(old, new, f"{name} {module} {request}")
    # The old code really is the old shape: modules were single files then.
    assert not os.path.isdir(os.path.join(os.path.dirname(models), "tree", "caikit_genai", "modules", "translator"))
