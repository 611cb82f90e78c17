"""SQuAD examples -> a trained reader, exported to int8 ONNX with its calibration and model card.

Needs the `train` extra (torch, transformers): `pip install -e '.[train]'`. Run it as
`assistant train-reader --squad ../shared/data/squad --out assistant/answering/models/reader`.

The run is reproducible (one seed fixes the data, the order and the initial heads), shows a
progress bar, writes a checkpoint every few hundred steps and resumes from it when started
again with the same output folder, and logs its losses and validation figures to
`train-log.jsonl`. Validation uses SQuAD 2.0 articles held out from training (by article).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import string
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from assistant.answering import reader as runtime
from assistant.training import squad

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
# A copy of the checkpoint at the end of the first stage: copied to another output folder's
# `training/checkpoint.pt`, it starts a run that differs only in its focus stage there.
FIRST_STAGE = "first-stage.pt"
LOG = "train-log.jsonl"
TRAINING_FILE = "training.json"  # the config and validation figures the model card reports


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides the trained weights (recorded in the model card)."""

    seed: int = 13
    squad11_questions: int = 90000  # more than the file's 86,144: all of them
    validation_articles: int = 10
    swap_rate: float = 0.35
    # Negated SQuAD 1.1 questions per question (squad.negated): unanswerable examples of the kind
    # "Which X never ...?" that SQuAD 2.0 has few of.
    negation_rate: float = 0.15
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 6e-5
    warmup: float = 0.06
    weight_decay: float = 0.01
    span_weight: float = 0.5
    threads: int = 2
    checkpoint_every: int = 200
    validate_every: int = 600
    quick_validation: int = 300  # questions checked at each validation during training
    # The focus stage, after the first pass (squad.focus_examples): SQuAD 2.0's training questions
    # against this many look-alike sentences each (0: no stage), with first-stage examples
    # replayed (`focus_replay` of the stage's size), at its own learning rate and schedule.
    focus_negatives: int = 3
    focus_replay: float = 0.5
    focus_epochs: int = 3
    focus_learning_rate: float = 2e-5
    # ... and against this many look-alike sentences of their article's other paragraphs
    # (squad.ArticleSentences): the subject, not the answer.
    focus_article_negatives: int = 0
    # "bf16": the encoder's matrix products run in bfloat16 (torch.autocast; the weights and the
    # optimizer stay in float32), about twice as fast on a CPU with native bf16 (AVX512-BF16 or
    # AMX). Without it the run falls back to "fp32" and says so.
    precision: str = "bf16"


PRECISIONS = ("bf16", "fp32")
_FOCUS = ("focus_negatives", "focus_replay", "focus_epochs", "focus_learning_rate", "focus_article_negatives")


def _identity(config: dict[str, Any], *, with_focus: bool = True) -> dict[str, Any]:
    """The settings a checkpoint must share to resume: all but threads (and the focus stage's, before it).

    A checkpoint from before `precision` existed was made in float32, and one from before
    `focus_article_negatives` without them.
    """
    config = {"precision": "fp32", "focus_article_negatives": 0, **config}
    return {k: v for k, v in config.items() if k != "threads" and (with_focus or k not in _FOCUS)}


def learning_rate_factor(step: int, first: int, focus: int, config: TrainingConfig) -> float:
    """The learning rate at `step`, as a factor of `config.learning_rate`.

    Each stage warms up over its first `config.warmup` and then decays linearly to zero; the
    first stage has `first` steps, the focus stage the `focus` after them.
    """
    length, at, peak = (
        (first, step, 1.0) if step < first else (focus, step - first, config.focus_learning_rate / config.learning_rate)
    )
    warmup = max(1, int(config.warmup * length))
    return peak * min((at + 1) / warmup, max(0.0, (length - at) / max(1, length - warmup)))


def native_bf16(torch: Any) -> bool:
    """Whether this CPU computes bfloat16 natively (emulated bf16 is slower than float32)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def _require_torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ImportError("training the reader needs torch and transformers: pip install -e '.[train]'") from exc
    return torch


def build_model(model_dir: Path) -> Any:
    """Returns the reader network: the MiniLM encoder with an answer head and a span head."""
    torch = _require_torch()
    from transformers import AutoModel

    class ReaderNetwork(torch.nn.Module):  # type: ignore[misc,name-defined]
        """Encoder -> (answer logit from [CLS], start and end logits per token)."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(model_dir))
            hidden = self.encoder.config.hidden_size
            self.answer = torch.nn.Linear(hidden, 1)
            self.span = torch.nn.Linear(hidden, 2)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            states = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            answer_logit = self.answer(states[:, 0]).squeeze(-1)
            start_logits, end_logits = self.span(states).unbind(-1)
            return answer_logit, start_logits, end_logits

    return ReaderNetwork()


