"""One real Caikit runtime per test session, as caikit's own tests/runtime/conftest.py does it.

The runtime loads this repo's runtime_config.yaml, with free loopback ports and a temp models
dir holding tiny models built here. Config and the ModelManager are process-wide singletons,
so every test shares this one runtime.
"""

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict

import grpc
import pytest
import requests

sys.path.insert(0, os.path.dirname(__file__))
# The one subprocess-runtime launcher, shared with the benchmarks.
sys.path.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from served_runtime import REPO_ROOT, free_port  # noqa: E402
from tiny_models import TINY_CHAR_RECIPE, build_tiny_bert, char_training_text, sentiment_examples  # noqa: E402
from tiny_models import build_tiny_bart  # noqa: E402
from tiny_models import build_tiny_dcgan  # noqa: E402
from tiny_models import TINY_TRANSLATOR_RECIPE, build_tiny_toy_encoder, seeded, toy_translation_pairs  # noqa: E402

# A CONFIG_FILES in the environment (`make serve` sets one) is applied by caikit after every
# configure() call, and would override the test runtime's temp models dir and ports.
os.environ.pop("CONFIG_FILES", None)
TINY_SENTIMENT_ID = "tiny-sentiment"
# Lines with every character README's generation prompts use ("It was", "Once", ...).
README_PROMPT_LINES = "It was a fine morning. Once the cat sat. The next morning the dog ran."
TINY_CHAR_ID = "tiny-char"
# Far above any request the tests make but the "over the limit" one: room for a long stream.
TINY_CHAR_MAX_NEW_TOKENS_LIMIT = 1_000_000
TINY_ATTENTION_ID = "tiny-attention"
TINY_ATTENTION_SEQ2SEQ_ID = "tiny-attention-seq2seq"
# Small, so that a 60-token request is over it (2 layers x 2 heads x 60 x 60 float16 is 28.8 kB).
TINY_ATTENTION_MAX_RESPONSE_BYTES = 16_384
# The real default attention model (packaged MiniLM-L6 weights, built by its real builder), so the
# README's attention examples run here exactly as written.
ATTENTION_MINILM_ID = "attention-minilm"
TINY_DCGAN_ID = "tiny-dcgan"
TINY_TRANSLATOR_ID = "tiny-translator"


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> str:
    return build_tiny_bert(str(tmp_path_factory.mktemp("base") / "tiny-bert"))


@pytest.fixture(scope="session")
def tiny_bart_dir(tmp_path_factory) -> str:
    return build_tiny_bart(str(tmp_path_factory.mktemp("base") / "tiny-bart"))


@pytest.fixture(scope="session")
def toy_encoder_dir(tmp_path_factory) -> str:
    """A tiny BERT whose vocabulary has the toy English words: the tiny translator's encoder."""
    return build_tiny_toy_encoder(str(tmp_path_factory.mktemp("base") / "toy-encoder"))


