"""The regression gate: a baseline of quality metrics with tolerances, and the check against it.

A baseline records the setup it was made with (answerer, fitted numbers, embedding model,
corpus); a run of another setup is not comparable and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.evaluation.gold import GoldError
from assistant.evaluation.metrics import ANSWER_METRICS, EvalReport


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
