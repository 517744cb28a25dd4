"""deploy/ and the Containerfile, checked as far as this machine can without a cluster or a
container engine:

- every kustomization builds offline (`kubectl kustomize`), and what it builds validates against
  the real CRD schemas (KServe v0.15.2, Kubeflow v1; ../shared/schemas) in strict mode, with
  core kinds checked by `kubernetes-validate`;
- the cross-checks no schema makes: an InferenceService names a ServingRuntime of its own set
  that supports its model format; names are DNS-1035 labels of at most 53 characters; a runtime
  that Serverless InferenceServices use has one port;
- what KServe and OpenShift AI do with the manifests, replayed from their source (cited at each
  test): which container port the InferenceService URL reaches, auth and dashboard markers, the
  volumes' access modes, the model loader's dirs, one image name for every kustomization, threads
  from the CPU limit, GPU tolerations, one object per `oc create`, training and model management
  off in serving;
- the image: every path the Containerfile copies exists; the venv is copied once, owned as it
  lands; a pinned base, OCI labels, a .containerignore; the wheel builds and installs into a
  clean venv; that venv, started with the image's ENV plus exactly the env and command of each
  ServingRuntime, serves a model dir laid out as /mnt/models/<id>/, passes the manifest's own
  readiness and liveness commands, logs JSON, and refuses model management and training. When
  this runs as root, the server runs as an OpenShift-style random uid in group 0, so model files
  must be group-readable.
"""

import glob
import hashlib
import importlib
import json
import math
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
DEFAULT_MODELS = ("sentiment", "char-austen", "translator-en-id", "dcgan-fashion", "attention-minilm")
# The pages whose cluster commands these tests check (docs/training.md has the training Jobs).
CLUSTER_PAGES = [os.path.join(REPO_ROOT, "docs", page) for page in ("deployment.md", "training.md")]


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


def containers(obj):
    """Every container of an object, wherever its pod template sits (a Deployment, a ServingRuntime's
    spec, a PyTorchJob's replica templates, a Template's objects): as kustomize's image
    transformer finds them."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from value
            else:
                yield from containers(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from containers(value)


def quantity(text: str) -> float:
    """A Kubernetes CPU quantity: "2", "1.5", "500m"."""
    text = str(text)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def resolved_env(container: dict) -> dict:
    """The container's env as the kubelet sets it: a `resourceFieldRef` on limits.cpu becomes the
    container's CPU limit over the divisor, rounded up (as the Downward API rounds it)."""
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        field = item["valueFrom"]["resourceFieldRef"]
        assert field["resource"] == "limits.cpu", field
        limit = container["resources"]["limits"]["cpu"]
        env[item["name"]] = str(math.ceil(quantity(limit) / quantity(field.get("divisor", "1"))))
    return env


def image_component() -> dict:
    """deploy/image's `images:`: placeholder name -> the image every manifest gets."""
    with open(os.path.join(DEPLOY, "image", "kustomization.yaml"), encoding="utf-8") as source:
        component = yaml.safe_load(source)
    return {entry["name"]: f"{entry['newName']}:{entry['newTag']}" for entry in component["images"]}


def pyproject() -> dict:
    """pyproject.toml's top-level `key = "value"` strings (name, version, license...)."""
    with open(os.path.join(REPO_ROOT, "pyproject.toml"), encoding="utf-8") as source:
        return dict(re.findall(r'^(\w[\w-]*) = "([^"]*)"$', source.read(), re.M))


def documented_commands(prefix: str) -> list:
    """The command lines of docs/deployment.md and docs/training.md that start with `prefix`."""
    lines = []
    for path in CLUSTER_PAGES:
        with open(path, encoding="utf-8") as page:
            lines += [line.strip() for line in page if line.strip().startswith(prefix)]
    return lines


