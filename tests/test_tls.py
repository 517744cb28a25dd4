"""TLS and mutual TLS (caikit's `runtime.tls.server.key/cert` and `runtime.tls.client.cert`), from
outside: `python -m caikit.runtime` started twice in its own process, once as README's TLS
command starts it (environment variables) and once with README's `tls.yaml` (mutual TLS), on
free ports, with certificates made here by `tls_test_tools` (caikit's own tests use it): a CA,
a server and a client certificate it signs, and a second CA with a client certificate of its own.

Every command of docs/reliability.md's "TLS and mutual TLS" runs here (tests/test_docs_commands.py skips them), and
caikit-nlp-client, requests, curl and grpcurl are the clients. Certificates name `localhost`,
which is 127.0.0.1 on these machines; caikit's readiness probe calls the servers by that name too.
"""

import os
import re
import shlex
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Dict, Optional, Tuple

import grpc
import pytest
import requests
import tls_test_tools
import yaml
from caikit_nlp_client import GrpcClient, HttpClient

from conftest import README_PROMPT_LINES, REPO_ROOT, free_port
from served_runtime import ServedRuntime, runtime_env
from test_deploy import build
from docs_pages import doc_blocks, shell_commands
from test_docs_commands import VENV_BIN, check_output
from tiny_models import TINY_CHAR_RECIPE, char_training_text

PAGE, SECTION = "docs/reliability.md", "TLS and mutual TLS"
MODEL_ID = "char-austen"  # the model README's calls name: a tiny stand-in here
GRPCURL = os.path.join(VENV_BIN, "grpcurl")
# README's paths are relative to the checkout (`tls/ca.crt`); here they are the test's files.
README_TLS_DIR = re.compile(r"(?<![\w/.])tls/")
# deploy/tls mounts the Secret here; its keys are README's file names.
DEPLOY_TLS_DIR = "/etc/caikit-genai/tls/"


# -- what README says ---------------------------------------------------------------------------


def section_commands():
    return [command for language, code in doc_blocks(PAGE, SECTION) if language == "sh" for command in shell_commands(code)]


