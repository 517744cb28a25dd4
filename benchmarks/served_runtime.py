"""`python -m caikit.runtime` in a subprocess on free loopback ports, for the benchmarks that
measure the runtime from outside (serving.py, overload.py): this repo's runtime_config.yaml,
a temp working dir whose `models/` holds links to the model dirs to serve, and its log; it
imports this checkout's caikit_genai."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, Optional

import requests

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServedRuntime:
    """The runtime serving `models` ({model id: model dir}); `env` adds or overrides variables
    (caikit reads any config key from one, e.g. RUNTIME_SERVER_THREAD_POOL_SIZE)."""

    def __init__(self, models: Dict[str, str], env: Optional[Dict[str, str]] = None):
        self.workdir = tempfile.mkdtemp(prefix="served-runtime-")
        models_dir = os.path.join(self.workdir, "models")
        os.makedirs(models_dir)
        for model_id, model_dir in models.items():
            os.symlink(os.path.abspath(model_dir), os.path.join(models_dir, model_id))
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        environment = {
            **os.environ,
            "CONFIG_FILES": os.path.join(REPO_ROOT, "runtime_config.yaml"),
            "RUNTIME_LOCAL_MODELS_DIR": models_dir,
            "RUNTIME_GRPC_PORT": str(self.grpc_port),
            "RUNTIME_HTTP_PORT": str(self.http_port),
            "RUNTIME_METRICS_PORT": str(self.metrics_port),
            # This checkout's caikit_genai, whatever checkout the venv was installed from.
            "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])),
            "HF_HUB_OFFLINE": "1",
            "LOG_LEVEL": "warning",
            **(env or {}),
        }
        self.started = time.perf_counter()
        self.log = open(os.path.join(self.workdir, "runtime.log"), "w", encoding="utf-8")  # pylint: disable=consider-using-with
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "caikit.runtime"], cwd=self.workdir, env=environment, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.http = f"http://127.0.0.1:{self.http_port}"

    def wait_ready(self, model_answers: Callable[[str], bool], timeout: float = 120.0) -> float:
        """Seconds from start until /health answers and `model_answers(http_url)` is true."""
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"runtime exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.http + "/health", timeout=2).status_code == 200 and model_answers(self.http):
                    return time.perf_counter() - self.started
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"runtime not ready after {timeout} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as log:
            return log.read()[-chars:]

    def rss_bytes(self) -> int:
        """The runtime process's resident memory (VmRSS), in bytes."""
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
