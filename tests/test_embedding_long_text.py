"""Questions longer than the model's window: read in windows that fit, on all three backends."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from assistant.config import Settings
from assistant.embedding import E5SmallEmbedder, Embedder, make_embedder
from assistant.embedding.base import embed_in_windows, fitting_windows

# A pasted paragraph that says nothing about the documents, repeated, then the question: about
# 540 MiniLM tokens and 630 e5 tokens, past both models' windows (256 and 512).
PASTED = (
    "I am preparing a briefing for our regional development agency. Over the past weeks I have "
    "read reports on how companies share workshops, how universities train apprentices, how "
    "local councils fund broadband in villages, and how harbours plan their logistics. Our "
    "board meets next month and wants a short, clear summary with sources it can check. "
)
SUBJECT = "Which partners hold a Gold label for cluster management excellence?"
LONG_QUESTION = PASTED * 8 + "So my question is: " + SUBJECT


def _count(embedder: Embedder) -> Callable[[str], int]:
    """The token count the embedder's query side uses."""
    if isinstance(embedder, E5SmallEmbedder):
        return lambda text: embedder.count(text, query=True)
    return embedder.window.count  # type: ignore[attr-defined,no-any-return]


def _max_tokens(embedder: Embedder) -> int:
    return int(embedder.window.max_tokens)  # type: ignore[attr-defined]


@pytest.fixture(scope="module", params=["onnx-int8", "torch", "e5-small"])
def embedder(request: pytest.FixtureRequest, real_embedder: Embedder) -> Iterator[Embedder]:
    """Each backend family: ONNX (the session's, int8 by default), torch, e5-small."""
    backend: str = request.param
    if backend == Settings().embedding_backend:
        yield real_embedder
        return
    if backend == "e5-small":
        yield E5SmallEmbedder(threads=1)
        return
    yield make_embedder("all-MiniLM-L6-v2", backend)


def test_windows_cover_every_word_once_and_each_fits() -> None:
    # Tokens here are words plus two special tokens, so a window holds three words.
    def count(text: str) -> int:
        return len(text.split()) + 2

    text = "  one two three four five six seven  "
    spans = fitting_windows(text, count, 5)
    assert [text[a:b] for a, b in spans] == ["one two three", "four five six", "seven"]
    assert fitting_windows("one two", count, 5) == [(0, 7)]


def test_a_word_longer_than_a_window_is_cut_inside() -> None:
    def count(text: str) -> int:
        return len(text) // 4 + 2

    text = "short " + "x" * 50 + " end"
    spans = fitting_windows(text, count, 6)
    assert all(count(text[a:b]) <= 6 for a, b in spans)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:], strict=False))
    assert "".join(text[a:b] for a, b in spans).replace(" ", "") == text.replace(" ", "")
    assert any(text[b - 1] == "x" and text[b] == "x" for _, b in spans)  # cut inside the word


def test_a_text_that_fits_gets_exactly_the_models_vector() -> None:
    calls: list[list[str]] = []

    def embed(texts: object) -> np.ndarray:
        calls.append(list(texts))  # type: ignore[call-overload]
        return np.eye(len(calls[-1]), 4, dtype=np.float32)

    out = embed_in_windows(["a b", "c"], lambda t: len(t.split()) + 2, 5, embed)
    assert calls == [["a b", "c"]]
    assert np.array_equal(out, np.eye(2, 4, dtype=np.float32))


def test_a_long_question_is_read_in_windows_that_each_fit(embedder: Embedder) -> None:
    count, limit = _count(embedder), _max_tokens(embedder)
    assert count(LONG_QUESTION) > limit
    spans = fitting_windows(LONG_QUESTION, count, limit)
    assert len(spans) > 1
    assert all(count(LONG_QUESTION[a:b]) <= limit for a, b in spans)
    assert " ".join(LONG_QUESTION[a:b] for a, b in spans).split() == LONG_QUESTION.split()


def test_a_long_question_gets_the_length_weighted_mean_of_its_windows(embedder: Embedder) -> None:
    vector = embedder.embed([LONG_QUESTION])[0]
    spans = fitting_windows(LONG_QUESTION, _count(embedder), _max_tokens(embedder))
    windows = embedder.embed([LONG_QUESTION[a:b] for a, b in spans])
    expected = sum((b - a) * row for (a, b), row in zip(spans, windows, strict=True))
    expected /= np.linalg.norm(expected)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    assert float(vector @ expected) > 0.9999
    # A short question beside a long one in the same call keeps its own vector.
    together = embedder.embed([SUBJECT, LONG_QUESTION])
    assert float(together[0] @ embedder.embed([SUBJECT])[0]) > 0.9999
    assert float(together[1] @ vector) > 0.9999


def test_every_part_of_a_long_question_counts(embedder: Embedder) -> None:
    # The question sits two windows into pasted text: reading only what fits first would
    # leave it out (the vector would be `first_window`'s); the windows' mean keeps it. Its
    # share is its share of the text, so the gain is modest (0.03 to 0.05 on the backends).
    first, *_ = fitting_windows(LONG_QUESTION, _count(embedder), _max_tokens(embedder))
    subject = embedder.embed([SUBJECT])[0]
    pasted_only = embedder.embed([PASTED * 8])[0]
    whole = embedder.embed([LONG_QUESTION])[0]
    first_window = embedder.embed([LONG_QUESTION[first[0] : first[1]]])[0]
    assert float(whole @ subject) > float(first_window @ subject) + 0.02
    assert float(whole @ subject) > float(pasted_only @ subject) + 0.02


def test_passages_longer_than_the_window_are_still_refused(embedder: Embedder) -> None:
    # Indexing must never cut a chunk silently: the chunker makes chunks fit instead.
    long_passage = "cluster " * 600
    with pytest.raises(ValueError, match="exceeds the window") as refused:
        embedder.embed_spans([long_passage], [[(0, 7)]])
    assert "cluster" not in str(refused.value)  # the text stays out of errors, hence logs