@dataclass(frozen=True)
class Encoded:
    """An example in the reader's layout, with its span as token indexes (or -1)."""

    item: runtime.ReaderInput
    label: int
    start: int
    end: int


def encode_example(tokenizer: Any, example: squad.Example) -> Encoded:
    """Encodes one example, mapping its answer span onto the kept sentence tokens."""
    item = runtime.encode(tokenizer, example.question, example.candidate)
    start = end = -1
    if example.span is not None:
        a, b = example.span
        inside = [k for k, (s, e) in enumerate(item.sentence_offsets) if e > a and s < b]
        if inside and item.sentence_offsets[inside[-1]][1] >= b:  # the whole answer was kept
            start, end = item.sentence_first + inside[0], item.sentence_first + inside[-1]
    return Encoded(item, example.label, start, end)


def batches(encoded: Sequence[Encoded], size: int, seed: int) -> list[list[int]]:
    """Groups example indexes into batches of similar length (less padding), in a seeded order."""
    rng = random.Random(seed)
    order = list(range(len(encoded)))
    rng.shuffle(order)
    out: list[list[int]] = []
    window = size * 50
    for w in range(0, len(order), window):
        chunk = sorted(order[w : w + window], key=lambda i: len(encoded[i].item.ids))
        out.extend(chunk[b : b + size] for b in range(0, len(chunk), size))
    rng.shuffle(out)
    return out


