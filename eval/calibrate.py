"""Fits the extractive answerer's weights on gold sets, and prints them with the trade-offs.

    python eval/calibrate.py --set eval/gold.jsonl=index \
        --set ../shared/bench/squad2/gold-dev.jsonl=/tmp/squad2-index

Two fits, both on the signals of `assistant.answering.extractive.Evidence`:
1. sentence selection: a pairwise logistic regression that prefers sentences holding a key
   fact of the gold answer over sentences of the same retrieved passages that hold none;
2. answerability: a logistic regression on the best sentence's signals that tells answerable
   gold questions from unanswerable ones (classes and sets weighted equally).
The table shows, for each threshold, how many answerable questions get an answer and how many
unanswerable ones are declined, so the threshold is a visible trade-off rather than a magic
number. With `--write FILE --threshold T` the fitted weights, the chosen threshold and the
embedding model of the indexes go into a calibration file (the shipped one is
assistant/answering/models/extractive/calibration.json; ASSISTANT_EXTRACTIVE_CALIBRATION names
another). Refresh eval/baseline.json afterwards: the gate refuses a baseline of other weights.

`--without SIGNAL` fits as if a signal were not there: a signal the answers do not miss on
either set (nor on eval/heldout.jsonl) is one the answerer does not need.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from assistant import evaluation
from assistant.answering.extractive import SIGNALS, Evidence, ExtractiveAnswerer, shipped_calibration
from assistant.config import Settings
from assistant.conversation.rewrite import standalone_question
from assistant.pipeline import Assistant
from assistant.question import profile
from assistant.records import Turn


def vector(evidence: Evidence) -> np.ndarray:
    """Returns the signals of one sentence as an array, in `SIGNALS` order."""
    return np.array([getattr(evidence, name) for name in SIGNALS], dtype=np.float64)


def collect(gold_path: Path, index_dir: Path, k: int) -> list[dict[str, object]]:
    """Retrieves and scores the candidate sentences of every gold question."""
    # The rules' own weights are fitted on the rules alone, without the reader's gate after them.
    assistant = Assistant(Settings(index_dir=index_dir, reader_gate=False))
    engine = assistant.engine
    answerer = engine.answerer
    assert isinstance(answerer, ExtractiveAnswerer)
    rows = []
    for question in evaluation.load_gold(gold_path):
        history = [Turn(t.role, t.content) for t in question.history]
        standalone = standalone_question(question.question, history, rarity=engine.rarity)
        hits = engine.retriever.search(standalone, k)
        candidates = answerer.candidates(profile(standalone), hits)
        rows.append(
            {
                "gold": question,
                "features": np.array([vector(c.evidence) for c in candidates]).reshape(-1, len(SIGNALS)),
                "good": np.array(
                    [
                        bool(question.key_facts) and any(evaluation.contains(c.text, f) for f in question.key_facts)
                        for c in candidates
                    ]
                ),
                "complete": np.array(
                    [
                        bool(question.key_facts) and all(evaluation.contains(c.text, f) for f in question.key_facts)
                        for c in candidates
                    ]
                ),
                "penalty": np.array([-0.1 if len(c.text.split()) > 60 else 0.0 for c in candidates]),
            }
        )
    return rows


def fit_logistic(x: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float = 0.01, steps: int = 4000) -> np.ndarray:
    """Weighted logistic regression by gradient descent; returns [bias, *coefficients]."""
    design = np.hstack([np.ones((len(x), 1)), x])
    beta = np.zeros(design.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-design @ beta))
        gradient = design.T @ (weight * (p - y)) / weight.sum() + l2 * np.r_[0, beta[1:]]
        beta -= 0.5 * gradient
    return beta


def fit_selection(sets: list[list[dict[str, object]]], set_weights: list[float]) -> np.ndarray:
    """Pairwise fit: good sentences should outscore bad ones of the same question.

    Every (good, bad) pair of a question counts, and every question as much as another of its set.
    """
    diffs, weights = [], []
    for rows, set_weight in zip(sets, set_weights, strict=True):
        questions = []
        for row in rows:
            good, features = row["good"], row["features"]
            assert isinstance(good, np.ndarray) and isinstance(features, np.ndarray)
            positives, negatives = features[good], features[~good]
            if len(positives) and len(negatives):
                questions.append((positives[:, None, :] - negatives[None, :, :]).reshape(-1, features.shape[1]))
        for pairs in questions:
            diffs.append(pairs)
            weights.append(np.full(len(pairs), set_weight / (len(questions) * len(pairs))))
    x = np.vstack(diffs)
    # Symmetrise so that no bias is needed: (a - b) is good, (b - a) is bad.
    both = np.vstack([x, -x])
    y = np.r_[np.ones(len(x)), np.zeros(len(x))]
    w = np.concatenate([*weights, *weights])
    return fit_logistic(both, y, w)[1:]


def best_of(row: dict[str, object], select: np.ndarray) -> int | None:
    """Index of the best candidate under the selection weights."""
    features, penalty = row["features"], row["penalty"]
    assert isinstance(features, np.ndarray) and isinstance(penalty, np.ndarray)
    if not len(features):
        return None
    return int(np.argmax(features @ select + penalty))


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    positives, negatives = score[label == 1], score[label == 0]
    if not len(positives) or not len(negatives):
        return float("nan")
    wins = (positives[:, None] > negatives[None, :]).mean() + 0.5 * (positives[:, None] == negatives[None, :]).mean()
    return float(wins)


def main() -> None:
    """Runs both fits and prints the weights and the threshold table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", required=True, help="GOLD=INDEX_DIR[@WEIGHT] (repeatable; weight 1)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--write", type=Path, help="write the fitted weights here, as a calibration file")
    parser.add_argument("--threshold", type=float, help="with --write: the answerability threshold chosen")
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        choices=SIGNALS,
        help="fit as if this signal were not there (repeatable): does the answerer need it?",
    )
    args = parser.parse_args()
    if args.write and args.threshold is None:
        parser.error("--write needs --threshold: choose it from the trade-off table of a run without --write")
    sets = []
    names = []
    set_weights = []
    for spec in args.set:
        gold, rest = spec.split("=", 1)
        index, _, weight = rest.partition("@")
        names.append(Path(gold).name)
        set_weights.append(float(weight or 1))
        sets.append(collect(Path(gold), Path(index), args.k))
    left_out = [SIGNALS.index(name) for name in args.without]
    for rows in sets:
        for row in rows:
            features = row["features"]
            assert isinstance(features, np.ndarray)
            features[:, left_out] = 0.0

    select = fit_selection(sets, set_weights)
    select = select / np.abs(select).max()  # scale is free for a ranking; keep numbers readable
    current = np.array([shipped_calibration().select.get(name, 0.0) for name in SIGNALS])

    xs, ys, ws, owner = [], [], [], []
    for number, (rows, set_weight) in enumerate(zip(sets, set_weights, strict=True)):
        answerable = sum(1 for r in rows if r["gold"].answerable)  # type: ignore[attr-defined]
        unanswerable = len(rows) - answerable
        for row in rows:
            i = best_of(row, select)
            if i is None:
                continue
            features = row["features"]
            assert isinstance(features, np.ndarray)
            label = 1.0 if row["gold"].answerable else 0.0  # type: ignore[attr-defined]
            xs.append(features[i])
            ys.append(label)
            ws.append(set_weight / max(answerable if label else unanswerable, 1))
            owner.append(number)
    answer = fit_logistic(np.array(xs), np.array(ys), np.array(ws))

    print("selection accuracy (best sentence holds a key fact / all key facts):")
    for name, rows in zip(names, sets, strict=True):
        for label, weights in (("current", current), ("fitted", select)):
            hits = complete = total = 0
            for row in rows:
                if not row["gold"].answerable:  # type: ignore[attr-defined]
                    continue
                total += 1
                i = best_of(row, weights)
                if i is not None:
                    hits += bool(row["good"][i])  # type: ignore[index]
                    complete += bool(row["complete"][i])  # type: ignore[index]
            print(f"  {name:24s} {label:8s} {hits / total:.3f} / {complete / total:.3f}")
    print("\nselect = {" + ", ".join(f'"{n}": {v:.3f}' for n, v in zip(SIGNALS, select, strict=True)) + "}")
    print(
        "answer = {"
        + f'"bias": {answer[0]:.3f}, '
        + ", ".join(f'"{n}": {v:.3f}' for n, v in zip(SIGNALS, answer[1:], strict=True))
        + "}"
    )

    print("\nhow well each signal of the best sentence alone tells answerable from not (AUC, all | per set):")
    x_all, y_all = np.array(xs), np.array(ys)
    set_of = np.array(owner)
    columns = [*(x_all[:, j] for j in range(len(SIGNALS))), x_all @ answer[1:]]
    for name, column in zip([*SIGNALS, "fitted"], columns, strict=True):
        per_set = " ".join(f"{_auc(column[set_of == s], y_all[set_of == s]):.3f}" for s in range(len(sets)))
        print(f"  {name:14s} {_auc(column, y_all):.3f} | {per_set}")
    print("\nthreshold | " + " | ".join(f"{n}: answered / declined" for n in names))
    for threshold in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7):
        cells = []
        for rows in sets:
            answered = declined = n_answerable = n_unanswerable = 0
            for row in rows:
                i = best_of(row, select)
                p = 0.0
                if i is not None:
                    features = row["features"]
                    assert isinstance(features, np.ndarray)
                    p = 1 / (1 + np.exp(-(answer[0] + features[i] @ answer[1:])))
                if row["gold"].answerable:  # type: ignore[attr-defined]
                    n_answerable += 1
                    answered += p >= threshold
                else:
                    n_unanswerable += 1
                    declined += p < threshold
            cells.append(f"{answered / max(n_answerable, 1):.3f} / {declined / max(n_unanswerable, 1):.3f}")
        print(f"{threshold:9.2f} | " + " | ".join(cells))
    if args.write:
        write(args.write, select, answer, args.threshold, args.set, args.k)


def write(path: Path, select: np.ndarray, answer: np.ndarray, threshold: float, specs: list[str], k: int) -> None:
    """Writes a calibration file for the extractive answerer (`ExtractiveCalibration`)."""
    index = Path(specs[0].split("=", 1)[1].partition("@")[0])
    model = Assistant(Settings(index_dir=index)).store.manifest.model
    data = {
        "embedding_model": model,
        "fitted_on": f"eval/calibrate.py over {', '.join(specs)}, k={k}, hybrid retrieval with {model}",
        "select": {n: round(float(v), 3) for n, v in zip(SIGNALS, select, strict=True)},
        "answer": {"bias": round(float(answer[0]), 3)}
        | {n: round(float(v), 3) for n, v in zip(SIGNALS, answer[1:], strict=True)},
        "threshold": threshold,
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"\ncalibration written to {path}")


if __name__ == "__main__":
    main()
