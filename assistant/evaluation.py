"""Gold questions -> answers -> metrics, a report, and a regression check against a baseline.

The metric names, the gold format and the JSON report are a contract other tools read
(shared/design/EVAL.md). Follow-up questions are answered with their `history`, exactly as the
chat service passes a conversation.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.errors import AssistantError
from assistant.records import Answer, Turn
from assistant.text import fold

logger = logging.getLogger(__name__)

Kind = Literal["fact", "number", "list", "multilingual", "unanswerable", "followup"]
KINDS: tuple[str, ...] = ("fact", "number", "list", "multilingual", "followup", "unanswerable")

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


class GoldError(AssistantError):
    """A gold file cannot be read; the message names the line."""


class GoldSource(BaseModel):
    """Where the answer is stated: a document and an exact phrase of it."""

    model_config = ConfigDict(extra="forbid")
    doc: str
    quote: str = Field(min_length=1)


class GoldTurn(BaseModel):
    """One earlier message of a follow-up's conversation."""

    role: Literal["user", "assistant"]
    content: str


class GoldQuestion(BaseModel):
    """One line of a gold file."""

    model_config = ConfigDict(extra="allow")
    id: str
    kind: Kind
    question: str = Field(min_length=1)
    history: list[GoldTurn] = Field(default_factory=list)
    answer: str = ""
    key_facts: list[str] = Field(default_factory=list)
    sources: list[GoldSource] = Field(default_factory=list)

    @property
    def answerable(self) -> bool:
        """Unanswerable questions have neither key facts nor sources."""
        return self.kind != "unanswerable"


def load_gold(path: Path) -> list[GoldQuestion]:
    """Reads a gold file, naming the line of any malformed entry."""
    if not path.is_file():
        raise GoldError(f"gold file {path} does not exist")
    questions: list[GoldQuestion] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = GoldQuestion.model_validate_json(line)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise GoldError(f"{path}:{number}: {where}: {first['msg']}") from exc
        if question.id in seen:
            raise GoldError(f"{path}:{number}: duplicate id {question.id!r}")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise GoldError(f"gold file {path} holds no questions")
    return questions


# ------------------------------------------------------------------------------- matching


def normalise(text: str) -> str:
    """Lower-cases, strips accents and collapses whitespace, for fact and quote matching."""
    return re.sub(r"\s+", " ", fold(text)).strip()


def _normalised_with_offsets(text: str) -> tuple[str, list[int]]:
    # The normalised text, and for each of its characters the offset it came from.
    chars: list[str] = []
    offsets: list[int] = []
    previous_space = True
    for i, ch in enumerate(text):
        if ch.isspace():
            if not previous_space:
                chars.append(" ")
                offsets.append(i)
            previous_space = True
            continue
        previous_space = False
        for piece in fold(ch):
            chars.append(piece)
            offsets.append(i)
    return "".join(chars), offsets


def quote_spans(document_text: str, quote: str) -> list[tuple[int, int]]:
    """Returns every (start, end) in the document where the quote appears, normalised."""
    haystack, offsets = _normalised_with_offsets(document_text)
    needle = normalise(quote)
    spans = []
    start = haystack.find(needle)
    while start >= 0 and needle:
        end = start + len(needle) - 1
        spans.append((offsets[start], offsets[end] + 1))
        start = haystack.find(needle, start + 1)
    return spans


def contains(text: str, fact: str) -> bool:
    """Tells whether a fact appears in a text (case-, accent- and whitespace-insensitive)."""
    return normalise(fact) in normalise(text)


# -------------------------------------------------------------------------------- running


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


# ------------------------------------------------------------------------------- baseline


@dataclass(frozen=True)
class Regression:
    """A metric that dropped (or rose, for lower-is-better ones) beyond its tolerance."""

    scope: str  # "summary" or a kind
    metric: str
    baseline: float
    tolerance: float
    value: float | None
    direction: str

    def __str__(self) -> str:
        where = "" if self.scope == "summary" else f" ({self.scope})"
        shown = "n/a" if self.value is None else f"{self.value:.4f}"
        sign = "-" if self.direction == "higher" else "+"
        return f"{self.metric}{where} is {shown}, baseline {self.baseline:.4f} {sign} tolerance {self.tolerance:.4f}"


UNGATED = {"latency_ms_p50", "latency_ms_p95", "questions"}


def check_baseline(report: EvalReport, baseline: dict[str, Any]) -> list[Regression]:
    """Returns the metrics that regressed beyond the baseline's tolerances."""
    regressions: list[Regression] = []
    scopes: list[tuple[str, dict[str, Any], dict[str, float | None]]] = [
        ("summary", baseline.get("summary", {}), report.summary)
    ]
    for kind, limits in baseline.get("by_kind", {}).items():
        scopes.append((kind, limits, report.by_kind.get(kind, {})))
    for scope, limits, values in scopes:
        for metric, limit in limits.items():
            if metric in UNGATED:
                continue
            base = float(limit["value"])
            tolerance = float(limit.get("tolerance", 0.0))
            direction = limit.get("direction", "higher")
            value = values.get(metric)
            if value is None:
                bad = True
            elif direction == "lower":
                bad = value > base + tolerance + 1e-9
            else:
                bad = value < base - tolerance - 1e-9
            if bad:
                regressions.append(Regression(scope, metric, base, tolerance, value, direction))
    return regressions


