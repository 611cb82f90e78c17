"""Gold questions -> answers -> the metrics of shared/design/EVAL.md.

Follow-up questions are answered with their `history`, exactly as the chat service passes a
conversation. The metric names and the JSON report are a contract other tools read.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from assistant.evaluation.gold import KINDS, GoldQuestion, contains, quote_spans
from assistant.records import Answer, Turn

ANSWER_METRICS = (
    "hit_at_k",
    "source_recall_at_k",
    "mrr",
    "key_fact_recall",
    "all_facts_rate",
    "citation_precision",
    "answer_rate_answerable",
)
SUMMARY_KEYS = (
    "questions",
    *ANSWER_METRICS,
    "abstention_accuracy_unanswerable",
    "answer_words_mean",
    "hits_chars_mean",
    "latency_ms_p50",
    "latency_ms_p95",
)


@dataclass
class QuestionResult:
    """One gold question, what the assistant did with it, and its metrics."""

    gold: GoldQuestion
    answer: Answer
    latency_ms: float
    metrics: dict[str, float | None]
    found_sources: int
    facts_found: list[str]
    failure: str = ""  # why it counts as failing, "" when it passes

    def to_dict(self) -> dict[str, Any]:
        """Returns the per-question entry of the JSON report."""
        data = self.answer.to_dict()
        return {
            "id": self.gold.id,
            "kind": self.gold.kind,
            "question": self.gold.question,
            "answer": data["answer"],
            "abstained": data["abstained"],
            "citations": data["citations"],
            "hits": [
                {k: h[k] for k in ("rank", "doc", "section", "start", "end", "score")} | {"chars": len(h["text"])}
                for h in data["hits"]
            ],
            "standalone_question": self.answer.standalone_question,
            "metrics": self.metrics,
            "confidence": self.answer.confidence,
            "failure": self.failure,
            "latency_ms": round(self.latency_ms, 2),
        }


@dataclass
class EvalReport:
    """A whole run: per-question results with the summary and per-kind metrics."""

    gold_path: str
    k: int
    results: list[QuestionResult]
    summary: dict[str, float | None] = field(default_factory=dict)
    by_kind: dict[str, dict[str, float | None]] = field(default_factory=dict)
    seconds: float = 0.0
    # What the answers depend on besides the code (`Assistant.setup`): answerer, its fitted
    # numbers, embedding model, corpus. A baseline records it.
    setup: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Returns the JSON report of EVAL.md."""
        return {
            "gold": self.gold_path,
            "k": self.k,
            "summary": self.summary,
            "by_kind": self.by_kind,
            "setup": self.setup,
            "questions": [r.to_dict() for r in self.results],
        }

    @property
    def failures(self) -> list[QuestionResult]:
        """The questions answered wrongly, in gold order."""
        return [r for r in self.results if r.failure]