def test_every_kustomization_is_found():
    expected = {".", "serverless", "openshift-ai", "runtimes", "image", "storage/rwx", "training/job", "training/pytorchjob"}
    assert expected <= set(kustomizations())


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
        env = resolved_env(container)
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
    # caikit's train entry point imports the --module path: it must name a registered module class.
    package, _, name = arguments["--module"].rpartition(".")
    named = getattr(importlib.import_module(package), name)
    assert named in caikit.core.registries.module_registry().values()
    assert f"{named.__module__}.{named.__name__}" == arguments["--module"]  # what caikit matches it against
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


# -- what KServe and OpenShift AI do with the manifests ----------------------------------------


def predictor_service_ports(container: dict) -> list:
    """The RawDeployment predictor Service's ports, as KServe builds them (kserve
    pkg/controller/v1beta1/inferenceservice/reconcilers/service/service_reconciler.go,
    createDefaultSvc): port 80 -> the FIRST container port, with its name; every later port under
    its own number. OpenShift AI's build names an unnamed first port "http"
    (opendatahub-io/kserve service_reconciler_odh.go, buildServiceList)."""
    first, *later = container["ports"]
    ports = [{"name": first.get("name") or "http", "port": 80, "targetPort": first["containerPort"]}]
    ports += [{"name": port.get("name", ""), "port": port["containerPort"], "targetPort": port["containerPort"]} for port in later]
    return ports


def route_target_port(service_ports: list) -> int:
    """The container port odh-model-controller's Route for a raw InferenceService reaches with auth
    off: the Service port named "http", else the first named one, else the first
    (internal/controller/serving/reconcilers/kserve_raw_route_reconciler.go, setRouteTargetPort)."""
    named = [port for port in service_ports if port["name"]]
    chosen = next((port for port in service_ports if port["name"] == "http"), named[0] if named else service_ports[0])
    return chosen["targetPort"]


def auth_proxy_upstream(container: dict) -> int:
    """With `security.opendatahub.io/enable-auth`, the Route re-encrypts to an auth proxy that
    forwards to the kserve-container's FIRST port (opendatahub-io/kserve
    reconcilers/deployment, addOauthContainerToDeployment -> GetKServeContainerPort)."""
    return container["ports"][0]["containerPort"]


def raw_inference_services():
    """(kustomization, InferenceService, its runtime) for every RawDeployment one."""
    for kustomization in kustomizations():
        objects = resources(build(kustomization))
        runtimes = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "ServingRuntime"}
        for service in (obj for obj in objects if obj["kind"] == "InferenceService"):
            if service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment":
                yield kustomization, service, runtimes[service["spec"]["predictor"]["model"]["runtime"]]


def test_the_inference_service_url_reaches_http_and_grpc_keeps_8085():
    """Replays KServe's Service and odh-model-controller's Route choice: the URL (auth off or on)
    reaches HTTP 8080, and a runtime serving gRPC keeps it on Service port 8085, named h2c. With
    gRPC listed first, as before, the URL reached gRPC."""
    checked = 0
    for kustomization, service, runtime in raw_inference_services():
        container = runtime["spec"]["containers"][0]
        env = resolved_env(container)
        assert env["RUNTIME_HTTP_ENABLED"] == "true", f"{kustomization}: {service['metadata']['name']} has no HTTP"
        ports = predictor_service_ports(container)
        where = f"{kustomization}: {service['metadata']['name']} -> {runtime['metadata']['name']}"
        assert route_target_port(ports) == 8080, where
        assert auth_proxy_upstream(container) == 8080, where
        if env["RUNTIME_GRPC_ENABLED"] == "true":
            assert {"name": "h2c", "port": 8085, "targetPort": 8085} in ports, where
        checked += 1
    assert checked >= len(DEFAULT_MODELS)
    swapped = {"ports": [{"containerPort": 8085, "name": "h2c"}, {"containerPort": 8080, "name": "http1"}]}
    assert route_target_port(predictor_service_ports(swapped)) == 8085 == auth_proxy_upstream(swapped)


