"""The default backend: the model's ONNX export in ONNX Runtime, with the `tokenizers` library.

all-MiniLM-L6-v2's int8 export ships inside this package (`assistant/embedding_models/`), so the
default install needs neither torch nor the weights' package; an fp32 export or another model is
exported once with torch (the torch extra) into the model cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.embedding.base import (
    PACKAGED_MODELS,
    TORCH_EXTRA,
    WindowCounter,
    check_spans,
    embed_in_windows,
    model_window,
    pool_spans,
    require_torch_extra,
    resolve_model_dir,
    unit_vector,
    window_error,
)
from assistant.errors import ConfigError
from assistant.onnx_runtime import open_session

logger = logging.getLogger(__name__)


def default_model_cache() -> Path:
    """Returns where exported ONNX models go: $XDG_CACHE_HOME/assistant or ~/.cache/assistant."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "assistant"


# The int8 export of the default model ships in the package, with the files the ONNX embedder
# reads beside it, so the default backend needs no torch (MODEL_CARD.md there: how it is made).
SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "embedding_models"
SHIPPED_INT8 = "model-int8.onnx"
MODEL_FILES = ("tokenizer.json", "config.json", "sentence_bert_config.json")
# What exporting a model needs (the torch extra); the quantiser imports `onnx`.


def shipped_model_dir(model: str) -> Path | None:
    """Returns the package's folder holding the int8 ONNX export of `model`, or None if none ships."""
    if model not in PACKAGED_MODELS:
        return None
    folder = SHIPPED_MODELS / model.rsplit("/", 1)[-1]
    return folder if (folder / SHIPPED_INT8).is_file() else None


def cached_onnx_path(model_dir: Path, cache_dir: Path, *, quantized: bool = False) -> Path:
    """Returns where the ONNX export of a model is cached (whether or not it is there yet).

    The cache key holds the weights file's size and modification time, so a changed model is
    exported anew.
    """
    names = ("model.safetensors", "pytorch_model.bin")
    weights = next((model_dir / n for n in names if (model_dir / n).is_file()), None)
    if weights is None:
        raise ConfigError(f"no model weights (model.safetensors) in {model_dir}")
    stat = weights.stat()
    identity = f"{model_dir.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    key = hashlib.sha256(identity.encode()).hexdigest()
    folder = cache_dir / "onnx" / f"{model_dir.name}-{key[:16]}"
    return folder / ("model-int8.onnx" if quantized else "model.onnx")


def onnx_model_path(model_dir: Path, cache_dir: Path, *, quantized: bool = False) -> Path:
    """Returns the cached ONNX export of a model, exporting it first when missing.

    The export runs once per machine and model (it imports torch, about 10 s).
    """
    target = cached_onnx_path(model_dir, cache_dir, quantized=quantized)
    if target.is_file():
        return target
    import fcntl

    folder = target.parent
    fp32 = folder / "model.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    # One export at a time: a server and an `assistant index` may start together.
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not fp32.is_file():
            _export_onnx(model_dir, fp32)
        if quantized and not target.is_file():
            quantize_onnx(fp32, target)
    return target