GATED = (*ANSWER_METRICS, "abstention_accuracy_unanswerable")


def setup_changes(report: EvalReport, baseline: dict[str, Any]) -> list[str]:
    """Returns what the run depends on that differs from what the baseline was made with.

    Figures made with other fitted weights, another embedding model or other documents are not
    comparable: passing the gate against them would say nothing, failing it would mislead.
    """
    recorded: dict[str, str] = baseline.get("setup", {})
    return [
        f"{name}: the baseline was made with {recorded[name]}, this run has {report.setup.get(name, '(none)')}"
        for name in sorted(recorded)
        if report.setup.get(name) != recorded[name]
    ]


def baseline_from(report: EvalReport, tolerance: float = 0.02, kind_tolerance: float = 0.08) -> dict[str, Any]:
    """Returns a baseline recording this run's quality metrics, with tolerances.

    Kinds hold a dozen questions each, where one question moves a rate by ~0.08, so their
    tolerance is wider. Answers may not grow much longer either (`answer_words_mean`, lower is
    better); latency is recorded for reference but never gated (machines are noisy).
    """

    def entries(values: dict[str, float | None], tol: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            metric: {"value": values[metric], "tolerance": tol} for metric in GATED if values.get(metric) is not None
        }
        words = values.get("answer_words_mean")
        if words is not None:
            out["answer_words_mean"] = {"value": words, "tolerance": round(words * 0.25, 1), "direction": "lower"}
        return out

    return {
        "gold": report.gold_path,
        "k": report.k,
        "setup": report.setup,
        "summary": entries(report.summary, tolerance),
        "by_kind": {kind: entries(values, kind_tolerance) for kind, values in report.by_kind.items()},
        "reference": {m: report.summary.get(m) for m in ("latency_ms_p50", "latency_ms_p95", "hits_chars_mean")},
    }


