"""deploy/ and the Containerfile, checked as far as this machine can without a cluster or a
container engine:

- every kustomization builds offline (`kubectl kustomize`), and what it builds validates against
  the real CRD schemas (KServe v0.15.2, Kubeflow v1; ../shared/schemas) in strict mode, with
  core kinds checked by `kubernetes-validate`;
- the cross-checks no schema makes: an InferenceService names a ServingRuntime of its own set
  that supports its model format; names are DNS-1035 labels of at most 53 characters; a runtime
  that Serverless InferenceServices use has one port;
- the image: every path the Containerfile copies exists; the wheel builds and installs into a
  clean venv; that venv, started with the image's ENV plus exactly the env and command of each
  ServingRuntime, serves a model dir laid out as /mnt/models/<id>/ and passes the manifest's own
  readiness and liveness commands. When this runs as root, the server runs as an OpenShift-style
  random uid in group 0, so model files must be group-readable.
"""

import glob
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import jsonschema
import kubernetes_validate
import pytest
import requests
import yaml

from conftest import REPO_ROOT, free_port

DEPLOY = os.path.join(REPO_ROOT, "deploy")
SCHEMAS = os.path.join(REPO_ROOT, "..", "shared", "schemas")
CRD_SCHEMAS = {
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "servingruntime_v1alpha1.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice_v1beta1.json",
    ("kubeflow.org/v1", "PyTorchJob"): "pytorchjob_v1.json",
}
KUBERNETES_VERSION = "1.32.0"  # OpenShift 4.19
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
OPENSHIFT_UID = 1000650000  # a uid from an OpenShift project's range; its group is 0


def kustomizations():
    return sorted(os.path.relpath(os.path.dirname(path), DEPLOY) for path in glob.glob(f"{DEPLOY}/**/kustomization.yaml", recursive=True))


def build(kustomization: str) -> list:
    built = subprocess.run(
        ["kubectl", "kustomize", os.path.join(DEPLOY, kustomization)], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def resources(docs: list) -> list:
    """The built objects, with the objects an OpenShift Template carries."""
    return [obj for doc in docs for obj in (doc["objects"] if doc["kind"] == "Template" else [doc])]


def strict(schema):
    """kubeconform's strict mode: an object schema with properties and no escape hatch takes no
    other fields, so a misspelt field fails."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(value) for value in schema]
    return schema


def crd_validator(api_version: str, kind: str):
    with open(os.path.join(SCHEMAS, CRD_SCHEMAS[(api_version, kind)]), encoding="utf-8") as schema_file:
        return jsonschema.Draft7Validator(strict(json.load(schema_file)))


def test_every_kustomization_is_found():
    assert {".", "serverless", "openshift-ai", "runtimes"} <= set(kustomizations())


@pytest.mark.parametrize("kustomization", kustomizations())
def test_manifests_validate_against_the_real_schemas(kustomization):
    if not os.path.isdir(SCHEMAS):
        pytest.skip(f"no CRD schemas at {SCHEMAS} (CI has them): only kubectl kustomize and the cross-checks ran")
    for obj in resources(build(kustomization)):
        key = (obj["apiVersion"], obj["kind"])
        where = f"{kustomization}: {obj['kind']} {obj['metadata']['name']}"
        if key in CRD_SCHEMAS:
            errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in crd_validator(*key).iter_errors(obj)]
            assert not errors, f"{where}:\n" + "\n".join(errors)
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_strict_validation_catches_a_misspelt_field():
    """The validators above can fail: a typo in a runtime's container is rejected."""
    if not os.path.isdir(SCHEMAS):
        pytest.skip(f"no CRD schemas at {SCHEMAS}")
    runtime = next(obj for obj in build("runtimes") if obj["kind"] == "ServingRuntime")
    runtime["spec"]["containers"][0]["comand"] = runtime["spec"]["containers"][0].pop("command")
    assert list(crd_validator("serving.kserve.io/v1alpha1", "ServingRuntime").iter_errors(runtime))
    pvc = next(obj for obj in build("storage") if obj["kind"] == "PersistentVolumeClaim")
    pvc["spec"]["acessModes"] = pvc["spec"].pop("accessModes")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pvc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("kustomization", kustomizations())
def test_cross_checks_no_schema_makes(kustomization):
    objects = resources(build(kustomization))
    runtimes = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "ServingRuntime"}
    for obj in objects:
        name = obj["metadata"]["name"]
        assert DNS_1035.match(name) and len(name) <= 53, f"{name!r} is not a DNS-1035 name of <= 53 characters"
    for service in (obj for obj in objects if obj["kind"] == "InferenceService"):
        model = service["spec"]["predictor"]["model"]
        runtime = runtimes.get(model["runtime"])
        assert runtime, f"{service['metadata']['name']} names runtime {model['runtime']!r}, not in {sorted(runtimes)}"
        formats = [entry["name"] for entry in runtime["spec"]["supportedModelFormats"]]
        assert model["modelFormat"]["name"] in formats
        assert model["storageUri"].startswith("pvc://caikit-genai-models/")
        mode = service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
        assert mode in ("Serverless", "RawDeployment")
        ports = [port for container in runtime["spec"]["containers"] for port in container.get("ports", [])]
        if mode == "Serverless":
            assert len(ports) == 1, f"{runtime['metadata']['name']} serves Serverless models on {len(ports)} ports"
        if any(port["containerPort"] == 8085 for port in ports):
            assert any(port.get("name") == "h2c" for port in ports), "the gRPC port must be named h2c"