@pytest.fixture(scope="session")
def tiny_translator_dir(tmp_path_factory, toy_encoder_dir) -> str:
    """A Translator trained (frozen tiny encoder, new decoder and target vocabulary) on the toy pairs."""
    from caikit_genai import Translator

    with seeded(0):
        translator = Translator.train(toy_translation_pairs(), encoder_model=toy_encoder_dir, **TINY_TRANSLATOR_RECIPE)
    directory = str(tmp_path_factory.mktemp("translator") / TINY_TRANSLATOR_ID)
    translator.save(directory)
    return directory


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, tiny_bert_dir, tiny_bart_dir, tiny_translator_dir) -> str:
    """The runtime's local_models_dir: a trained tiny classifier, a tiny char RNN and one broken model dir."""
    from caikit_genai import CharTextGenerator, SentimentClassifier
    from caikit_genai import AttentionInspector
    from caikit_genai.bootstrap import build_attention_minilm

    directory = tmp_path_factory.mktemp("models")
    model = SentimentClassifier.train(
        sentiment_examples(200), base_model=tiny_bert_dir, epochs=6, batch_size=16, learning_rate=3e-3
    )
    model.save(str(directory / TINY_SENTIMENT_ID))
    generator = CharTextGenerator.train(
        [char_training_text()], max_new_tokens_limit=TINY_CHAR_MAX_NEW_TOKENS_LIMIT, **TINY_CHAR_RECIPE
    )
    generator.save(str(directory / TINY_CHAR_ID))
    # Tiny stand-ins under the default models' names, for the examples of README and docs/ (tests/test_docs_commands.py).
    shutil.copytree(directory / TINY_SENTIMENT_ID, directory / "sentiment")
    shutil.copytree(directory / TINY_SENTIMENT_ID, directory / "sentiment-minilm")
    austen = CharTextGenerator.train(
        [char_training_text() + "\n" + README_PROMPT_LINES], max_new_tokens_limit=4096, **TINY_CHAR_RECIPE
    )
    austen.save(str(directory / "char-austen"))
    attention = AttentionInspector.bootstrap(tiny_bert_dir, max_response_bytes=TINY_ATTENTION_MAX_RESPONSE_BYTES)
    attention.save(str(directory / TINY_ATTENTION_ID))
    AttentionInspector.bootstrap(tiny_bart_dir).save(str(directory / TINY_ATTENTION_SEQ2SEQ_ID))
    build_attention_minilm(str(directory / ATTENTION_MINILM_ID))
    build_tiny_dcgan(str(directory / TINY_DCGAN_ID))
    # README's default image model: the tiny one, answering to three Fashion-MNIST class names.
    build_tiny_dcgan(str(directory / "dcgan-fashion"), class_names=("Bag", "Sneaker", "Trouser"))
    shutil.copytree(tiny_translator_dir, directory / TINY_TRANSLATOR_ID)
    shutil.copytree(tiny_translator_dir, directory / "translator-en-id")
    broken = directory / "broken-model"
    broken.mkdir()
    (broken / "config.yml").write_text("module_id: c974c406-8a2e-41eb-a80d-4e6c4eb526db\nhf_model: missing\n")
    return str(directory)


@dataclass
class Runtime:
    """Handles on the running runtime: ports, URLs, stubs and the generated message classes."""

    grpc_port: int
    http_port: int
    models_dir: str
    # data_streams.file_source_base: the only dir train requests may read files from.
    training_data_dir: str
    channel: grpc.Channel
    inference: Any
    training: Any
    training_management: Any
    inference_service: Any
    training_service: Any
    metrics_port: int = 0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def message(self, name: str, **fields):
        """Build a request message of the generated inference or training service by name."""
        for service in (self.inference_service, self.training_service):
            message_class = getattr(service.messages, name, None)
            if message_class is not None:
                return message_class(**fields)
        raise KeyError(name)

    def wait_for_model(self, model_id: str, timeout: float = 60.0) -> None:
        """Block until the lazy loader has picked up `model_id` (it polls local_models_dir).

        caikit reports a model `loaded` only once a request has waited for it, so this waits
        for the model to be listed; the next request waits for its load to finish.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            models = requests.get(f"{self.http_url}/info/models", timeout=5).json().get("models", [])
            if any(m.get("name") == model_id for m in models):
                return
            time.sleep(0.3)
        raise TimeoutError(f"model {model_id} was not served within {timeout} s")

    def wait_for_training(self, training_id: str, timeout: float = 180.0) -> Dict[str, Any]:
        """Poll GET /management/trainings until the job reaches a terminal state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = requests.get(
                f"{self.http_url}/management/trainings", params={"training_id": training_id}, timeout=5
            ).json()
            if status.get("state") in ("COMPLETED", "ERRORED", "CANCELED"):
                return status
            time.sleep(0.5)
        raise TimeoutError(f"training {training_id} did not finish within {timeout} s")

    def served_metrics(self, training_id: str, model_name: str) -> Dict[str, Any]:
        """Wait for a training to complete and its model to be served; its metrics.json."""
        status = self.wait_for_training(training_id)
        assert status["state"] == "COMPLETED", status
        self.wait_for_model(model_name)
        with open(os.path.join(self.models_dir, model_name, "metrics.json"), encoding="utf-8") as metrics_file:
            return json.load(metrics_file)