def load_baseline(path: Path) -> dict[str, Any]:
    """Reads a baseline file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GoldError(f"cannot read the baseline {path}: {exc}") from exc
    if not isinstance(data, dict) or "summary" not in data:
        raise GoldError(f'the baseline {path} has no "summary" section')
    return data


# -------------------------------------------------------------------------------- reports

CHART_METRICS = (
    "hit_at_k",
    "mrr",
    "key_fact_recall",
    "all_facts_rate",
    "citation_precision",
    "answer_rate_answerable",
    "abstention_accuracy_unanswerable",
)


def write_chart(report: EvalReport, path: Path) -> bool:
    """Draws the main metrics by kind as grouped bars (PNG); False, and no file, without matplotlib.

    matplotlib is the `eval` extra, not a core dependency: a run of the gold set is worth its
    tables and its baseline check without the chart, so a missing matplotlib only warns.
    """
    try:
        import matplotlib
    except ModuleNotFoundError:
        logger.warning("no chart in the eval report: it needs matplotlib, the eval extra: pip install -e '.[eval]'")
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(report.by_kind)
    groups = ["all", *kinds]
    values = {g: (report.summary if g == "all" else report.by_kind[g]) for g in groups}
    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=110)
    width = 0.8 / len(CHART_METRICS)
    colours = plt.get_cmap("tab10")
    for j, metric in enumerate(CHART_METRICS):
        xs = [i + (j - len(CHART_METRICS) / 2 + 0.5) * width for i in range(len(groups))]
        ys = [values[g].get(metric) for g in groups]
        ax.bar(
            [x for x, y in zip(xs, ys, strict=True) if y is not None],
            [y for y in ys if y is not None],
            width=width,
            label=metric,
            color=colours(j),
        )
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{g}\n(n={values[g]['questions']})" for g in groups])
    ax.set_ylim(0, 1.05)
    ax.axhline(0.9, color="grey", linewidth=0.6, linestyle="--")
    ax.set_ylabel("score")
    ax.set_title(f"Gold set {Path(report.gold_path).name}, k={report.k}: metrics by kind")
    ax.legend(fontsize=7, ncols=4, loc="lower center", bbox_to_anchor=(0.5, -0.32))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def _cell(value: float | None, metric: str) -> str:
    if value is None:
        return "–"
    if metric.startswith(("latency", "hits_chars", "answer_words")) or metric == "questions":
        return f"{value:g}" if metric == "questions" else f"{value:.1f}"
    return f"{value:.3f}"


TABLE_METRICS = (
    "questions",
    "hit_at_k",
    "mrr",
    "source_recall_at_k",
    "key_fact_recall",
    "all_facts_rate",
    "citation_precision",
    "answer_rate_answerable",
    "abstention_accuracy_unanswerable",
    "answer_words_mean",
    "hits_chars_mean",
    "latency_ms_p50",
    "latency_ms_p95",
)
SHORT_NAMES = {
    "questions": "n",
    "hit_at_k": "hit@k",
    "source_recall_at_k": "src recall",
    "mrr": "mrr",
    "key_fact_recall": "fact recall",
    "all_facts_rate": "all facts",
    "citation_precision": "cite prec",
    "answer_rate_answerable": "answered",
    "abstention_accuracy_unanswerable": "abstained",
    "answer_words_mean": "words",
    "hits_chars_mean": "hit chars",
    "latency_ms_p50": "p50 ms",
    "latency_ms_p95": "p95 ms",
}


def table_rows(report: EvalReport) -> list[tuple[str, list[str]]]:
    """Returns (row name, cells) for the overall row and each kind."""
    rows = [("all", [_cell(report.summary.get(m), m) for m in TABLE_METRICS])]
    for kind, values in report.by_kind.items():
        rows.append((kind, [_cell(values.get(m), m) for m in TABLE_METRICS]))
    return rows


def write_markdown(
    report: EvalReport,
    path: Path,
    chart: Path | None = None,
    regressions: Sequence[Regression] = (),
    extra_sections: Sequence[str] = (),
) -> None:
    """Writes the human report: tables, the chart, and every failing question."""
    lines = [
        f"# Eval report: `{report.gold_path}`",
        "",
        f"{len(report.results)} questions, k={report.k}, {report.seconds:.1f} s. Failing: {len(report.failures)}.",
        "",
        "| | " + " | ".join(SHORT_NAMES[m] for m in TABLE_METRICS) + " |",
        "|---" * (len(TABLE_METRICS) + 1) + "|",
    ]
    for name, cells in table_rows(report):
        lines.append(f"| **{name}** | " + " | ".join(cells) + " |")
    lines.append("")
    if chart is not None:
        lines += [f"![metrics by kind]({chart.name})", ""]
    weakest = weakest_kind(report)
    if weakest:
        lines += [f"Weakest kind: **{weakest[0]}** ({weakest[1]} = {weakest[2]:.3f}).", ""]
    if regressions:
        lines += ["## Regressions against the baseline", ""]
        lines += [f"- {r}" for r in regressions]
        lines.append("")
    lines += list(extra_sections)
    tradeoff = abstention_tradeoff(report)
    if tradeoff:
        lines += [
            "## Abstention trade-off",
            "",
            "Had the answerer declined every question below each confidence threshold:",
            "",
            "| threshold | answerable answered | unanswerable declined |",
            "|---|---|---|",
            *(f"| {t:.2f} | {a:.3f} | {d:.3f} |" for t, a, d in tradeoff),
            "",
        ]
    lines += ["## Failing questions", ""]
    if not report.failures:
        lines.append("None.")
    for r in report.failures:
        hits = ", ".join(f"{h.chunk.doc_id} › {h.chunk.section or '–'}" for h in r.answer.hits[:3])
        answer = r.answer.text.replace("\n", " ")
        lines += [
            f"### {r.gold.id} ({r.gold.kind}): {r.gold.question}",
            "",
            f"- why: {r.failure}",
            f"- expected: {', '.join(r.gold.key_facts) or '(abstain)'}",
            f"- answered: {answer[:400]}{'…' if len(answer) > 400 else ''}",
            f"- retrieved: {hits or '(nothing)'}",
        ]
        if r.answer.standalone_question and r.answer.standalone_question != r.gold.question:
            lines.append(f"- searched for: {r.answer.standalone_question}")
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def abstention_tradeoff(
    report: EvalReport, thresholds: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
) -> list[tuple[float, float, float]] | None:
    """Returns (threshold, share of answerable answered, share of unanswerable declined).

    Each row shows what the run would have scored had the answerer declined every question
    whose confidence is below that threshold: the price of each abstention in answers lost.
    None when the answerer reports no confidence or the set has no unanswerable question.
    """
    answerable = [r.answer.confidence for r in report.results if r.gold.answerable]
    unanswerable = [r.answer.confidence for r in report.results if not r.gold.answerable]
    if not answerable or not unanswerable or any(c is None for c in answerable + unanswerable):
        return None
    rows = []
    for threshold in thresholds:
        answered = sum(1 for c in answerable if c is not None and c >= threshold) / len(answerable)
        declined = sum(1 for c in unanswerable if c is not None and c < threshold) / len(unanswerable)
        rows.append((threshold, round(answered, 3), round(declined, 3)))
    return rows


def weakest_kind(report: EvalReport) -> tuple[str, str, float] | None:
    """Returns the kind with the lowest headline score and that score."""
    worst: tuple[str, str, float] | None = None
    for kind, values in report.by_kind.items():
        metric = "abstention_accuracy_unanswerable" if kind == "unanswerable" else "all_facts_rate"
        value = values.get(metric)
        if value is not None and (worst is None or value < worst[2]):
            worst = (kind, metric, value)
    return worst
