"""Gold questions -> answers -> metrics, a report, and a regression check against a baseline.

The metric names, the gold format and the JSON report are a contract other tools read
(shared/design/EVAL.md). One module a concern: `gold` (the file format, fact and quote
matching), `metrics` (running a gold set and scoring it), `baseline` (the regression gate),
`report` (Markdown and chart).
"""

from assistant.evaluation.baseline import (
    GATED,
    UNGATED,
    Regression,
    baseline_from,
    check_baseline,
    load_baseline,
    setup_changes,
)
from assistant.evaluation.gold import (
    KINDS,
    GoldError,
    GoldQuestion,
    GoldSource,
    GoldTurn,
    Kind,
    contains,
    load_gold,
    normalise,
    quote_spans,
)
from assistant.evaluation.metrics import (
    ANSWER_METRICS,
    SUMMARY_KEYS,
    EvalReport,
    QuestionResult,
    answer_words,
    answerability_auc,
    evaluate,
    summarise,
)
from assistant.evaluation.report import (
    CHART_METRICS,
    SHORT_NAMES,
    TABLE_METRICS,
    abstention_tradeoff,
    table_rows,
    weakest_kind,
    write_chart,
    write_markdown,
)

__all__ = [
    "ANSWER_METRICS",
    "CHART_METRICS",
    "GATED",
    "KINDS",
    "SHORT_NAMES",
    "SUMMARY_KEYS",
    "TABLE_METRICS",
    "UNGATED",
    "EvalReport",
    "GoldError",
    "GoldQuestion",
    "GoldSource",
    "GoldTurn",
    "Kind",
    "QuestionResult",
    "Regression",
    "abstention_tradeoff",
    "answer_words",
    "answerability_auc",
    "baseline_from",
    "check_baseline",
    "contains",
    "evaluate",
    "load_baseline",
    "load_gold",
    "normalise",
    "quote_spans",
    "setup_changes",
    "summarise",
    "table_rows",
    "weakest_kind",
    "write_chart",
    "write_markdown",
]