def collate(torch: Any, items: Sequence[runtime.ReaderInput]) -> dict[str, Any]:
    """Pads a batch of inputs into the three tensors the encoder takes."""
    width = max(len(x.ids) for x in items)
    ids = torch.zeros((len(items), width), dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for row, x in enumerate(items):
        n = len(x.ids)
        ids[row, :n] = torch.tensor(x.ids)
        types[row, :n] = torch.tensor(x.type_ids)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def sentence_mask(torch: Any, items: Sequence[runtime.ReaderInput], width: int) -> Any:
    """Returns a boolean mask of the tokens that belong to each input's sentence."""
    mask = torch.zeros((len(items), width), dtype=torch.bool)
    for row, x in enumerate(items):
        mask[row, x.sentence_first : x.sentence_first + len(x.sentence_offsets)] = True
    return mask


# --- validation -------------------------------------------------------------------------------

Scorer = Callable[[str, Sequence[runtime.Candidate]], list[runtime.Verdict]]


def _normalise(text: str) -> list[str]:
    text = text.lower()
    text = "".join(c for c in text if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return text.split()


def span_f1(prediction: str, gold: str) -> float:
    """SQuAD's token F1 between a predicted and a gold answer."""
    p, g = _normalise(prediction), _normalise(gold)
    common = sum((Counter(p) & Counter(g)).values())
    if not p or not g or common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Returns the probability that a positive outscores a negative (ties count half)."""
    if not positives or not negatives:
        return float("nan")
    scores = np.asarray([*positives, *negatives])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass(frozen=True)
class QuestionReading:
    """How the reader read one validation question's paragraph."""

    answerable: bool
    best_p: float  # the highest p_answer over the paragraph's sentences
    sentence_right: bool  # the best sentence is the answer's sentence (answerable only)
    span_f1: float  # of the best sentence's span against the gold answers
    span_p: float


def read_questions(score: Scorer, questions: Sequence[squad.Question]) -> list[QuestionReading]:
    """Scores every sentence of each question's paragraph and keeps the best one's reading."""
    out: list[QuestionReading] = []
    for q in questions:
        para = q.paragraph
        candidates = [para.candidate(i) for i in range(len(para.sentences))]
        verdicts = score(q.text, candidates)
        best = max(range(len(verdicts)), key=lambda i: verdicts[i].p_answer)
        found = squad.answer_sentence(q)
        right = found is not None and found[0] == best
        span = verdicts[best].span(candidates[best].sentence)
        f1 = max((span_f1(span, t) for _, t in q.answers), default=0.0)
        out.append(QuestionReading(bool(q.answers), verdicts[best].p_answer, right, f1, verdicts[best].p_span))
    return out


def summarise(readings: Sequence[QuestionReading]) -> dict[str, float]:
    """Validation figures: sentence choice, span F1, answerability AUC and the decline trade-off."""
    answerable = [r for r in readings if r.answerable]
    unanswerable = [r for r in readings if not r.answerable]
    pos = [r.best_p for r in answerable]
    neg = [r.best_p for r in unanswerable]
    figures = {
        "questions": float(len(readings)),
        "sentence_accuracy": float(np.mean([r.sentence_right for r in answerable])) if answerable else 0.0,
        "span_f1": float(np.mean([r.span_f1 for r in answerable if r.sentence_right])) if answerable else 0.0,
        "answerability_auc": auc(pos, neg),
    }
    for answered in (0.90, 0.95):
        if pos and neg:
            threshold = float(np.quantile(pos, 1 - answered))
            figures[f"declined_at_answered_{answered:.2f}"] = float(np.mean([p < threshold for p in neg]))
    return figures


def fit_calibration(readings: Sequence[QuestionReading], *, answered: float = 0.92) -> tuple[float, float]:
    """Returns (answer threshold, span threshold) fitted on validation readings.

    The answer threshold keeps `answered` of the answerable questions answered (and declines
    whatever unanswerable ones fall below it); the span threshold is the lowest span
    probability above which the short answers shown are right (F1 >= 0.5) 85% of the time.
    """
    pos = sorted(r.best_p for r in readings if r.answerable)
    answer_threshold = float(np.quantile(pos, 1 - answered))
    chosen = sorted((r for r in readings if r.answerable and r.sentence_right), key=lambda r: -r.span_p)
    span_threshold = 1.0
    good = 0
    for n, r in enumerate(chosen, 1):
        good += r.span_f1 >= 0.5
        if good / n >= 0.85 and n >= 50:
            span_threshold = r.span_p
    return answer_threshold, span_threshold


def torch_scorer(torch: Any, model: Any, tokenizer: Any) -> Scorer:
    """Returns a scorer that runs the network being trained (batched, no gradients)."""

    def score(question: str, candidates: Sequence[runtime.Candidate]) -> list[runtime.Verdict]:
        items = [runtime.encode(tokenizer, question, c) for c in candidates]
        with torch.no_grad():
            answer, starts, ends = model(**collate(torch, items))
        out = []
        for row, item in enumerate(items):
            out.append(runtime.verdict(float(answer[row]), starts[row].numpy(), ends[row].numpy(), item))
        return out

    return score


# --- training ---------------------------------------------------------------------------------


def train(
    squad_dir: Path, out_dir: Path, config: TrainingConfig = TrainingConfig(), *, base_model: str = "all-MiniLM-L6-v2"
) -> dict[str, Any]:
    """Trains (or resumes training) the reader and ships it to `out_dir`; returns its figures."""
    torch = _require_torch()
    from tokenizers import Tokenizer

    from assistant.embedding.base import resolve_model_dir

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    torch.set_num_threads(config.threads)
    if config.precision == "bf16" and not native_bf16(torch):
        logger.warning("this CPU has no native bfloat16: training in float32 (about twice as slow)")
        config = replace(config, precision="fp32")
    if config.precision not in PRECISIONS:
        raise SystemExit(f"precision must be {' or '.join(PRECISIONS)}, not {config.precision!r}")
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / "training"
    work.mkdir(exist_ok=True)

    model_dir = resolve_model_dir(base_model)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    data = squad.build(
        squad_dir,
        seed=config.seed,
        squad11_questions=config.squad11_questions,
        validation_articles=config.validation_articles,
        swap_rate=config.swap_rate,
        negation_rate=config.negation_rate,
        focus_negatives=config.focus_negatives,
        focus_replay=config.focus_replay,
        focus_article_negatives=config.focus_article_negatives,
    )
    encoded = [encode_example(tokenizer, e) for e in data.examples]
    plan = [b for epoch in range(config.epochs) for b in batches(encoded, config.batch_size, config.seed + epoch)]
    first = len(plan)
    focus = [encode_example(tokenizer, e) for e in data.focus]
    offset = len(encoded)
    encoded.extend(focus)
    for epoch in range(config.focus_epochs if focus else 0):
        plan.extend([offset + i for i in b] for b in batches(focus, config.batch_size, config.seed + 100 + epoch))
    quick = random.Random(config.seed).sample(data.validation, min(config.quick_validation, len(data.validation)))

    model = build_model(model_dir)
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
            "weight_decay": config.weight_decay,
        },
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, first, len(plan) - first, config)
    )
    step = 0
    checkpoint = work / CHECKPOINT
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        # Threads change speed, not the result (beyond float rounding): a run may resume with others.
        # A checkpoint of the first stage resumes into any focus stage: those settings come after it.
        with_focus = state["step"] > first
        if _identity(state["config"], with_focus=with_focus) != _identity(asdict(config), with_focus=with_focus):
            raise SystemExit(f"{checkpoint} was made with other settings: delete {work} to start again")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"])
        step = state["step"]
        # The optimizer kept the rate of its last step; a new stage may start where the old ended.
        for group, base in zip(optimizer.param_groups, schedule.base_lrs, strict=True):
            group["lr"] = base * learning_rate_factor(step, first, len(plan) - first, config)
        print(f"resuming from step {step} of {len(plan)}", file=sys.stderr)  # noqa: T201

    with (work / LOG).open("a", encoding="utf-8") as log:
        return _train_loop(
            torch,
            model,
            tokenizer,
            model_dir,
            data,
            encoded,
            plan,
            first,
            quick,
            optimizer,
            schedule,
            step,
            config,
            out_dir,
            log,
        )


