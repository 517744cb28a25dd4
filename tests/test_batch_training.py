"""Training through caikit's batch entry point, `python -m caikit.runtime.train`, as a Kubernetes
Job runs it (deploy/training/job/train-job.yaml): data as files in the training data dir, the model
saved under --save-path by --model-name. A user's mistake exits 1 with the reason in the
termination log and leaves no model dir; a good run exits 0 and leaves a model that loads.
"""

import json
import os
import pathlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from caikit_genai import CharTextGenerator, DCGANImageGenerator, SentimentClassifier, Translator
from caikit_genai.runtime_mends import is_user_error
from conftest import REPO_ROOT
from tiny_models import TINY_CHAR_RECIPE, TINY_TRANSLATOR_RECIPE, build_tiny_toy_encoder, char_training_text, sentiment_examples
from tiny_models import dcgan_training_images, toy_translation_pairs


def sentiment_job(tiny_bert_dir):
    lines = [json.dumps(example) for example in sentiment_examples(40)]
    kwargs = {"training_data": {"file": {"filename": "reviews.jsonl"}}, "base_model": tiny_bert_dir, "epochs": 1}
    return SentimentClassifier, "reviews.jsonl", lines, kwargs, lambda model: model.run("a lovely film").results


def char_job(_):
    lines = [json.dumps(line) for line in char_training_text().split("\n")]
    recipe = {key: value for key, value in TINY_CHAR_RECIPE.items() if key != "max_steps"}
    kwargs = {"training_data": {"file": {"filename": "text.jsonl"}}, "max_steps": 20, **recipe}
    return CharTextGenerator, "text.jsonl", lines, kwargs, lambda model: model.run("the", max_new_tokens=5).generated_text


def dcgan_job(_):
    import base64, io  # pylint: disable=import-outside-toplevel,multiple-imports
    from PIL import Image as PILImage  # pylint: disable=import-outside-toplevel

    images, labels = dcgan_training_images(24)
    lines = []
    for image, label in zip(images, labels):
        buffer = io.BytesIO()
        PILImage.fromarray(image[..., 0]).save(buffer, format="PNG")
        lines.append(json.dumps({"image": {"image_data": base64.b64encode(buffer.getvalue()).decode()}, "label": label}))
    recipe = {"nz": 8, "ngf": 8, "ndf": 8, "batch_size": 8, "max_steps": 3, "eval_samples": 16, "seed": 1}
    kwargs = {"training_data": {"file": {"filename": "images.jsonl"}}, **recipe}
    return DCGANImageGenerator, "images.jsonl", lines, kwargs, lambda model: model.run(2, seed=0, label="ring").images


def translator_job(tiny_bert_dir):
    lines = [json.dumps(pair) for pair in toy_translation_pairs()]
    encoder = build_tiny_toy_encoder(os.path.join(os.path.dirname(tiny_bert_dir), "batch-toy-encoder"))
    recipe = {**TINY_TRANSLATOR_RECIPE, "max_steps": 5}
    kwargs = {"training_data": {"file": {"filename": "pairs.jsonl"}}, "encoder_model": encoder, **recipe}
    return Translator, "pairs.jsonl", lines, kwargs, lambda model: model.run("the cat sees the fish").translation_text


# A row per trainable module.
JOBS = {
    "SentimentClassifier": sentiment_job,
    "CharTextGenerator": char_job,
    "DCGANImageGenerator": dcgan_job,
    "Translator": translator_job,
}


def new_job_dirs(root) -> pathlib.Path:
    root.mkdir()
    (root / "training_data").mkdir()
    (root / "models").mkdir()
    return root


