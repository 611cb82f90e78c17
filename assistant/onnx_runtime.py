"""One way to open an ONNX model: the embedder and the reader share a process and its cores.

ONNX Runtime's threads spin for a while after each run, waiting for the next one. With two
models in one process (the embedder runs, then the reader reads eight sentences) and several
server workers, a spinning pool holds the core another one needs: the reader's p95 was 2.3x its
p50 with spinning, 1.2x without, at the same p50 (eval/bench, 107 gold questions).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def cpu_cores() -> int:
    """Returns the number of cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def open_session(path: Path, threads: int | None = None) -> Any:
    """Returns an ONNX Runtime CPU session for the model at `path`.

    Args:
        path: the .onnx file.
        threads: intra-op threads (None: one per core).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
