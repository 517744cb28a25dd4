"""What each tiny model dir answers to fixed requests, through the modules' public `load` and `run`
alone, so the code of any commit can compute it (tests/test_old_model_dirs.py runs it with the
code before the module redesign and with today's, on dirs the old code saved)."""

import json
import os
import sys

# (model dir name in build_tiny_models_dir, module class name, run's keyword arguments)
REQUESTS = [
    ("tiny-sentiment", "SentimentClassifier", {"text": "a good and moving film"}),
    ("tiny-sentiment", "SentimentClassifier", {"text": "dull, stale and boring", "top_k": 1}),
    ("tiny-char", "CharTextGenerator", {"text": "the ", "max_new_tokens": 40, "seed": 3, "temperature": 0.8}),
    ("tiny-char", "CharTextGenerator", {"text": "a dog", "max_new_tokens": 25, "decoding_method": "GREEDY"}),
    ("tiny-attention", "AttentionInspector", {"text": "the film was good", "precision": "float32"}),
    ("tiny-dcgan", "DCGANImageGenerator", {"num_images": 3, "seed": 4}),
    ("tiny-dcgan", "DCGANImageGenerator", {"num_images": 2, "seed": 9, "label": "stripe"}),
    ("tiny-translator", "Translator", {"text": "the cat sees the fish ."}),
    ("tiny-translator", "Translator", {"text": "the dog likes water .", "num_beams": 2}),
]


def answers(models_dir: str):
    """[(dir, module, request, the answer as JSON)] for every request above."""
    import caikit_genai  # pylint: disable=import-outside-toplevel

    loaded, results = {}, []
    for name, module, request in REQUESTS:
        if name not in loaded:
            loaded[name] = getattr(caikit_genai, module).load(os.path.join(models_dir, name))
        results.append([name, module, request, json.loads(loaded[name].run(**request).to_json())])
    return results


if __name__ == "__main__":
    # python model_dir_answers.py MODELS_DIR OUT.json [--build]: with --build, build the tiny dirs
    # first with this checkout's tests/tiny_models.py (on sys.path beside this file).
    directory, out = sys.argv[1], sys.argv[2]
    if "--build" in sys.argv:
        from tiny_models import build_tiny_models_dir  # pylint: disable=import-outside-toplevel

        build_tiny_models_dir(directory)
    with open(out, "w", encoding="utf-8") as answers_file:
        json.dump(answers(directory), answers_file)
