"""The human eval report: Markdown tables by kind, the abstention trade-off, failing questions, a chart.

The chart needs matplotlib, the `eval` extra; without it the report is written without one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from assistant.evaluation.baseline import Regression
from assistant.evaluation.metrics import EvalReport

logger = logging.getLogger(__name__)

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
