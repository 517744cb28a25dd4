"""`python -m caikit.runtime` in a subprocess, as `make serve` starts it, on free loopback ports:
the one launcher of the benchmarks that measure the runtime from outside (serving.py,
overload.py) and of the tests that need a runtime process of their own (tests/conftest.py
imports it). This repo's runtime_config.yaml (then any extra config files), a working dir whose
`models/` holds links or copies of the model dirs to serve, and its log; it imports this
checkout's caikit_genai."""

import functools
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, Iterable, Optional

import grpc
import requests

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_CONFIG = os.path.join(REPO_ROOT, "runtime_config.yaml")


_HANDED_OUT = set()


def free_port() -> int:
    """A loopback port nothing listens on, drawn below the kernel's ephemeral range: a port the
    kernel hands out (bind to 0) is also where outgoing connections take their local ports, and
    one of them could take it in the seconds before a runtime binds it. Never the same one twice
    in a process."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as port_range:
            ephemeral_low = int(port_range.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    low = min(20000, ephemeral_low // 2)
    for _ in range(1000):
        port = random.randint(low, ephemeral_low - 1)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {low}-{ephemeral_low - 1}")


def runtime_env(
    workdir, models_dir=None, config_files: Iterable = (), env: Optional[Dict[str, Optional[str]]] = None
) -> Dict[str, str]:
    """The environment of a runtime serving `models_dir` (`workdir`/models by default) on free
    loopback ports: this repo's runtime_config.yaml, then `config_files`; `env` last, where
    None removes a variable (caikit reads any config key from one, e.g. RUNTIME_SERVER_THREAD_POOL_SIZE)."""
    models_dir = str(models_dir or os.path.join(workdir, "models"))
    environment = {
        **os.environ,
        "CONFIG_FILES": ",".join([REPO_CONFIG, *map(str, config_files)]),
        "RUNTIME_LOCAL_MODELS_DIR": models_dir,
        "RUNTIME_TRAINING_OUTPUT_DIR": models_dir,
        "RUNTIME_GRPC_PORT": str(free_port()),
        "RUNTIME_HTTP_PORT": str(free_port()),
        "RUNTIME_METRICS_PORT": str(free_port()),
        # caikit adds a plaintext unix socket (and its probe uses it) when /tmp/mmesh exists:
        # a dir that does not exist keeps runtimes side by side from sharing one.
        "RUNTIME_GRPC_UNIX_SOCKET_PATH": os.path.join(str(workdir), "no-mmesh", "grpc.sock"),
        # This checkout's caikit_genai, whatever checkout the venv was installed from.
        "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
    }
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = str(value)
    return environment


class ServedRuntime:
    """The runtime, started at once, serving `models` ({model id: model dir}) linked (or, with
    `copy_models`, copied) into `workdir`/models, or an existing `models_dir` as it is.

    Without a `workdir` it runs in a temp dir that stop() removes. `log_level` is caikit's
    (warning: the benchmarks' figures pay for no info lines; None keeps the environment's).
    stop() kills the process (SIGKILL): nothing after it is measured or checked.
    """

    def __init__(  # pylint: disable=too-many-arguments
        self,
        models: Optional[Dict[str, str]] = None,
        env: Optional[Dict[str, Optional[str]]] = None,
        *,
        workdir=None,
        models_dir=None,
        copy_models: bool = False,
        config_files: Iterable = (),
        log_level: Optional[str] = "warning",
        log_name: str = "runtime.log",
    ):
        self.owns_workdir = workdir is None
        self.workdir = tempfile.mkdtemp(prefix="served-runtime-") if workdir is None else str(workdir)
        self.models_dir = str(models_dir or os.path.join(self.workdir, "models"))
        os.makedirs(self.models_dir, exist_ok=True)
        for model_id, model_dir in (models or {}).items():
            served_dir = os.path.join(self.models_dir, model_id)
            if copy_models:
                shutil.copytree(model_dir, served_dir)
            else:
                os.symlink(os.path.abspath(model_dir), served_dir)
        log_env = {} if log_level is None else {"LOG_LEVEL": log_level}
        self.env = runtime_env(self.workdir, self.models_dir, config_files, {**log_env, **(env or {})})
        self.grpc_port, self.http_port, self.metrics_port = (
            int(self.env[f"RUNTIME_{server}_PORT"]) for server in ("GRPC", "HTTP", "METRICS")
        )
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.log_path = os.path.join(self.workdir, log_name)
        self.started = time.perf_counter()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(  # pylint: disable=consider-using-with
                [sys.executable, "-m", "caikit.runtime"], cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def http(self) -> str:
        """The benchmarks' name for http_url."""
        return self.http_url

    @property
    def pid(self) -> int:
        return self.process.pid

    @functools.cached_property
    def channel(self) -> grpc.Channel:
        """A plaintext gRPC channel to the runtime, opened on first use, closed by stop()."""
        return grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")

    def wait_ready(self, ready: Callable[[str], bool], timeout: float = 120.0) -> float:
        """Seconds from start until `ready(http_url)` is true (a request that fails is not ready
        yet); fails with the log's tail if the process exits or `timeout` passes."""
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"runtime exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if ready(self.http_url):
                    return time.perf_counter() - self.started
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"runtime not ready after {timeout} s:\n{self.log_tail()}")

    def log_text(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return log.read()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def rss_bytes(self) -> int:
        """The runtime process's resident memory (VmRSS), in bytes."""
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def stop(self) -> None:
        if "channel" in self.__dict__:
            self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "ServedRuntime":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