def assignments(command: str) -> Tuple[Dict[str, str], str]:
    """The leading VAR=value words of a shell command, and the rest of it."""
    words = shlex.split(command)
    env = {}
    while words and re.match(r"^\w+=", words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    return env, " ".join(words)


def serve_commands() -> Dict[str, Dict[str, str]]:
    """README's three serve commands, by kind: the assignments each sets before `make serve`."""
    found = {}
    for command, _ in section_commands():
        env, rest = assignments(command)
        if not env:
            continue
        assert rest == "make serve", command
        kind = "config-files" if "CONFIG_FILES" in env else "mtls" if "RUNTIME_TLS_CLIENT_CERT" in env else "tls"
        assert kind not in found, f"README has two {kind} serve commands"
        found[kind] = env
    assert set(found) == {"config-files", "tls", "mtls"}, found
    return found


def readme_tls_yaml() -> dict:
    (code,) = [code for language, code in doc_blocks(PAGE, SECTION) if language == "yaml"]
    return yaml.safe_load(code)


def as_env_vars(config: dict, prefix: str = "") -> Dict[str, str]:
    """A config tree as the environment variables that set it (caikit's ALL_CAPS_SNAKE rule)."""
    env = {}
    for key, value in config.items():
        name = f"{prefix}_{key}" if prefix else key
        env.update(as_env_vars(value, name) if isinstance(value, dict) else {name.upper(): value})
    return env


def call_commands():
    """README's curl and grpcurl calls: (command, output lines, whether it shows a client certificate)."""
    calls = [(c, out) for c, out in section_commands() if c.startswith(("curl --cacert ", "grpcurl -cacert "))]
    return [(command, output, bool(re.search(r"(^|\s)--?cert\s", command))) for command, output in calls]


# -- certificates and runtimes ----------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> str:
    """README's file names: ca.crt, tls.key/tls.crt (the server), client.key/client.crt; plus
    other.key/other.crt, a client certificate of another CA."""
    directory = tmp_path_factory.mktemp("tls")
    ca_key = tls_test_tools.generate_key()[0]
    files = {"ca.crt": tls_test_tools.generate_ca_cert(ca_key, common_name="caikit-genai-test-ca")}
    for name in ("tls", "client"):
        key, cert = tls_test_tools.generate_derived_key_cert_pair(ca_key, san_list=["localhost"], common_name="caikit-genai-test-ca")
        files[f"{name}.key"], files[f"{name}.crt"] = key, cert
    other_key = tls_test_tools.generate_key()[0]
    files["other-ca.crt"] = tls_test_tools.generate_ca_cert(other_key, common_name="another-ca")
    files["other.key"], files["other.crt"] = tls_test_tools.generate_derived_key_cert_pair(
        other_key, san_list=["localhost"], common_name="another-ca"
    )
    for name, pem in files.items():
        (directory / name).write_text(pem)
    return str(directory)


def localize(text: str, certs: str, served: Optional["Served"] = None) -> str:
    text = README_TLS_DIR.sub(certs + "/", text)
    if served is not None:
        text = text.replace("localhost:8080", f"localhost:{served.http_port}")
        text = text.replace("localhost:8085", f"localhost:{served.grpc_port}")
    return text


class Served(ServedRuntime):
    """A runtime under TLS: its HTTPS URL, and the client certificate (cert, key) it wants (None
    under plain TLS)."""

    def __init__(self, directory, models_dir, overrides: Dict[str, str], client_cert: Optional[Tuple[str, str]]):
        super().__init__(env=overrides, workdir=directory, models_dir=models_dir, log_level=None)
        self.client_cert = client_cert

    @property
    def url(self) -> str:
        return f"https://localhost:{self.http_port}"

    def wait_until_serving(self, ca: str) -> None:
        """Until the model answers over HTTPS (with wait_for_initial_model_loads false, a first
        request is what loads it)."""
        body = {"model_id": MODEL_ID, "inputs": "It was", "parameters": {"max_new_tokens": 1}}
        url = f"{self.url}/api/v1/task/text-generation"
        self.wait_ready(
            lambda _: requests.post(url, json=body, verify=ca, cert=self.client_cert, timeout=30).status_code == 200,
            timeout=180,
        )


@pytest.fixture(scope="module")
def runtimes(certs, tmp_path_factory):
    """{"tls": ..., "mtls": ...}: README's TLS command and README's tls.yaml, started at once."""
    from caikit_genai import CharTextGenerator

    models = tmp_path_factory.mktemp("tls-models")
    generator = CharTextGenerator.train([char_training_text() + "\n" + README_PROMPT_LINES], max_new_tokens_limit=4096, **TINY_CHAR_RECIPE)
    generator.save(str(models / MODEL_ID))
    commands = serve_commands()
    with ExitStack() as running:
        tls_env = {name: localize(value, certs) for name, value in commands["tls"].items()}
        started = {"tls": running.enter_context(Served(tmp_path_factory.mktemp("tls-runtime"), models, tls_env, None))}

        mtls_dir = tmp_path_factory.mktemp("mtls-runtime")
        (mtls_dir / "tls.yaml").write_text(localize(yaml.safe_dump(readme_tls_yaml()), certs))
        # CONFIG_FILES=runtime_config.yaml,tls.yaml: the checkout's config, then README's file.
        files = [os.path.join(REPO_ROOT, name) if name == "runtime_config.yaml" else str(mtls_dir / name)
                 for name in commands["config-files"]["CONFIG_FILES"].split(",")]
        client = (os.path.join(certs, "client.crt"), os.path.join(certs, "client.key"))
        started["mtls"] = running.enter_context(Served(mtls_dir, models, {"CONFIG_FILES": ",".join(files)}, client))

        for served in started.values():
            served.wait_until_serving(os.path.join(certs, "ca.crt"))
        yield started


@pytest.fixture(scope="module")
def tls(runtimes) -> Served:
    return runtimes["tls"]


@pytest.fixture(scope="module")
def mtls(runtimes) -> Served:
    return runtimes["mtls"]


# -- clients ------------------------------------------------------------------------------------


def run(args, timeout=60) -> subprocess.CompletedProcess:
    """A client command, with the venv's grpcurl first on PATH."""
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def grpc_client(served: Served, ca: Optional[str], cert: Optional[Tuple[str, str]]) -> GrpcClient:
    if ca is None:
        return GrpcClient("localhost", served.grpc_port, insecure=True)
    if cert is None:
        return GrpcClient("localhost", served.grpc_port, ca_cert=ca)
    return GrpcClient("localhost", served.grpc_port, ca_cert=ca, client_cert=cert[0], client_key=cert[1])


def http_client(served: Served, ca: str, cert: Optional[Tuple[str, str]]) -> HttpClient:
    if cert is None:
        return HttpClient(served.url, ca_cert_path=ca)
    return HttpClient(served.url, ca_cert_path=ca, client_cert_path=cert[0], client_key_path=cert[1])


GENERATE = {"max_new_tokens": 20, "seed": 7}


def generate_on_both_wires(served: Served, ca: str, cert) -> None:
    """caikit-nlp-client over TLS: gRPC unary and streaming and HTTP give one text for one seed."""
    client = grpc_client(served, ca, cert)
    try:
        unary = client.generate_text(MODEL_ID, "It was", **GENERATE)
        streamed = list(client.generate_text_stream(MODEL_ID, "It was", **GENERATE))
    finally:
        client._close()  # pylint: disable=protected-access
    assert len(unary) == GENERATE["max_new_tokens"], unary
    assert len(streamed) == GENERATE["max_new_tokens"] and "".join(streamed) == unary
    assert http_client(served, ca, cert).generate_text(MODEL_ID, "It was", **GENERATE) == unary


def curl_health(served: Served, *flags: str) -> subprocess.CompletedProcess:
    return run(["curl", "-sS", "--max-time", "20", *flags, f"{served.url}/health"])


def grpcurl_health(served: Served, *flags: str) -> subprocess.CompletedProcess:
    # grpcurl redials a refused TLS handshake until -connect-timeout (10 s by default).
    return run([GRPCURL, "-connect-timeout", "5", "-max-time", "20", *flags, f"localhost:{served.grpc_port}", "grpc.health.v1.Health/Check"])


def ca_of(certs: str) -> str:
    return os.path.join(certs, "ca.crt")


def pair(certs: str, name: str) -> Tuple[str, str]:
    return os.path.join(certs, f"{name}.crt"), os.path.join(certs, f"{name}.key")


# -- TLS ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tls_serves_caikit_nlp_client_on_both_wires(tls, certs):
    generate_on_both_wires(tls, ca_of(certs), None)


@pytest.mark.slow
def test_tls_refuses_plaintext_clients_and_clients_that_do_not_trust_its_ca(tls, certs):
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://localhost:{tls.http_port}/health", timeout=20)
    with pytest.raises(RuntimeError, match="Could not connect"):
        grpc_client(tls, None, None)
    assert run([GRPCURL, "-plaintext", f"localhost:{tls.grpc_port}", "list"]).returncode != 0
    # Without the CA, clients do not trust the server (the system's trust store does not know it).
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{tls.url}/health", timeout=20)
    untrusting = curl_health(tls)
    assert untrusting.returncode == 60, untrusting.stderr  # curl: "SSL certificate problem"
    untrusting = grpcurl_health(tls)
    assert untrusting.returncode != 0 and "certificate" in untrusting.stderr, untrusting.stderr
    # The same clients, given the CA, get through.
    assert curl_health(tls, "--cacert", ca_of(certs)).stdout == "OK"
    assert '"SERVING"' in grpcurl_health(tls, "-cacert", ca_of(certs)).stdout


# -- mutual TLS ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_mtls_serves_clients_with_a_certificate_from_its_ca(mtls, certs):
    generate_on_both_wires(mtls, ca_of(certs), pair(certs, "client"))
    client_flags = ("--cert", pair(certs, "client")[0], "--key", pair(certs, "client")[1])
    assert curl_health(mtls, "--cacert", ca_of(certs), *client_flags).stdout == "OK"
    grpcurl_flags = ("-cacert", ca_of(certs), "-cert", pair(certs, "client")[0], "-key", pair(certs, "client")[1])
    assert '"SERVING"' in grpcurl_health(mtls, *grpcurl_flags).stdout


@pytest.mark.slow
@pytest.mark.parametrize("client", ["no certificate", "another CA's certificate"])
def test_mtls_refuses_clients_without_a_certificate_from_its_ca(mtls, certs, client):
    ca = ca_of(certs)
    cert = None if client == "no certificate" else pair(certs, "other")
    curl_flags = ("--cacert", ca) + (("--cert", cert[0], "--key", cert[1]) if cert else ())
    grpcurl_flags = ("-cacert", ca) + (("-cert", cert[0], "-key", cert[1]) if cert else ())
    body = {"model_id": MODEL_ID, "inputs": "It was", "parameters": {"max_new_tokens": 5}}
    # HTTP: the TLS handshake fails, so no request is read (requests' SSLError is a ConnectionError).
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{mtls.url}/api/v1/task/text-generation", json=body, verify=ca, cert=cert, timeout=20)
    with pytest.raises(requests.ConnectionError):
        http_client(mtls, ca, cert).generate_text(MODEL_ID, "It was", max_new_tokens=5)
    refused = curl_health(mtls, *curl_flags)
    assert refused.returncode != 0 and refused.stdout == "", (refused.returncode, refused.stdout)
    # gRPC: the channel never comes up (caikit-nlp-client's reflection call fails first).
    with pytest.raises(RuntimeError, match="Could not connect"):
        grpc_client(mtls, ca, cert)
    refused = grpcurl_health(mtls, *grpcurl_flags)
    assert refused.returncode != 0 and "SERVING" not in refused.stdout, refused.stdout
    # The runtime is no worse for it: the right certificate still gets through on both wires.
    client = grpc_client(mtls, ca, pair(certs, "client"))
    try:
        assert client.generate_text(MODEL_ID, "It was", max_new_tokens=5)
    finally:
        client._close()  # pylint: disable=protected-access
    assert http_client(mtls, ca, pair(certs, "client")).generate_text(MODEL_ID, "It was", max_new_tokens=5)


# -- caikit_genai_client and the caikit-genai command -------------------------------------------


@pytest.mark.slow
def test_caikit_genai_client_and_command_over_tls_and_mtls(runtimes, certs):
    from caikit_genai_client import TLS, Client, ClientError  # pylint: disable=import-outside-toplevel

    for served in runtimes.values():
        cert, key = served.client_cert or (None, None)
        with Client(grpc=f"localhost:{served.grpc_port}", http=served.url, tls=TLS(ca=ca_of(certs), cert=cert, key=key)) as client:
            texts = {client.generate(MODEL_ID, "It was", wire=wire, **GENERATE).text for wire in ("grpc", "http")}
            texts |= {"".join(c.text for c in client.generate_stream(MODEL_ID, "It was", wire=wire, **GENERATE)) for wire in ("grpc", "http")}
            assert len(texts) == 1 and len(texts.pop()) == GENERATE["max_new_tokens"]
    # Under mutual TLS, no client certificate: the handshake fails on both wires.
    with Client(grpc=f"localhost:{mtls_port(runtimes)}", http=runtimes["mtls"].url, tls=TLS(ca=ca_of(certs)), timeout=20) as client:
        for wire in ("grpc", "http"):
            with pytest.raises(ClientError) as refused:
                client.generate(MODEL_ID, "It was", wire=wire, max_new_tokens=5)
            assert refused.value.code == "UNAVAILABLE", refused.value
    # The command's TLS flags (one run: each pays the command's start-up, several seconds).
    command = [os.path.join(VENV_BIN, "caikit-genai"), "--grpc", f"localhost:{mtls_port(runtimes)}", "--ca", ca_of(certs)]
    client_flags = ["--cert", pair(certs, "client")[0], "--key", pair(certs, "client")[1]]
    answered = run(command + client_flags + ["generate", MODEL_ID, "It was", "--max-new-tokens", "5", "--json"], timeout=120)
    assert answered.returncode == 0 and '"generated_tokens": 5' in answered.stdout, answered.stderr[-2000:]


def mtls_port(runtimes) -> int:
    return runtimes["mtls"].grpc_port


# -- README -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_documented_tls_calls_run_against_the_runtimes(runtimes, certs):
    calls = call_commands()
    kinds = sorted((command.split()[0], shows_cert) for command, _, shows_cert in calls)
    assert kinds == [("curl", False), ("curl", True), ("grpcurl", False), ("grpcurl", True)], kinds
    for command, output_lines, shows_cert in calls:
        served = runtimes["mtls" if shows_cert else "tls"]
        result = run(["bash", "-c", localize(command, certs, served)])
        assert result.returncode == 0, f"{command}\nexit {result.returncode}: {result.stderr[-2000:]}"
        assert '"generated_text"' in result.stdout, result.stdout
        check_output(command, result.stdout, output_lines)
        if not shows_cert:
            # The TLS call, with no client certificate, gets nothing from the mutual TLS runtime.
            refused = run(["bash", "-c", localize(command, certs, runtimes["mtls"])])
            assert refused.returncode != 0 and "generated_text" not in refused.stdout, refused.stdout


def test_the_documented_config_forms_and_deploy_tls_set_the_same_keys():
    commands = serve_commands()
    assert commands["config-files"] == {"CONFIG_FILES": "runtime_config.yaml,tls.yaml"}
    from_yaml = as_env_vars(readme_tls_yaml())
    assert from_yaml == commands["mtls"], "README's tls.yaml and its mutual TLS command differ"
    assert set(from_yaml) == {"RUNTIME_TLS_SERVER_KEY", "RUNTIME_TLS_SERVER_CERT", "RUNTIME_TLS_CLIENT_CERT"}
    assert {k: v for k, v in commands["mtls"].items() if k != "RUNTIME_TLS_CLIENT_CERT"} == commands["tls"]
    # deploy/tls: the TLS command's keys, pointing at the mounted Secret, whose keys are README's names.
    for runtime in build("tls"):
        spec = runtime["spec"]
        container = spec["containers"][0]
        env = {item["name"]: item["value"] for item in container["env"] if item["name"].startswith("RUNTIME_TLS_")}
        assert env == {name: README_TLS_DIR.sub(DEPLOY_TLS_DIR, value) for name, value in commands["tls"].items()}
        (mount,) = container["volumeMounts"]
        assert mount["mountPath"] + "/" == DEPLOY_TLS_DIR and mount["readOnly"] is True
        (volume,) = [volume for volume in spec["volumes"] if volume["name"] == mount["name"]]
        assert volume["secret"]["secretName"] == "caikit-genai-tls"
    assert {runtime["metadata"]["name"] for runtime in build("tls")} == {obj["metadata"]["name"] for obj in build("runtimes")}


# -- health -------------------------------------------------------------------------------------


def probe(env: Dict[str, str], **overrides: str) -> subprocess.CompletedProcess:
    """`python -m caikit_health_probe readiness`, the manifests' probe, with a runtime's config."""
    return subprocess.run(
        [sys.executable, "-m", "caikit_health_probe", "readiness"], env={**env, **overrides},
        capture_output=True, text=True, timeout=60, check=False,
    )


def probe_passes(env: Dict[str, str], **overrides: str) -> bool:
    """As kubelet retries it: caikit's HTTP probe gives /health 10 ms (runtime.http.probe_timeout),
    which a busy 2-core machine can miss now and then, with or without TLS."""
    return any(probe(env, **overrides).returncode == 0 for _ in range(10))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["tls", "mtls"])
