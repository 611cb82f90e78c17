"""Milvus Lite opens its database file in one process only: serve says so instead of failing later."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.errors import ConfigError
from assistant.onnx_runtime import cpu_cores
from assistant.service.server import serve_workers
from tests.conftest import ROOT


def test_milvus_lite_gets_one_worker_and_a_server_gets_one_per_core(tmp_path: Path) -> None:
    # Explicit URIs: the Milvus rerun of the tests sets ASSISTANT_MILVUS_URI to a server.
    assert serve_workers(Settings(index_dir=tmp_path, store="milvus", milvus_uri=None)) == 1
    assert serve_workers(Settings(index_dir=tmp_path, store="milvus", milvus_uri=str(tmp_path / "m.db"))) == 1
    server = Settings(index_dir=tmp_path, store="milvus", milvus_uri="http://127.0.0.1:19530")
    assert serve_workers(server) == cpu_cores()
    assert serve_workers(Settings(index_dir=tmp_path, store="faiss")) == cpu_cores()
    with pytest.raises(ConfigError, match=r"--workers 1.*ASSISTANT_MILVUS_URI"):
        serve_workers(Settings(index_dir=tmp_path, store="milvus", milvus_uri=None, workers=2))


def test_serve_with_workers_over_milvus_lite_stops_at_once_with_the_fix(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(ASSISTANT_STORE="milvus", ASSISTANT_INDEX_DIR=str(tmp_path / "index"))
    done = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "serve", "--port", "0", "--workers", "2"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot share Milvus Lite" in done.stderr and "Traceback" not in done.stderr