def _train_loop(
    torch: Any,
    model: Any,
    tokenizer: Any,
    model_dir: Path,
    data: squad.TrainingSet,
    encoded: list[Encoded],
    plan: list[list[int]],
    first: int,
    quick: list[squad.Question],
    optimizer: Any,
    schedule: Any,
    step: int,
    config: TrainingConfig,
    out_dir: Path,
    log: Any,
) -> dict[str, Any]:
    from tqdm import tqdm

    checkpoint = out_dir / "training" / CHECKPOINT
    scorer = torch_scorer(torch, model, tokenizer)
    bce = torch.nn.BCEWithLogitsLoss()
    ce = torch.nn.CrossEntropyLoss()
    model.train()
    started = time.monotonic()
    progress = tqdm(total=len(plan), initial=step, desc="training the reader", unit="batch", mininterval=5)
    running: float | None = None  # the loss, smoothed for the progress bar
    while step < len(plan):
        rows = [encoded[i] for i in plan[step]]
        items = [r.item for r in rows]
        inputs = collate(torch, items)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            outputs = model(**inputs)
        answer, starts, ends = (t.float() for t in outputs)
        labels = torch.tensor([float(r.label) for r in rows])
        loss = bce(answer, labels)
        spans = [k for k, r in enumerate(rows) if r.start >= 0]
        if spans:
            mask = sentence_mask(torch, [items[k] for k in spans], starts.shape[1])
            s_logits = starts[spans].masked_fill(~mask, -1e4)
            e_logits = ends[spans].masked_fill(~mask, -1e4)
            s_gold = torch.tensor([rows[k].start for k in spans])
            e_gold = torch.tensor([rows[k].end for k in spans])
            loss = loss + config.span_weight * (ce(s_logits, s_gold) + ce(e_logits, e_gold)) / 2
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        step += 1
        value = loss.item()
        running = value if running is None else 0.98 * running + 0.02 * value
        progress.update(1)
        progress.set_postfix(loss=f"{running:.3f}")
        if step % 50 == 0:
            elapsed = time.monotonic() - started
            log.write(
                json.dumps(
                    {
                        "step": step,
                        "loss": round(running, 4),
                        "lr": schedule.get_last_lr()[0],
                        "seconds": round(elapsed),
                    }
                )
                + "\n"
            )
            log.flush()
        if step % config.checkpoint_every == 0 or step in (first, len(plan)):
            partial = checkpoint.with_suffix(".partial")
            torch.save(
                {
                    "config": asdict(config),
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "rng": torch.get_rng_state(),
                    "step": step,
                },
                partial,
            )
            os.replace(partial, checkpoint)
            if step == first < len(plan):
                shutil.copyfile(checkpoint, checkpoint.with_name(FIRST_STAGE))
        if step % config.validate_every == 0:
            model.eval()
            figures = summarise(read_questions(scorer, quick))
            model.train()
            log.write(json.dumps({"step": step, "validation_quick": figures}) + "\n")
            log.flush()
            progress.write(f"step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    progress.close()
    model.eval()
    return ship(torch, model, tokenizer, model_dir, data.validation, out_dir, config, log)


def ship(
    torch: Any,
    model: Any,
    tokenizer: Any,
    model_dir: Path,
    validation: Sequence[squad.Question],
    out_dir: Path,
    config: TrainingConfig,
    log: Any,
) -> dict[str, Any]:
    """Exports the network to int8 ONNX, validates the export, calibrates and writes the card."""
    from assistant.embedding.onnx_backend import quantize_onnx

    work = out_dir / "training"
    fp32 = work / "reader.onnx"
    sample = torch.ones((1, 8), dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
        torch.onnx.export(
            model,
            (sample, sample, torch.zeros_like(sample)),
            str(fp32),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["answer_logit", "start_logits", "end_logits"],
            dynamic_axes={
                "input_ids": axes,
                "attention_mask": axes,
                "token_type_ids": axes,
                "answer_logit": {0: "batch"},
                "start_logits": axes,
                "end_logits": axes,
            },
            opset_version=17,
            dynamo=False,
        )
    quantize_onnx(fp32, out_dir / runtime.MODEL_FILE)
    shutil.copyfile(model_dir / "tokenizer.json", out_dir / runtime.TOKENIZER_FILE)
    digest = runtime.sha256_of(out_dir / runtime.MODEL_FILE)
    # A placeholder calibration so the runtime loads; the real one is fitted just below.
    (out_dir / runtime.CALIBRATION_FILE).write_text(
        json.dumps({"model_sha256": digest, "answer_threshold": 0.5, "span_threshold": 1.0})
    )
    reader = runtime.Reader(out_dir, threads=config.threads)
    readings = read_questions(reader.read, validation)
    figures = summarise(readings)
    answer_threshold, span_threshold = fit_calibration(readings)
    calibration = {
        "model_sha256": digest,
        "answer_threshold": round(answer_threshold, 4),
        "span_threshold": round(span_threshold, 4),
        "fitted_on": (
            f"SQuAD 2.0 dev, {config.validation_articles} held-out articles ({len(validation)} questions), "
            "best sentence of the gold paragraph; answer threshold keeps 92% of answerable questions "
            "answered, span threshold gives 85% right short answers"
        ),
        "validation": figures,
    }
    (out_dir / runtime.CALIBRATION_FILE).write_text(json.dumps(calibration, indent=2) + "\n")
    log.write(json.dumps({"final_validation_int8": figures, "calibration": calibration}) + "\n")
    log.flush()
    shutil.copyfile(work / LOG, out_dir / LOG)  # the shipped model keeps its training log
    (out_dir / TRAINING_FILE).write_text(
        json.dumps({"config": asdict(config), "validation_int8": figures, "sha256": digest}, indent=2) + "\n"
    )
    return {"validation": figures, "calibration": calibration, "sha256": digest}


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: `python -m assistant.training.reader_trainer SQUAD_DIR OUT_DIR`."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("squad", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--squad11-questions", type=int, default=TrainingConfig.squad11_questions)
    parser.add_argument("--epochs", type=int, default=TrainingConfig.epochs)
    parser.add_argument("--negation-rate", type=float, default=TrainingConfig.negation_rate)
    parser.add_argument("--focus-negatives", type=int, default=TrainingConfig.focus_negatives)
    parser.add_argument("--focus-epochs", type=int, default=TrainingConfig.focus_epochs)
    parser.add_argument("--focus-article-negatives", type=int, default=TrainingConfig.focus_article_negatives)
    parser.add_argument("--threads", type=int, default=TrainingConfig.threads)
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=TrainingConfig.precision,
        help="bf16 (default) is about twice as fast on a CPU with native bfloat16",
    )
    args = parser.parse_args(argv)
    config = TrainingConfig(
        squad11_questions=args.squad11_questions,
        epochs=args.epochs,
        negation_rate=args.negation_rate,
        focus_negatives=args.focus_negatives,
        focus_epochs=args.focus_epochs,
        focus_article_negatives=args.focus_article_negatives,
        threads=args.threads,
        precision=args.precision,
    )
    result = train(args.squad, args.out, config)
    print(json.dumps(result, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