def test_inference_services_ask_for_a_token_and_the_dashboard_lists_them():
    """`security.opendatahub.io/enable-auth` is an annotation: odh-model-controller reads
    isvc.Annotations (kserve_raw_route_reconciler.go; resources/authconfig.go,
    kserveAuthTypeDetector.Detect), and so does OpenShift AI's KServe (ODHKserveRawAuth). The
    dashboard lists objects labelled `opendatahub.io/dashboard: "true"`."""
    for kustomization in (".", "serverless"):
        for service in (obj for obj in build(kustomization) if obj["kind"] == "InferenceService"):
            metadata, where = service["metadata"], f"{kustomization}: {service['metadata']['name']}"
            assert metadata["annotations"].get("security.opendatahub.io/enable-auth") == "true", where
            assert "security.opendatahub.io/enable-auth" not in metadata.get("labels", {}), where
            assert metadata["labels"]["opendatahub.io/dashboard"] == "true", where
            if metadata["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment":
                # A label, read from isvc.Labels: the Route, behind the token check above.
                assert metadata["labels"]["networking.kserve.io/visibility"] == "exposed", where
    for claim in build("storage"):
        assert claim["metadata"]["labels"]["opendatahub.io/dashboard"] == "true", claim["metadata"]["name"]


def test_volumes_bind_read_write_once_and_the_rwx_component_switches_them(tmp_path):
    claims = [obj for obj in build("storage") if obj["kind"] == "PersistentVolumeClaim"]
    assert {claim["metadata"]["name"] for claim in claims} == {"caikit-genai-models", "caikit-genai-training-data"}
    assert all(claim["spec"]["accessModes"] == ["ReadWriteOnce"] for claim in claims)
    deploy = os.path.relpath(DEPLOY, tmp_path)  # kustomize takes relative paths only
    for overlay in (".", "serverless"):
        (tmp_path / "kustomization.yaml").write_text(
            yaml.safe_dump({"resources": [f"{deploy}/{overlay}"], "components": [f"{deploy}/storage/rwx"]})
        )
        built = subprocess.run(["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, check=True).stdout
        switched = [obj for obj in yaml.safe_load_all(built) if obj and obj["kind"] == "PersistentVolumeClaim"]
        assert len(switched) == 2 and all(claim["spec"]["accessModes"] == ["ReadWriteMany"] for claim in switched)


def test_the_model_loader_makes_the_dirs_readme_copies_into(tmp_path):
    """The loader's own command, run with /models mapped to a temp dir, makes /models/<name>/ for
    each default model, and its readiness probe passes only then; docs/deployment.md's `oc cp` commands copy
    all five default models into those dirs. Its image is the runtime's (UBI 9 python-311 has the
    tar `oc cp` needs: sclorg s2i-base-container core/Dockerfile.rhel9 installs it)."""
    (pod,) = build("model-loader")
    (container,) = pod["spec"]["containers"]

    def run_mapped(command):
        shell, flag, script = command
        return subprocess.run([shell, flag, script.replace("/models", str(tmp_path))], capture_output=True, timeout=30, check=False)

    probe = container["readinessProbe"]["exec"]["command"]
    assert run_mapped(probe).returncode != 0, "ready before the dirs exist"
    script = container["command"][2]
    assert script.endswith("exec sleep 3600")
    assert run_mapped([*container["command"][:2], script.replace("exec sleep 3600", "true")]).returncode == 0
    assert run_mapped(probe).returncode == 0
    copies = [re.match(r"oc cp models/(\S+) model-loader:/models/(\S+)$", line) for line in documented_commands("oc cp ")]
    assert all(copies), documented_commands("oc cp ")
    assert sorted(match.group(1) for match in copies) == sorted(DEFAULT_MODELS)
    for match in copies:
        name, target = match.group(1), match.group(2)
        assert target == f"{name}/{name}" and (tmp_path / name).is_dir(), target
    runtime = next(obj for obj in build("runtimes") if obj["kind"] == "ServingRuntime")
    assert container["image"] == runtime["spec"]["containers"][0]["image"]
    assert containerfile_arg("BASE_IMAGE").startswith("registry.access.redhat.com/ubi9/python-311:")


@pytest.mark.parametrize("kustomization", kustomizations())
def test_every_image_comes_from_the_one_component(kustomization):
    """deploy/image names the images; every kustomization renders only those: the CUDA one for
    the training Jobs, the serving one everywhere else (a placeholder left unmapped fails)."""
    images = image_component()
    for obj in resources(build(kustomization)):
        expected = images["caikit-genai-cuda" if obj["kind"] in ("Job", "PyTorchJob") else "caikit-genai"]
        for container in containers(obj):
            assert container["image"] == expected, f"{kustomization}: {obj['kind']} {obj['metadata']['name']}"


def test_the_manifests_name_only_placeholders():
    """No manifest names a registry image itself (templates.yaml is generated from the runtimes,
    so it carries the Component's); the tags follow pyproject's version."""
    placeholders = set(image_component())
    for path in glob.glob(f"{DEPLOY}/**/*.yaml", recursive=True):
        if os.path.basename(path) == "kustomization.yaml" or path.endswith("templates.yaml"):
            continue
        with open(path, encoding="utf-8") as source:
            for doc in yaml.safe_load_all(source):
                for container in containers(doc):
                    assert container["image"] in placeholders, f"{path}: {container['image']}"
    version = pyproject()["version"]
    assert image_component()["caikit-genai"].endswith(f":{version}")
    assert image_component()["caikit-genai-cuda"].endswith(f":{version}-cuda")


def workload_containers():
    """(where, container, pod spec's owner) for every ServingRuntime and training container."""
    for kustomization in ("runtimes", "tls", "openshift-ai", "training"):
        for obj in resources(build(kustomization)):
            if obj["kind"] in ("ServingRuntime", "Job", "PyTorchJob"):
                for container in containers(obj):
                    yield f"{kustomization}: {obj['kind']} {obj['metadata']['name']}", container, obj


def test_threads_follow_the_containers_cpu_limit():
    """OMP_NUM_THREADS comes from the container's own CPU limit (Downward API, rounded up), not the
    node's core count; a PyTorchJob's divisor is its processes per pod."""
    count = 0
    for where, container, owner in workload_containers():
        (item,) = [item for item in container["env"] if item["name"] == "OMP_NUM_THREADS"]
        field = item["valueFrom"]["resourceFieldRef"]
        divisor = owner["spec"]["nprocPerNode"] if owner["kind"] == "PyTorchJob" else "1"
        assert field == {"resource": "limits.cpu", "divisor": divisor}, where
        limit = container["resources"]["limits"]["cpu"]
        assert resolved_env(container)["OMP_NUM_THREADS"] == str(math.ceil(quantity(limit) / quantity(divisor))), where
        count += 1
    assert count == 3 + 2 + 3 + 3  # the runtimes, the two templates, the TLS runtimes, the Job and the PyTorchJob's two roles


def test_training_pods_tolerate_gpu_taints():
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    jobs = [obj for obj in build("training") if obj["kind"] in ("Job", "PyTorchJob")]
    templates = [job["spec"]["template"] for job in jobs if job["kind"] == "Job"]
    templates += [spec["template"] for job in jobs if job["kind"] == "PyTorchJob" for spec in job["spec"]["pytorchReplicaSpecs"].values()]
    assert len(templates) == 3
    for template in templates:
        assert toleration in template["spec"]["tolerations"]


def test_each_documented_create_command_creates_exactly_one_job():
    """`oc create` cannot re-create what exists (AlreadyExists), and `-f` skips kustomize (and the
    image from deploy/image): each documented command creates one Job, each Job once."""
    creates = [command for command in documented_commands("oc create ") if command.split()[2] in ("-k", "-f")]
    assert sorted(creates) == ["oc create -k deploy/training/job", "oc create -k deploy/training/pytorchjob"], creates
    for command in creates:
        (job,) = build(os.path.relpath(command.split()[-1], "deploy"))
        assert job["kind"] in ("Job", "PyTorchJob")


def test_serving_keeps_training_and_model_management_off():
    """Serving runtimes generate no train RPCs or routes (training runs as Jobs), and nothing turns
    model management (deploying/undeploying models over the network) on."""
    runtimes = [obj for k in kustomizations() for obj in resources(build(k)) if obj["kind"] == "ServingRuntime"]
    assert len(runtimes) >= 8
    for runtime in runtimes:
        env = resolved_env(runtime["spec"]["containers"][0])
        assert env["RUNTIME_SERVICE_GENERATION_ENABLE_TRAINING"] == "false", runtime["metadata"]["name"]
    for kustomization in kustomizations():
        for obj in resources(build(kustomization)):
            for container in containers(obj):
                value = resolved_env(container).get("GENAI_MODEL_MANAGEMENT_ENABLED", "false")
                assert value.lower() in ("false", "0", "no", "off"), f"{kustomization}: {obj['metadata']['name']}"
    with open(os.path.join(REPO_ROOT, "runtime_config.yaml"), encoding="utf-8") as config:
        genai = yaml.safe_load(config).get("genai") or {}
    assert (genai.get("model_management") or {}).get("enabled", False) is False


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


def containerfile_arg(name: str) -> str:
    """An ARG's default, e.g. BASE_IMAGE."""
    (value,) = re.findall(rf"^ARG {name}=(\S+)$", containerfile(), re.M)
    return value


def copy_sources(copy: str) -> list:
    """The sources of a `COPY [--flag ...] src... dest` line."""
    *sources, _ = [word for word in copy.split() if not word.startswith("--")]
    return sources


def test_every_path_the_containerfile_copies_exists():
    copies = re.findall(r"^COPY (?!--from)(.*)$", containerfile(), re.M)
    assert copies
    for copy in copies:
        for source in copy_sources(copy):
            assert os.path.exists(os.path.join(REPO_ROOT, source)), f"Containerfile copies {source}, which is missing"
    text = containerfile()
    assert 'CMD ["python", "-m", "caikit.runtime"]' in text
    assert re.search(r"^USER 1001:0$", text, re.M)
    assert re.search(r"^COPY (--\S+ )*runtime_config.yaml " + re.escape(image_env()["CONFIG_FILES"]) + "$", text, re.M)


def test_the_venv_is_copied_once_owned_as_it_lands():
    """`COPY --chown` writes the venv (torch included) once; a recursive chown or chmod over it
    (or a dir above it) afterwards would store every file a second time in a new layer."""
    last_stage = containerfile().split("\nFROM ")[-1]
    venv = "/opt/caikit-genai/venv"
    assert re.search(rf"^COPY --from=build --chown=1001:0 {venv} {venv}$", last_stage, re.M)
    for run in re.findall(r"^RUN (.*)$", last_stage, re.M):
        for command in re.split(r"&&|;", run):
            words = command.split()
            if words and words[0] in ("chown", "chmod") and any(flag in words for flag in ("-R", "--recursive")):
                paths = [word for word in words[1:] if word.startswith("/")]
                assert not [path for path in paths if venv.startswith(path.rstrip("/"))], f"recursive over the venv: {command}"


def test_the_base_image_is_pinned():
    """A rebuild gets the same base: a specific `<release>-<build>` tag (or a digest), never latest."""
    base = containerfile_arg("BASE_IMAGE")
    assert re.fullmatch(r"registry\.access\.redhat\.com/ubi9/python-311(:\d+\.\d+-\d+)?(@sha256:[0-9a-f]{64})?", base), base
    assert ":" in base.split("/")[-1] and "latest" not in base
    assert not re.search(r"^FROM (?!\$\{BASE_IMAGE\})", containerfile(), re.M), "every stage builds on BASE_IMAGE"


def test_the_image_carries_oci_labels_that_match_the_project():
    last_stage = containerfile().split("\nFROM ")[-1]
    labels = {}
    for line in re.findall(r"^LABEL (.*)$", last_stage, re.M):
        labels.update(re.findall(r'([\w.]+)="([^"]*)"', line))
    for key in ("title", "description", "source", "licenses", "version"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    project = pyproject()
    assert labels["org.opencontainers.image.licenses"] == project["license"] == "Apache-2.0"
    assert labels["org.opencontainers.image.version"] == "${VERSION}" and containerfile_arg("VERSION") == project["version"]
    assert labels["org.opencontainers.image.source"] == "${SOURCE_URL}" and containerfile_arg("SOURCE_URL").startswith("https://")


def test_the_build_context_leaves_out_big_and_private_files():
    import fnmatch  # pylint: disable=import-outside-toplevel

    with open(os.path.join(REPO_ROOT, ".containerignore"), encoding="utf-8") as ignore_file:
        patterns = [line.strip() for line in ignore_file if line.strip() and not line.startswith("#")]
    for needed in (".git", ".venv", ".data", ".whl", "models/", "training_data/", "**/__pycache__"):
        assert needed in patterns, needed
    copies = re.findall(r"^COPY (?!--from)(.*)$", containerfile(), re.M)
    for source in (source for copy in copies for source in copy_sources(copy)):
        for pattern in patterns:
            assert not fnmatch.fnmatch(source, pattern.rstrip("/")), f"{source} is ignored by {pattern}"


def test_the_image_logs_json():
    """caikit reads its log.formatter from env LOG_FORMATTER (json or pretty: caikit/config/config.yml);
    runtime_config.yaml's `pretty` is for a terminal. The served wheel's log is parsed below."""
    assert image_env()["LOG_FORMATTER"] == "json"


def test_the_modelcar_image_puts_the_model_where_the_runtime_serves_it():
    """KServe runs a modelcar as `ln -s /proc/$$/root/models /mnt/models` (its docs, "Serving
    models with OCI images"): the image's /models/<name>/ must be the runtime's models dir's
    <name>/, served as model id <name>, with a shell to run that in."""
    with open(os.path.join(DEPLOY, "modelcar", "Containerfile"), encoding="utf-8") as source:
        text = source.read()
    assert re.search(r"^ARG BASE_IMAGE=docker\.io/library/busybox:\d+\.\d+$", text, re.M)
    assert re.search(r"^COPY \$\{MODEL\} /models/\$\{MODEL\}$", text, re.M)
    assert text.rstrip().endswith("COPY --from=files /models /models")
    runtime = next(obj for obj in build("runtimes") if obj["kind"] == "ServingRuntime")
    assert resolved_env(runtime["spec"]["containers"][0])["RUNTIME_LOCAL_MODELS_DIR"] == "/mnt/models"


def test_the_license_is_the_apache_2_text_pyproject_names():
    """LICENSE is the unmodified Apache License 2.0 (the md5 of apache.org's LICENSE-2.0.txt, also
    Debian's /usr/share/common-licenses/Apache-2.0), the licence pyproject and the image name."""
    with open(os.path.join(REPO_ROOT, "LICENSE"), "rb") as license_file:
        text = license_file.read()
    assert hashlib.md5(text).hexdigest() == "3b83ef96387f14655fc854ddc3c6bd57"
    assert pyproject()["license"] == "Apache-2.0"


def test_the_licence_page_covers_every_default_model():
    with open(os.path.join(REPO_ROOT, "docs", "licenses.md"), encoding="utf-8") as page:
        text = page.read()
    for name in (*DEFAULT_MODELS, "sentiment-minilm"):
        assert re.search(rf"^#+ .*`{re.escape(name)}`", text, re.M), f"docs/licenses.md has no section for {name}"


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
    for copied in ("pyproject.toml", "README.md", "caikit_genai", "caikit_genai_client"):
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
    """What the container would see: the image's ENV, then the ServingRuntime's env (a
    resourceFieldRef resolved against the manifest's limit), with the image's paths mapped into
    this test's dirs and the ports made free ones."""
    env = {**image_env()}
    env.update(resolved_env(runtime["spec"]["containers"][0]))
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


def assert_model_management_and_training_are_off(env: dict, ports: dict, models: pathlib.Path) -> None:
    """As the manifests run it: undeploying a model over the network is refused (HTTP 403, gRPC
    PERMISSION_DENIED, from runtime_config.yaml's genai.model_management.enabled: false) and the
    model stays on disk and served; no train route or RPC exists
    (RUNTIME_SERVICE_GENERATION_ENABLE_TRAINING=false; with training on, the route answers 400 and
    reflection lists caikit.runtime.Nlp.NlpTrainingService and caikit.runtime.training.TrainingManagement)."""
    if env["RUNTIME_HTTP_ENABLED"] == "true":
        base = f"http://127.0.0.1:{ports['HTTP']}"
        undeploy = requests.delete(f"{base}/management/models", params={"model_id": "sentiment"}, timeout=60)
        assert undeploy.status_code == 403, (undeploy.status_code, undeploy.text)
        train = requests.post(f"{base}/api/v1/TextClassificationTaskSentimentClassifierTrain", json={}, timeout=60)
        assert train.status_code in (404, 405), (train.status_code, train.text)
        still = requests.post(f"{base}/api/v1/task/text-classification", json={"model_id": "sentiment", "inputs": "fine"}, timeout=60)
        assert still.status_code == 200, still.text
    if env["RUNTIME_GRPC_ENABLED"] == "true":
        grpcurl = [os.path.join(os.path.dirname(sys.executable), "grpcurl"), "-plaintext"]
        target = f"127.0.0.1:{ports['GRPC']}"
        listed = subprocess.run([*grpcurl, target, "list"], capture_output=True, text=True, timeout=60, check=False)
        services = listed.stdout.split()
        assert "caikit.runtime.models.ModelManagement" in services, listed
        assert not [service for service in services if "Training" in service], services
        undeploy = subprocess.run(
            [*grpcurl, "-d", json.dumps({"model_id": "sentiment"}), target, "caikit.runtime.models.ModelManagement/UndeployModel"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert undeploy.returncode != 0 and "PermissionDenied" in undeploy.stderr, (undeploy.stdout, undeploy.stderr)
    assert (models / "sentiment" / "config.yml").is_file()


@pytest.mark.parametrize("runtime_name", ["caikit-genai", "caikit-genai-http", "caikit-genai-grpc"])
@pytest.mark.slow
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
        assert_model_management_and_training_are_off(env, ports, models)
        # LOG_FORMATTER=json from the image's ENV: every line the server logged is one JSON object.
        logged = [line for line in (tmp_path / "server.log").read_text().splitlines() if line.strip()]
        assert logged and all(isinstance(json.loads(line), dict) for line in logged), logged[:5]
    finally:
        server.terminate()
        server.wait(timeout=30)
    # The readiness command really probes the server: it fails once the server is gone.
    assert subprocess.run(probe, env=env, cwd=workdir, capture_output=True, timeout=60, check=False).returncode != 0


@pytest.mark.slow
def test_the_image_venv_carries_the_tgis_extra(clean_venv):
    """The image serves TGIS-backed models too: caikit-tgis-backend is in its venv."""
    result = subprocess.run(
        [str(clean_venv / "bin" / "python"), "-c", "import caikit_genai.modules as m; print(m.TGISTextGenerator.__name__)"],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.stdout.strip() == "TGISTextGenerator", result.stderr[-2000:]


@pytest.mark.slow
def test_the_wheel_carries_the_client_and_its_command(clean_venv):
    """caikit_genai_client (the client and the `caikit-genai` command) is in the wheel beside the library."""
    result = subprocess.run([str(clean_venv / "bin" / "caikit-genai"), "classify", "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "usage: caikit-genai" in result.stdout, result.stderr[-2000:]