def test_every_module_has_an_inference_service_in_each_mode():
    modules = {"sentiment", "char-austen", "translator-en-id", "dcgan-fashion", "attention-minilm"}
    for kustomization in (".", "serverless"):
        names = {obj["metadata"]["name"] for obj in build(kustomization) if obj["kind"] == "InferenceService"}
        assert modules <= names, f"{kustomization} lacks {sorted(modules - names)}"


def test_the_serving_runtimes_follow_what_caikit_and_openshift_ai_expect():
    runtimes = {obj["metadata"]["name"]: obj for obj in build("runtimes")}
    assert set(runtimes) == {"caikit-genai", "caikit-genai-http", "caikit-genai-grpc"}
    for name, runtime in runtimes.items():
        container = runtime["spec"]["containers"][0]
        env = {item["name"]: item["value"] for item in container["env"]}
        ports = {port["containerPort"] for port in container["ports"]}
        assert container["name"] == "kserve-container" and runtime["spec"]["multiModel"] is False
        assert container["command"] == ["python", "-m", "caikit.runtime"]
        assert container["livenessProbe"]["exec"]["command"][-2:] == ["caikit_health_probe", "liveness"]
        assert runtime["spec"]["annotations"]["prometheus.io/port"] == "8086"
        assert env["RUNTIME_LOCAL_MODELS_DIR"] == "/mnt/models"
        assert (env["RUNTIME_HTTP_ENABLED"] == "true") == (8080 in ports), name
        assert (env["RUNTIME_GRPC_ENABLED"] == "true") == (8085 in ports), name


def test_the_training_job_runs_the_batch_entry_point_on_a_module_that_exists():
    """tests/test_batch_training.py runs that entry point as this Job does; here, the Job's own
    choices: the module it names is registered, a user error (exit 1) is never retried, one GPU."""
    import caikit  # pylint: disable=import-outside-toplevel

    import caikit_genai  # pylint: disable=import-outside-toplevel,unused-import

    (job,) = [obj for obj in build("training") if obj["kind"] == "Job"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "caikit.runtime.train"]
    arguments = dict(zip(container["args"][::2], container["args"][1::2]))
    registered = {f"{cls.__module__}.{cls.__name__}" for cls in caikit.core.registries.module_registry().values()}
    assert arguments["--module"] in registered
    assert DNS_1035.match(arguments["--model-name"])
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    (fail_on_user_error,) = [rule for rule in job["spec"]["podFailurePolicy"]["rules"] if rule["action"] == "FailJob"]
    assert fail_on_user_error["onExitCodes"]["values"] == [1]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"].endswith("-cuda")


def test_the_pytorchjob_is_shaped_as_the_training_operator_needs():
    """tests/test_distributed_training.py runs its command under torchrun with the operator's env."""
    (job,) = [obj for obj in build("training") if obj["kind"] == "PyTorchJob"]
    assert isinstance(job["spec"]["nprocPerNode"], str)
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] >= 1
    for role in ("Master", "Worker"):
        template = replicas[role]["template"]
        (container,) = template["spec"]["containers"]
        assert container["name"] == "pytorch"
        assert container["command"] == ["torchrun", "-m", "caikit.runtime.train"]
        assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
        assert replicas[role]["restartPolicy"] == "ExitCode"  # exit 1 is final, signals retry
    assert replicas["Master"]["template"] == replicas["Worker"]["template"]