def export_embedder(model: str, out_dir: Path) -> Path:
    """Exports a model to int8 ONNX in `out_dir`, with the files the ONNX embedder reads beside it.

    This makes the folder shipped in `embedding_models/` (`assistant export-embedder`); it
    needs the torch extra. Returns the ONNX file's path.
    """
    require_torch_extra("exporting a model to ONNX")
    model_dir = resolve_model_dir(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = Path(scratch) / "model.onnx"
        _export_onnx(model_dir, fp32)
        quantize_onnx(fp32, out_dir / SHIPPED_INT8)
    for name in MODEL_FILES:
        shutil.copyfile(model_dir / name, out_dir / name)
    return out_dir / SHIPPED_INT8


def _export_onnx(model_dir: Path, target: Path) -> None:
    # The transformer alone (token vectors out); pooling stays in numpy, as for late chunking.
    logger.info("exporting %s to ONNX (once): %s", model_dir, target)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import warnings

    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    class TokenVectors(torch.nn.Module):
        """The encoder called by keyword, so no release's argument order can shift the inputs."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(model_dir))

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            output = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return output.last_hidden_state

    model = TokenVectors()
    model.eval()
    sample = torch.ones((2, 8), dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    partial = target.with_suffix(f".{os.getpid()}.partial")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow
        torch.onnx.export(
            model,
            (sample, sample, torch.zeros_like(sample)),
            str(partial),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["token_embeddings"],
            dynamic_axes={
                "input_ids": axes,
                "attention_mask": axes,
                "token_type_ids": axes,
                "token_embeddings": axes,
            },
            opset_version=17,
            dynamo=False,
        )
    os.replace(partial, target)


def quantize_onnx(source: Path, target: Path) -> None:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # the quantiser needs the `onnx` package
        raise ConfigError(f"quantising a model needs the onnx package, in the torch extra: {TORCH_EXTRA}") from exc
    logger.info("quantising %s to int8 (once): %s", source, target)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    root = logging.getLogger()
    level = root.level
    # The quantiser logs advice on the root logger ("consider pre-processing"): not for users.
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(source), str(partial), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    os.replace(partial, target)


class OnnxEmbedder:
    """Embeds texts with an ONNX export of the model in ONNX Runtime: no torch at run time.

    The int8 export of all-MiniLM-L6-v2 ships in the package; any other model, or fp32, is
    exported once into `cache_dir`, which needs the torch extra.

    Tokenises with the `tokenizers` library and pools token vectors in numpy exactly as the
    sentence-transformers path does (mean over the text's tokens, special tokens included), so
    fp32 vectors match `SentenceTransformerEmbedder` to about 1e-6.

    Texts go through the model one at a time by default. The int8 model quantises its
    activations with one scale per input tensor, so in a batch a text's vector would depend on
    its neighbours (up to 0.03 a dimension): one at a time, a text always gets the same vector,
    whichever run, batch or Ray worker embeds it. It is also faster here, with no padding
    (160 corpus chunks: 1.9 s one at a time, 2.6 s in batches of 32, on 2 cores).
    """

    def __init__(
        self,
        model: str = "all-MiniLM-L6-v2",
        *,
        quantized: bool = False,
        cache_dir: Path | None = None,
        batch_size: int = 1,
        threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        shipped = shipped_model_dir(model) if quantized else None
        # The shipped folder holds the tokenizer and config too: the weights package is not needed.
        self.model_dir = shipped or resolve_model_dir(model)
        self.onnx_path = shipped / SHIPPED_INT8 if shipped else None
        self.backend = "onnx-int8" if quantized else "onnx"
        # The backend is part of the id: an index records it and a switch rebuilds the index.
        self.model_id = f"{model}@{self.backend}"
        self.quantized = quantized
        self.cache_dir = cache_dir or default_model_cache()
        if shipped is None and not cached_onnx_path(self.model_dir, self.cache_dir, quantized=quantized).is_file():
            # Refused now, not at the first question: the export needs the torch extra.
            require_torch_extra(f"the {self.backend} backend with {model} (exported to ONNX once)")
        self.batch_size = batch_size
        self.threads = threads
        self.window = WindowCounter(self.model_dir, model_window(self.model_dir))
        import json

        config = json.loads((self.model_dir / "config.json").read_text())
        self.dimension = int(config["hidden_size"])
        self._session: Any = None
        self._inputs: set[str] = set()
        self._lock = threading.Lock()

    @property
    def session(self) -> Any:
        """The ONNX Runtime session, created on first use (exporting the model if needed)."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    path = self.onnx_path or onnx_model_path(self.model_dir, self.cache_dir, quantized=self.quantized)
                    session = open_session(path, self.threads)
                    self._inputs = {i.name for i in session.get_inputs()}
                    self._session = session
        return self._session

    def fits(self, text: str) -> bool:
        """Tells whether the model reads `text` whole."""
        return self.window.fits(text)

    def _token_vectors(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Returns, per text, its token vectors and token offsets (padding removed)."""
        for text in texts:
            if not self.window.fits(text):
                raise window_error(self.window.count(text), self.window.max_tokens, "truncated")
        session = self.session
        encodings = self.window.tokenizer.encode_batch(list(texts))
        # Batches of similar length waste little on padding (sentence-transformers does the same).
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        out: list[tuple[np.ndarray, np.ndarray]] = [None] * len(texts)  # type: ignore[list-item]
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            (tokens,) = session.run(["token_embeddings"], feed)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                offsets = np.asarray(encodings[i].offsets, dtype=np.int64).reshape(n, 2)
                out[i] = (np.asarray(tokens[row, :n], dtype=np.float32), offsets)
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Returns unit-length float32 vectors; a text longer than the window is read in windows."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return embed_in_windows(texts, self.window.count, self.window.max_tokens, self._embed_fitting)

    def _embed_fitting(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, (matrix, _) in enumerate(self._token_vectors(texts)):
            vectors[i] = unit_vector(matrix.mean(axis=0))
        return vectors

    def embed_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Returns text vectors (mean of all token vectors) and late-chunked span vectors."""
        if not check_spans(texts, spans):
            return np.zeros((0, self.dimension), dtype=np.float32), []
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        span_vectors: list[np.ndarray] = []
        for i, (matrix, offsets) in enumerate(self._token_vectors(texts)):
            vectors[i], pooled = pool_spans(matrix, offsets, spans[i])
            span_vectors.append(pooled)
        return vectors, span_vectors
