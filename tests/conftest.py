"""Shared fixtures: the real corpus, the real model loaded once, a built index, a fake embedder."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from assistant.config import Settings
from assistant.embedding import Embedder, make_embedder
from assistant.pipeline import Assistant

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
# The vector store every Settings of the run uses: `ASSISTANT_STORE=milvus pytest ...` runs the
# same tests on Milvus (Lite, unless ASSISTANT_MILVUS_URI names another Milvus).
STORE = os.environ.get("ASSISTANT_STORE", "faiss")

# Questions the tests ask of the real corpus. None is a question of the gold set
# (eval/gold.jsonl; tests/test_gold_set.py checks that no test copies one), so the gate keeps
# measuring questions no test was written against.
# A list whose items are each cited from their own section (one sentence says "This cluster").
# It asks what gold g037 asks, in other words: of the list questions tried on this corpus, only
# rephrasings of gold ones are answered item by item (test_extractive keeps two others as xfails).
LIST_QUESTION = "Which clusters have been awarded a Gold label?"
LIST_ITEMS = ("Plastipolis", "microTEC Südwest", "Pool-Net")
# A fact stated by one sentence of one section.
FACT_QUESTION = "How many members does Bwcon have?"
FACT = "600 members"
# A question the documents do not answer at all.
OUTSIDE_QUESTION = "What is the capital of Peru?"
# Follow-ups: "which one" after LIST_QUESTION, and "it" after a question about a name.
WHICH_ONE_FOLLOW_UP = "and which one has over 380 cluster partners?"
WHICH_ONE = "microTEC Südwest"
SUBJECT_QUESTION = "What is Eurecat?"
PRONOUN_FOLLOW_UP = "How many patents does it hold?"
PRONOUN_FACT = "73 patents"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks `slow` every test that needs the real embedding model (the `real_embedder`
    fixture, which `built_index` and `assistant` use): `pytest -m "not slow"` builds no real
    index.

    Tests that load a model another way (a CLI process, torch, e5, Ray) or take more than a
    few seconds for another reason carry the mark themselves.
    """
    for item in items:
        if "real_embedder" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def vector_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """On the Milvus store, a Milvus Lite server shared by this process and the CLI's."""
    if STORE != "milvus" or os.environ.get("ASSISTANT_MILVUS_URI"):
        yield STORE
        return
    from tests.milvus_server import lite_server

    with lite_server(tmp_path_factory.mktemp("milvus") / "data") as uri, pytest.MonkeyPatch.context() as env:
        env.setenv("ASSISTANT_MILVUS_URI", uri)  # children (the CLI) inherit it
        yield STORE


class CountingEmbedder:
    """Wraps an embedder and counts the texts it is asked to embed."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.model_id = inner.model_id  # type: ignore[attr-defined]
        self.dimension = inner.dimension  # type: ignore[attr-defined]
        self.texts: list[str] = []

    def fits(self, text: str) -> bool:
        return self.inner.fits(text)  # type: ignore[attr-defined,no-any-return]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        return self.inner.embed(texts)  # type: ignore[attr-defined,no-any-return]

    def embed_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        self.texts.extend(texts)
        return self.inner.embed_spans(texts, spans)  # type: ignore[attr-defined,no-any-return]


class FakeEmbedder:
    """A deterministic bag-of-words embedder: fast, and texts sharing words are similar."""

    model_id = "fake-hash-64"
    dimension = 64

    def __init__(self) -> None:
        self.calls = 0

    def fits(self, text: str) -> bool:
        return len(text.split()) <= 400

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                slot = int(hashlib.md5(word.encode()).hexdigest()[:8], 16) % self.dimension
                out[i, slot] += 1.0
            norm = np.linalg.norm(out[i]) or 1.0
            out[i] /= norm
        return out

    def embed_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        vectors = self.embed(texts)
        return vectors, [self.embed([t[a:b] for a, b in s]) for t, s in zip(texts, spans, strict=True)]


@pytest.fixture(scope="session")
def real_embedder() -> Embedder:
    """The configured embedder (by default all-MiniLM-L6-v2 on ONNX Runtime, int8), loaded once.

    It is the embedder the CLI and the server the tests start use too, so an index built here
    loads there; `ASSISTANT_EMBEDDING_BACKEND=torch pytest` runs everything on torch.
    """
    settings = Settings()
    embedder = make_embedder(settings.model, settings.embedding_backend, settings.model_cache_dir)
    embedder.embed(["warm up"])
    return embedder


@pytest.fixture(scope="session")
def built_index(tmp_path_factory: pytest.TempPathFactory, real_embedder: Embedder) -> Path:
    """The real corpus indexed with the real model, once per session."""
    index_dir = tmp_path_factory.mktemp("index")
    settings = Settings(corpus_dir=CORPUS, index_dir=index_dir, data_dir=index_dir / "data")
    Assistant(settings, embedder=real_embedder).index()
    return index_dir


@pytest.fixture(scope="session")
def assistant(built_index: Path, real_embedder: Embedder) -> Assistant:
    """An assistant answering from the session's real index."""
    settings = Settings(corpus_dir=CORPUS, index_dir=built_index, data_dir=built_index / "data")
    return Assistant(settings, embedder=real_embedder)


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """A writable copy of the real corpus."""
    target = tmp_path / "corpus"
    shutil.copytree(CORPUS, target)
    return target


@pytest.fixture
def fake_settings(tmp_path: Path, corpus_copy: Path) -> Iterator[Settings]:
    """Settings for a throwaway index of a corpus copy."""
    yield Settings(corpus_dir=corpus_copy, index_dir=tmp_path / "index", data_dir=tmp_path / "data")


def assert_citations_exact(assistant: Assistant, answer: object) -> None:
    """Every citation's quote must be the cited document's text at its offsets."""
    for citation in answer.citations:  # type: ignore[attr-defined]
        document = assistant.store.document(citation.doc)
        assert document.text[citation.start : citation.end] == citation.quote, citation
        assert citation.quote.strip(), citation
        assert f"[{citation.n}]" in answer.text  # type: ignore[attr-defined]