def test_the_openshift_ai_templates_are_generated_from_the_runtimes():
    generator = os.path.join(DEPLOY, "openshift-ai", "generate_templates.py")
    check = subprocess.run([sys.executable, generator, "--check"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    for template in build("openshift-ai"):
        assert template["metadata"]["labels"]["opendatahub.io/dashboard"] == "true"
        assert template["metadata"]["namespace"] == "redhat-ods-applications"
        assert template["metadata"]["annotations"]["opendatahub.io/apiProtocol"] in ("REST", "gRPC")
        assert json.loads(template["metadata"]["annotations"]["opendatahub.io/modelServingSupport"]) == ["single"]


# -- the image ---------------------------------------------------------------------------------


def containerfile():
    with open(os.path.join(REPO_ROOT, "Containerfile"), encoding="utf-8") as text_file:
        return re.sub(r"\\\n", " ", text_file.read())


def image_env() -> dict:
    """The ENV of the Containerfile's last stage, as `KEY=value` pairs."""
    last_stage = containerfile().split("\nFROM ")[-1]
    env = {}
    for line in re.findall(r"^ENV (.*)$", last_stage, re.M):
        env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


def test_every_path_the_containerfile_copies_exists():
    copies = re.findall(r"^COPY (?!--from)(.*)$", containerfile(), re.M)
    assert copies
    for copy in copies:
        *sources, _ = copy.split()
        for source in sources:
            assert os.path.exists(os.path.join(REPO_ROOT, source)), f"Containerfile copies {source}, which is missing"
    text = containerfile()
    assert 'CMD ["python", "-m", "caikit.runtime"]' in text
    assert re.search(r"^USER 1001:0$", text, re.M)
    assert "COPY runtime_config.yaml " + image_env()["CONFIG_FILES"] in text


@pytest.fixture(scope="module")
def image_root():
    """A dir outside pytest's (which is private to its user) that another uid can read."""
    root = tempfile.mkdtemp(prefix="caikit-genai-image-")
    os.chmod(root, 0o755)
    yield pathlib.Path(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def clean_venv(image_root):
    """The package as a wheel, built from what the Containerfile's build stage copies (a clean
    tree: an in-place build would leave build/ in the checkout, and stale files in the wheel),
    installed with its dependencies into a fresh venv (pip's cache makes it a minute or two)."""
    source, wheels, venv = image_root / "src", image_root / "wheels", image_root / "venv"
    source.mkdir()
    for copied in ("pyproject.toml", "README.md", "caikit_genai"):
        if os.path.isdir(os.path.join(REPO_ROOT, copied)):
            shutil.copytree(
                os.path.join(REPO_ROOT, copied), source / copied, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(os.path.join(REPO_ROOT, copied), source / copied)
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(source)],
        check=True, env=pip_env, timeout=600,
    )
    subprocess.run([base_python(), "-m", "venv", str(venv)], check=True, timeout=120)
    (wheel,) = glob.glob(str(wheels / "caikit_genai-*.whl"))
    # As the Containerfile installs it: with the `tgis` extra (TGISTextGenerator).
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", wheel + "[tgis]"], check=True, env=pip_env, timeout=900)
    return venv


def world_readable(path: str) -> bool:
    """Whether any uid can reach and run `path` (every dir on the way is o+x)."""
    path = os.path.realpath(path)
    while path != "/":
        if not os.stat(path).st_mode & 0o001:
            return False
        path = os.path.dirname(path)
    return True


def base_python() -> str:
    """The Python 3.11 to build the venv from: a system one that another uid can run, as in the
    image, when there is one (this machine's own lives under a private /root)."""
    for candidate in ("/usr/bin/python3.11", sys.executable):
        if os.path.exists(candidate) and world_readable(candidate):
            return candidate
    return sys.executable


def container_env(runtime: dict, venv, root, ports: dict) -> dict:
    """What the container would see: the image's ENV, then the ServingRuntime's env, with the
    image's paths mapped into this test's dirs and the ports made free ones."""
    env = {**image_env()}
    env.update({item["name"]: item["value"] for item in runtime["spec"]["containers"][0]["env"]})
    mapped = {
        "/mnt/models": str(root / "mnt" / "models"),
        "/mnt/training_data": str(root / "mnt" / "training_data"),
        "/tmp/hf_home": str(root / "hf_home"),
        image_env()["CONFIG_FILES"]: str(root / "config" / "runtime_config.yaml"),
    }
    # The config, copied as the Containerfile copies it (the checkout itself may be unreadable
    # to the random uid, e.g. under a 0700 temp dir).
    (root / "config").mkdir(exist_ok=True)
    shutil.copy(os.path.join(REPO_ROOT, "runtime_config.yaml"), root / "config" / "runtime_config.yaml")
    os.chmod(root / "config" / "runtime_config.yaml", 0o644)
    env = {key: mapped.get(value, value) for key, value in env.items()}
    env["PATH"] = f"{venv}/bin:/usr/bin:/bin"
    env.update({f"RUNTIME_{kind}_PORT": str(port) for kind, port in ports.items()})
    return env


def openshift_uid_possible() -> bool:
    """A random uid in group 0 can be tried only as root, with a Python that uid can run."""
    return os.geteuid() == 0 and world_readable(base_python())


def as_openshift_user():
    """Run as a random uid in group 0, as OpenShift does."""
    if not openshift_uid_possible():
        return None

    def switch():
        os.setgroups([])
        os.setgid(0)
        os.setuid(OPENSHIFT_UID)

    return switch


@pytest.mark.parametrize("runtime_name", ["caikit-genai", "caikit-genai-http", "caikit-genai-grpc"])
def test_the_wheel_serves_a_model_as_the_serving_runtime_runs_it(runtime_name, clean_venv, image_root, runtime):
    tmp_path = image_root / runtime_name
    tmp_path.mkdir()
    manifest = next(obj for obj in build("runtimes") if obj["metadata"]["name"] == runtime_name)
    container = manifest["spec"]["containers"][0]
    models = tmp_path / "mnt" / "models"
    shutil.copytree(os.path.join(runtime.models_dir, "sentiment"), models / "sentiment")
    ports = {"HTTP": free_port(), "GRPC": free_port(), "METRICS": free_port()}
    env = container_env(manifest, clean_venv, tmp_path, ports)
    workdir = tmp_path / "work"
    workdir.mkdir()
    if openshift_uid_possible():
        for path in (tmp_path, workdir):
            os.chown(path, OPENSHIFT_UID, 0)
    # The image's CMD and the manifest's command agree; `python` is the venv's, first on PATH.
    assert container["command"] == ["python", "-m", "caikit.runtime"]
    with open(tmp_path / "server.log", "w", encoding="utf-8") as log:
        server = subprocess.Popen(  # pylint: disable=consider-using-with
            container["command"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=as_openshift_user()
        )
    try:
        probe = container["readinessProbe"]["exec"]["command"]
        deadline = time.monotonic() + 120
        while True:
            ready = subprocess.run(probe, env=env, cwd=workdir, capture_output=True, timeout=60, check=False)
            if ready.returncode == 0:
                break
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "never ready:\n" + (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(1)
        live = subprocess.run(container["livenessProbe"]["exec"]["command"], env=env, capture_output=True, timeout=60, check=False)
        assert live.returncode == 0, live.stderr
        text = {"text": "a moving, beautifully acted film"}
        if env["RUNTIME_HTTP_ENABLED"] == "true":
            answer = requests.post(
                f"http://127.0.0.1:{ports['HTTP']}/api/v1/task/text-classification",
                json={"model_id": "sentiment", "inputs": text["text"]}, timeout=60,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["results"][0]["label"] in ("positive", "negative")
        else:
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://127.0.0.1:{ports['HTTP']}/health", timeout=2)
        if env["RUNTIME_GRPC_ENABLED"] == "true":
            grpcurl = subprocess.run(
                [os.path.join(os.path.dirname(sys.executable), "grpcurl"), "-plaintext", "-H", "mm-model-id: sentiment",
                 "-d", json.dumps(text), f"127.0.0.1:{ports['GRPC']}", "caikit.runtime.Nlp.NlpService/TextClassificationTaskPredict"],
                capture_output=True, text=True, timeout=60, check=False,
            )
            assert grpcurl.returncode == 0, grpcurl.stderr
            assert json.loads(grpcurl.stdout)["results"][0]["label"] in ("positive", "negative")
    finally:
        server.terminate()
        server.wait(timeout=30)
    # The readiness command really probes the server: it fails once the server is gone.
    assert subprocess.run(probe, env=env, cwd=workdir, capture_output=True, timeout=60, check=False).returncode != 0


def test_the_image_venv_carries_the_tgis_extra(clean_venv):
    """The image serves TGIS-backed models too: caikit-tgis-backend is in its venv."""
    result = subprocess.run(
        [str(clean_venv / "bin" / "python"), "-c", "import caikit_genai.modules as m; print(m.TGISTextGenerator.__name__)"],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.stdout.strip() == "TGISTextGenerator", result.stderr[-2000:]