def evaluate(
    ask: Callable[[str, Sequence[Turn], int], Answer],
    document_text: Callable[[str], str | None],
    gold: Sequence[GoldQuestion],
    *,
    k: int = 5,
    gold_path: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Answers every gold question and computes the metrics of EVAL.md."""
    started = time.perf_counter()
    texts: dict[str, str | None] = {}

    def text_of(doc_id: str) -> str | None:
        if doc_id not in texts:
            texts[doc_id] = document_text(doc_id)
        return texts[doc_id]

    results = []
    for i, question in enumerate(gold):
        if progress:
            progress(i, len(gold))
        history = [Turn(t.role, t.content) for t in question.history]
        t0 = time.perf_counter()
        answer = ask(question.question, history, k)
        latency = (time.perf_counter() - t0) * 1000
        results.append(_score(question, answer, latency, text_of))
    if progress:
        progress(len(gold), len(gold))
    report = EvalReport(gold_path=gold_path, k=k, results=results)
    report.summary = summarise(results)
    report.by_kind = {
        kind: summarise([r for r in results if r.gold.kind == kind])
        for kind in KINDS
        if any(r.gold.kind == kind for r in results)
    }
    report.seconds = time.perf_counter() - started
    return report


def _score(gold: GoldQuestion, answer: Answer, latency: float, text_of: Callable[[str], str | None]) -> QuestionResult:
    metrics: dict[str, float | None] = {}
    hits = answer.hits
    metrics["hits_chars"] = float(sum(len(h.chunk.text) for h in hits))
    if not gold.answerable:
        metrics["abstained"] = float(answer.abstained)
        failure = "" if answer.abstained else "answered a question the documents do not answer"
        return QuestionResult(gold, answer, latency, metrics, 0, [], failure)

    # Retrieval: which gold sources the hits contain, and the rank of the first.
    first_rank = 0
    found = 0
    for source in gold.sources:
        ranks = [h.rank for h in hits if h.chunk.doc_id == source.doc and contains(h.chunk.text, source.quote)]
        if ranks:
            found += 1
            first_rank = min(ranks) if not first_rank else min(first_rank, min(ranks))
    metrics["hit_at_k"] = 1.0 if found else 0.0
    metrics["source_recall_at_k"] = found / len(gold.sources) if gold.sources else None
    metrics["mrr"] = 1.0 / first_rank if first_rank else 0.0

    # Answer: facts present, citations on a gold quote.
    facts = [f for f in gold.key_facts if contains(answer.text, f)] if not answer.abstained else []
    metrics["key_fact_recall"] = len(facts) / len(gold.key_facts) if gold.key_facts else None
    metrics["all_facts"] = 1.0 if gold.key_facts and len(facts) == len(gold.key_facts) else 0.0
    metrics["answered"] = 0.0 if answer.abstained else 1.0
    gold_spans: dict[str, list[tuple[int, int]]] = {}
    for source in gold.sources:
        text = text_of(source.doc)
        if text is not None:
            gold_spans.setdefault(source.doc, []).extend(quote_spans(text, source.quote))
    precise = sum(
        1 for c in answer.citations if any(c.start < end and start < c.end for start, end in gold_spans.get(c.doc, []))
    )
    metrics["citations"] = float(len(answer.citations))
    metrics["precise_citations"] = float(precise)
    metrics["citation_precision"] = precise / len(answer.citations) if answer.citations else None
    metrics["found_sources"] = float(found)
    metrics["sources"] = float(len(gold.sources))
    metrics["facts_found"] = float(len(facts))
    metrics["facts"] = float(len(gold.key_facts))

    failure = ""
    if answer.abstained:
        failure = "abstained" + ("" if found else " (no gold source retrieved)")
    elif len(facts) < len(gold.key_facts):
        missing = [f for f in gold.key_facts if f not in facts]
        where = "" if found else "; no gold source retrieved"
        failure = f"missing {', '.join(repr(m) for m in missing)}{where}"
    return QuestionResult(gold, answer, latency, metrics, found, facts, failure)


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(statistics.fmean(kept), 4) if kept else None


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 2)


def summarise(results: Sequence[QuestionResult]) -> dict[str, float | None]:
    """Computes the summary metrics of EVAL.md over some results."""
    answerable = [r for r in results if r.gold.answerable]
    unanswerable = [r for r in results if not r.gold.answerable]
    m = [r.metrics for r in answerable]
    given = [r for r in results if not r.answer.abstained]
    latencies = [r.latency_ms for r in results]
    return {
        "questions": len(results),
        "hit_at_k": _mean(x["hit_at_k"] for x in m),
        "source_recall_at_k": _ratio(sum(x["found_sources"] or 0 for x in m), sum(x["sources"] or 0 for x in m)),
        "mrr": _mean(x["mrr"] for x in m),
        "key_fact_recall": _ratio(sum(x["facts_found"] or 0 for x in m), sum(x["facts"] or 0 for x in m)),
        "all_facts_rate": _mean(x["all_facts"] for x in m),
        "citation_precision": _ratio(sum(x["precise_citations"] or 0 for x in m), sum(x["citations"] or 0 for x in m)),
        "answer_rate_answerable": _mean(x["answered"] for x in m),
        "abstention_accuracy_unanswerable": _mean(r.metrics["abstained"] for r in unanswerable),
        "answerability_auc": answerability_auc(answerable, unanswerable),
        "answer_words_mean": _mean(float(answer_words(r.answer.text)) for r in given),
        "hits_chars_mean": _mean(r.metrics["hits_chars"] for r in results),
        "latency_ms_p50": _percentile(latencies, 0.5),
        "latency_ms_p95": _percentile(latencies, 0.95),
    }


def answerability_auc(answerable: Sequence[QuestionResult], unanswerable: Sequence[QuestionResult]) -> float | None:
    """Returns how well the answers' confidence tells answerable from unanswerable questions.

    The probability that an answerable question's confidence exceeds an unanswerable one's
    (ties count half): 0.5 is chance, 1.0 a threshold that separates them perfectly.
    """
    pos = [r.answer.confidence for r in answerable if r.answer.confidence is not None]
    neg = [r.answer.confidence for r in unanswerable if r.answer.confidence is not None]
    if not pos or not neg or len(pos) + len(neg) < len(answerable) + len(unanswerable):
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return round(wins / (len(pos) * len(neg)), 3)


def answer_words(text: str) -> int:
    """Counts the words of an answer, citation markers left out."""
    return len(re.sub(r"\[\d+\]", " ", text).split())
