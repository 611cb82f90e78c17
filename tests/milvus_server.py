"""A Milvus Lite gRPC server on a free loopback port, for test runs on the Milvus store.

A Milvus Lite `.db` file belongs to one process at a time, and the tests run the CLI in child
processes against the session's index; a server lets them all share it, the way services
share a Milvus server in production (the same client code, an http:// URI).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def lite_server(data_dir: Path, timeout_s: float = 60) -> Iterator[str]:
    """Runs `milvus-lite server` on 127.0.0.1 until the block ends; yields its URI."""
    port = _free_port()
    log = open(data_dir.parent / "milvus-lite-server.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "milvus_lite",
            "server",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"milvus-lite server exited with {process.returncode}; see {log.name}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=1),
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"milvus-lite server did not listen on port {port} in {timeout_s} s")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()