def run_batch_training(job_dirs, module_class, model_name, kwargs):
    """caikit's entry point as the Job's command runs it, with this project's config."""
    env = {
        **os.environ,
        "CONFIG_FILES": os.path.join(REPO_ROOT, "runtime_config.yaml"),
        "DATA_STREAMS_FILE_SOURCE_BASE": str(job_dirs / "training_data"),
        # The tiny base models live in pytest's temp dir, above job_dirs.
        "GENAI_TRAINING_BASE_MODELS_DIR": os.path.dirname(os.path.dirname(str(job_dirs))),
        "HF_HUB_OFFLINE": "1",
    }
    termination_log = job_dirs / "termination-log"
    termination_log.write_text("")
    result = subprocess.run(
        [
            sys.executable, "-m", "caikit.runtime.train",
            "--module", f"{module_class.__module__}.{module_class.__name__}",
            "--model-name", model_name,
            "--save-path", str(job_dirs / "models"),
            "--training-kwargs", json.dumps(kwargs),
            "--termination-log-file", str(termination_log),
        ],
        cwd=job_dirs, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    return result, termination_log.read_text()


MISTAKES = {
    "../escaped": ("reviews.jsonl", None, "is not a valid model name"),
    "outside": ("/etc/passwd", None, "outside the training data dir"),
    "bad-data": ("reviews.jsonl", ['{"text": "fine", "label": "positive"}', '{"text": "", "label": "negative"}'], "example 1 has no text"),
    "missing": ("nowhere.jsonl", None, "does not exist in the training data dir"),
}


@pytest.fixture(scope="module")
def jobs(tmp_path_factory, tiny_bert_dir):
    """Every job below, each in dirs of its own, run side by side (each process spends most of
    its few seconds importing torch and caikit): {name: (job dirs, result, termination log, the
    module class, the check of its model)}."""
    root = tmp_path_factory.mktemp("batch-jobs")
    planned, uses = {}, {}
    for module_name, job in JOBS.items():
        module_class, data_file, lines, kwargs, uses[module_name] = job(tiny_bert_dir)
        dirs = new_job_dirs(root / module_name)
        (dirs / "training_data" / data_file).write_text("\n".join(lines) + "\n")
        planned[module_name] = (dirs, module_class, "trained", kwargs)
    for index, (model_name, (data_file, contents, _)) in enumerate(MISTAKES.items()):
        dirs = new_job_dirs(root / f"mistake-{index}")
        if contents is not None:
            (dirs / "training_data" / data_file).write_text("\n".join(contents) + "\n")
        kwargs = {"training_data": {"file": {"filename": data_file}}, "base_model": tiny_bert_dir, "epochs": 1}
        planned[model_name] = (dirs, SentimentClassifier, model_name, kwargs)
    dirs = new_job_dirs(root / "taken")
    (dirs / "models" / "taken").mkdir()
    (dirs / "models" / "taken" / "keep.txt").write_text("a model")
    planned["taken"] = (dirs, SentimentClassifier, "taken", {"training_data": {"file": {"filename": "reviews.jsonl"}}, "base_model": tiny_bert_dir})
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(run_batch_training, *plan) for name, plan in planned.items()}
        return {name: (planned[name][0], *future.result(), planned[name][1], uses.get(name)) for name, future in futures.items()}


@pytest.mark.parametrize("module_name", sorted(JOBS))
@pytest.mark.slow
def test_every_module_trains_through_the_batch_entry_point(module_name, jobs):
    job_dirs, result, termination_log, module_class, use = jobs[module_name]
    assert result.returncode == 0, result.stderr[-3000:]
    assert termination_log == ""
    assert use(module_class.load(str(job_dirs / "models" / "trained")))


@pytest.mark.parametrize("model_name", sorted(MISTAKES))
@pytest.mark.slow
def test_a_users_mistake_exits_1_with_the_reason_and_no_model(jobs, model_name):
    job_dirs, result, termination_log, _, _ = jobs[model_name]
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stderr[-3000:]}"
    assert MISTAKES[model_name][2] in termination_log
    assert [entry for entry in os.listdir(job_dirs / "models") if not entry.startswith(".")] == []
    assert not (job_dirs / "escaped").exists()


@pytest.mark.slow
def test_a_model_name_that_exists_is_not_overwritten(jobs):
    job_dirs, result, termination_log, _, _ = jobs["taken"]
    assert result.returncode == 1 and "already exists" in termination_log
    assert (job_dirs / "models" / "taken" / "keep.txt").read_text() == "a model"


def test_only_user_errors_count_as_user_errors():
    assert is_user_error(ValueError("bad example")) and is_user_error(FileNotFoundError("x"))
    assert not is_user_error(RuntimeError("CUDA error")) and not is_user_error(MemoryError())