def test_health_over_https_and_caikit_probe(runtimes, certs, mode):
    served = runtimes[mode]
    health = requests.get(f"{served.url}/health", verify=ca_of(certs), cert=served.client_cert, timeout=20)
    assert health.status_code == 200 and health.text == "OK"
    # Prometheus' port is not TLS.
    assert "predict_rpc_count" in requests.get(f"http://127.0.0.1:{served.metrics_port}/metrics", timeout=20).text
    assert probe_passes(served.env)
    assert probe_passes(served.env, RUNTIME_HTTP_ENABLED="false")  # the gRPC half alone
    assert probe_passes(served.env, RUNTIME_GRPC_ENABLED="false")  # the HTTP half alone
    # Where nothing listens, the same probe fails.
    gone = {"RUNTIME_HTTP_PORT": str(free_port()), "RUNTIME_GRPC_PORT": str(free_port())}
    assert probe(served.env, **gone).returncode == 1
    assert probe(served.env, **gone, RUNTIME_HTTP_ENABLED="false").returncode == 1
    assert probe(served.env, **gone, RUNTIME_GRPC_ENABLED="false").returncode == 1


@pytest.fixture()
def mute_listener():
    """A TCP port that accepts connections and never says a word (neither TLS nor HTTP)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []

    def accept():
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for connection in accepted:
        connection.close()


def test_caikit_http_probe_under_mtls_only_checks_that_the_port_accepts_connections(certs, tmp_path, mute_listener):
    """caikit 0.28.3's HTTP probe passes requests (key, cert) where it wants (cert, key), fails on
    its own side, and counts that SSLError as a ready server (README says so). Should caikit fix
    it, this fails: README's health paragraph is then to be updated."""
    key, cert = os.path.join(certs, "tls.key"), os.path.join(certs, "tls.crt")
    tls_only = runtime_env(tmp_path, env={"RUNTIME_TLS_SERVER_KEY": key, "RUNTIME_TLS_SERVER_CERT": cert})
    tls_only.update(RUNTIME_HTTP_PORT=str(mute_listener), RUNTIME_GRPC_ENABLED="false")
    assert probe(tls_only).returncode == 1  # under TLS it waits for an answer and gets none
    mutual = {**tls_only, "RUNTIME_TLS_CLIENT_CERT": ca_of(certs)}
    assert probe(mutual).returncode == 0  # under mutual TLS a mute port is "ready"


@pytest.mark.parametrize("names, ready", [(["localhost", "caikit-genai.example"], True), (["caikit-genai.example"], False)])
def test_caikit_grpc_probe_needs_localhost_in_the_server_certificate(tmp_path, names, ready):
    """The probe dials localhost:<port> and checks the certificate against that name (README says
    so): a gRPC health server with TLS whose certificate names only the service's own name is
    never ready to it."""
    from grpc_health.v1 import health, health_pb2_grpc

    ca_key = tls_test_tools.generate_key()[0]
    key, cert = tls_test_tools.generate_derived_key_cert_pair(ca_key, san_list=names)
    (tmp_path / "tls.key").write_text(key)
    (tmp_path / "tls.crt").write_text(cert)
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key.encode(), cert.encode())]))
    server.start()
    try:
        env = runtime_env(tmp_path, env={"RUNTIME_TLS_SERVER_KEY": str(tmp_path / "tls.key"), "RUNTIME_TLS_SERVER_CERT": str(tmp_path / "tls.crt")})
        env.update(RUNTIME_GRPC_PORT=str(port), RUNTIME_HTTP_ENABLED="false")
        assert (probe(env).returncode == 0) is ready
    finally:
        server.stop(None)