@pytest.fixture(scope="session")
def tgis_stand_in(models_dir, tiny_bart_dir):
    """The `tgis` extra's stand-in TGIS server (tests/fake_tgis.py) and its model dirs in
    models_dir; None where caikit-tgis-backend is not installed."""
    import importlib.util

    if importlib.util.find_spec("caikit_tgis_backend") is None:
        yield None
        return
    from fake_tgis import start_stand_in

    stand_in = start_stand_in(tiny_bart_dir, models_dir, free_port)
    yield stand_in
    stand_in.server.stop()


@pytest.fixture(scope="session")
def runtime(models_dir, tmp_path_factory, tgis_stand_in):
    import caikit
    from caikit.runtime.grpc_server import RuntimeGRPCServer
    from caikit.runtime.http_server import RuntimeHTTPServer
    from caikit.runtime.service_factory import ServicePackageFactory

    workdir = tmp_path_factory.mktemp("runtime")
    training_data_dir = workdir / "training_data"
    training_data_dir.mkdir()
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    # configure() takes a yaml path or a dict per call, not both: the repo's file, then overrides.
    caikit.configure(config_yml_path=os.path.join(REPO_ROOT, "runtime_config.yaml"))
    caikit.configure(
        config_dict={
            "runtime": {
                "local_models_dir": models_dir,
                "lazy_load_poll_period_seconds": 0.5,
                "wait_for_initial_model_loads": True,
                "grpc": {"port": grpc_port},
                "http": {"port": http_port},
                "metrics": {"port": metrics_port},
                "training": {"output_dir": models_dir},
                "metering": {"log_dir": str(workdir / "metering")},
            },
            "data_streams": {"file_source_base": str(training_data_dir)},
            # The tiny base models the tests train from live in pytest's temp dirs.
            # Some tests run two trainings side by side; the default cap (1) is tested in a runtime
            # of its own (test_safe_defaults.py).
            "genai": {
                "training": {"base_models_dir": str(tmp_path_factory.getbasetemp()), "max_concurrent_trainings": 4}
            },
        },
    )
    if tgis_stand_in is not None:
        caikit.configure(config_dict=tgis_stand_in.runtime_config)
    inference_service = ServicePackageFactory.get_service_package(ServicePackageFactory.ServiceType.INFERENCE)
    training_service = ServicePackageFactory.get_service_package(ServicePackageFactory.ServiceType.TRAINING)
    management_service = ServicePackageFactory.get_service_package(
        ServicePackageFactory.ServiceType.TRAINING_MANAGEMENT
    )
    with RuntimeGRPCServer() as grpc_server, RuntimeHTTPServer():
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        handle = Runtime(
            grpc_port=grpc_port,
            http_port=http_port,
            models_dir=models_dir,
            training_data_dir=str(training_data_dir),
            channel=channel,
            inference=inference_service.stub_class(channel),
            training=training_service.stub_class(channel),
            training_management=management_service.stub_class(channel),
            inference_service=inference_service,
            training_service=training_service,
            metrics_port=metrics_port,
        )
        _wait_for_http(handle.http_url)
        handle.wait_for_model(TINY_SENTIMENT_ID)
        handle.wait_for_model(TINY_CHAR_ID)
        handle.wait_for_model(TINY_ATTENTION_ID)
        handle.wait_for_model(TINY_ATTENTION_SEQ2SEQ_ID)
        handle.wait_for_model(ATTENTION_MINILM_ID)
        handle.wait_for_model(TINY_DCGAN_ID)
        handle.wait_for_model(TINY_TRANSLATOR_ID)
        yield handle
        channel.close()
        del grpc_server


@pytest.fixture
def management_on(runtime):
    """The shared runtime with model management turned on (off in runtime_config.yaml) for one test."""
    import caikit

    caikit.configure(config_dict={"genai": {"model_management": {"enabled": True}}})
    try:
        yield runtime
    finally:
        caikit.configure(config_dict={"genai": {"model_management": {"enabled": False}}})


def _wait_for_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise TimeoutError("HTTP server did not come up")
