"""The reader: its input layout, its span decoding, its calibration check, the shipped model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from assistant.answering.reader import (
    CALIBRATION_FILE,
    MAX_TOKENS,
    SHIPPED_READER,
    Candidate,
    Reader,
    best_span,
    encode,
    sha256_of,
)
from assistant.errors import ConfigError


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    loaded = Tokenizer.from_file(str(SHIPPED_READER / "tokenizer.json"))
    loaded.no_truncation()
    loaded.no_padding()
    return loaded


def test_the_layout_is_question_sentence_then_context(tokenizer: Tokenizer) -> None:
    candidate = Candidate("Plastipolis will coordinate it.", heading="Plastipolis", previous="A new initiative.")
    item = encode(tokenizer, "Who coordinates the initiative?", candidate)
    tokens = [tokenizer.id_to_token(i) for i in item.ids]
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 3 and tokens[-1] == "[SEP]"
    first_sep = tokens.index("[SEP]")
    assert item.sentence_first == first_sep + 1
    assert item.type_ids == [0] * (first_sep + 1) + [1] * (len(tokens) - first_sep - 1)
    # The sentence's offsets point back into the sentence's own text.
    words = [candidate.sentence[s:e] for s, e in item.sentence_offsets]
    assert words[0].lower() == "plastipolis"[: len(words[0])] and words[-1] == "."


def test_a_long_sentence_is_cut_to_the_window_and_its_context_goes_first(tokenizer: Tokenizer) -> None:
    long = " ".join(["word"] * 400) + "."
    item = encode(tokenizer, "What is it?", Candidate(long, heading="Heading", previous="Before it."))
    assert len(item.ids) == MAX_TOKENS
    context = item.ids[item.sentence_first + len(item.sentence_offsets) + 1 : -1]
    assert context == []


def test_the_best_span_lies_inside_the_sentence_and_starts_before_it_ends(tokenizer: Tokenizer) -> None:
    item = encode(tokenizer, "Who?", Candidate("Anna and Bert met Carl in Paris."))
    n = len(item.ids)
    start, end = np.full(n, -5.0), np.full(n, -5.0)
    start[0] = end[0] = 50.0  # [CLS] is not in the sentence: never chosen
    first = item.sentence_first
    start[first + 4], end[first + 3] = 8.0, 9.0  # end before start: not allowed
    end[first + 5] = 7.0
    s, e, p = best_span(start, end, item)
    assert (s, e) == (4, 5) and 0 < p <= 1


def test_a_model_the_calibration_was_not_fitted_for_is_refused(tmp_path: Path) -> None:
    for name in ("reader-int8.onnx", "tokenizer.json", CALIBRATION_FILE):
        shutil.copyfile(SHIPPED_READER / name, tmp_path / name)
    Reader(tmp_path)  # an exact copy loads
    data = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    data["model_sha256"] = "0" * 64
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="recalibrate"):
        Reader(tmp_path)


def test_the_shipped_reader_matches_its_model_card() -> None:
    card = (SHIPPED_READER / "MODEL_CARD.md").read_text(encoding="utf-8")
    model = SHIPPED_READER / "reader-int8.onnx"
    assert sha256_of(model) in card
    assert model.stat().st_size < 30e6
    assert "CC BY-SA 4.0" in card and "SQuAD" in card


def test_the_shipped_reader_tells_an_answer_from_a_lookalike() -> None:
    reader = Reader()
    question = "In which year was the Hanseatic League founded?"
    answer, lookalike, unrelated = reader.read(
        question,
        [
            Candidate("The league was founded in 1356 in Lübeck.", heading="Hanseatic League"),
            Candidate("The Hanseatic League was a confederation of merchant guilds.", heading="Hanseatic League"),
            Candidate("Grain prices rose sharply during the winter.", heading="Hanseatic League"),
        ],
    )
    assert answer.p_answer > max(lookalike.p_answer, unrelated.p_answer)
    assert answer.p_answer >= reader.calibration.answer_threshold
    assert answer.span("The league was founded in 1356 in Lübeck.") in {"1356", "in 1356", "1356 in Lübeck"}


def test_sentences_read_side_by_side_get_the_verdicts_each_gets_alone() -> None:
    # The reader runs a question's sentences at once, each on its own core. Batching them instead
    # would change the scores (the int8 model quantises a batch as one), so this guards the way.
    question = "Which river flows through the old town of Kestrel Bay?"
    candidates = [
        Candidate("The Amber River flows through the old town.", heading="Kestrel Bay"),
        Candidate("Kestrel Bay has a harbour and two bridges.", heading="Kestrel Bay", previous="It is on the coast."),
        Candidate("Its fish market opens at dawn every day except Sunday.", heading="Kestrel Bay"),
        Candidate("The town was founded by wool merchants.", heading="History"),
        Candidate("Rivers in the region freeze in hard winters.", heading="Climate"),
    ]
    one_at_a_time = Reader(threads=1)
    alone = [one_at_a_time.read(question, [c])[0] for c in candidates]
    together = Reader(threads=2)
    assert together.threads == 2
    assert together.read(question, candidates) == alone
    assert Reader(threads=3).read(question, candidates[::-1]) == alone[::-1]
    assert alone[0].p_answer == max(v.p_answer for v in alone)


def _card(folder: Path, changes: dict[str, object] | None = None, *, squad11_available: int = 0) -> str:
    """The model card of a copy of the shipped reader in `folder`, its training config changed by
    `changes` (a key set to None is removed, as in a config from before that setting)."""
    from assistant.training.calibrate import write_model_card

    for name in ("reader-int8.onnx", "training.json", CALIBRATION_FILE):
        if not (folder / name).is_file():
            shutil.copyfile(SHIPPED_READER / name, folder / name)
    training = json.loads((SHIPPED_READER / "training.json").read_text(encoding="utf-8"))
    config = {**training["config"], **(changes or {})}
    training["config"] = {k: v for k, v in config.items() if v is not None}
    (folder / "training.json").write_text(json.dumps(training), encoding="utf-8")
    calibration = json.loads((folder / CALIBRATION_FILE).read_text(encoding="utf-8"))
    write_model_card(folder, calibration, squad11_available=squad11_available)
    return (folder / "MODEL_CARD.md").read_text(encoding="utf-8")


def test_the_model_card_says_whether_all_of_squad_was_used(tmp_path: Path) -> None:
    wanted = json.loads((SHIPPED_READER / "training.json").read_text(encoding="utf-8"))["config"]["squad11_questions"]

    def card(available: int) -> str:
        return _card(tmp_path, squad11_available=available)

    # A sample as large as the file is all of it; a smaller one (or an unknown file) is a sample.
    assert f"SQuAD 1.1 training set (all {wanted - 1:,} questions of its 440 articles)" in card(wanted - 1)
    assert f"SQuAD 1.1 training set ({wanted:,} questions sampled from 440 articles)" in card(wanted + 1)
    assert f"SQuAD 1.1 training set ({wanted:,} questions sampled from 440 articles)" in card(0)


def test_the_model_card_describes_a_focus_stage_only_when_there_was_one(tmp_path: Path) -> None:
    def card(focus_negatives: int) -> str:
        focus = {"focus_replay": 0.5, "focus_epochs": 1, "focus_learning_rate": 2e-5}
        return _card(tmp_path, {**focus, "focus_negatives": focus_negatives})

    assert "focus stage" not in card(0)
    described = " ".join(card(3).split())
    assert "Then a focus stage (1 epoch, learning rate 2e-05" in described
    assert "each against its 3 best-matching sentences" in described and "50% of the stage's own" in described


def test_the_model_card_says_in_which_precision_the_reader_was_trained(tmp_path: Path) -> None:
    def card(precision: str | None) -> str:
        return " ".join(_card(tmp_path, {"precision": precision}).split())

    assert "matrix products in bfloat16 (weights and optimizer in float32)" in card("bf16")
    # A model from before the setting existed was trained in float32.
    assert "float32 throughout" in card("fp32") and "float32 throughout" in card(None)


def test_the_model_card_names_the_article_negatives_only_when_there_were_some(tmp_path: Path) -> None:
    def card(article_negatives: int | None) -> str:
        focus = {"focus_replay": 0.5, "focus_epochs": 3, "focus_learning_rate": 2e-5, "focus_negatives": 3}
        return " ".join(_card(tmp_path, {**focus, "focus_article_negatives": article_negatives}).split())

    plain = "(an unanswerable one against one more), with as many first-stage examples"
    assert plain in card(None) and plain in card(0)
    assert "other paragraphs" not in card(0)
    assert (
        "(an unanswerable one against one more) and against the 1 sentence of its article's other paragraphs"
        " sharing most words with it (about its subject, not its answer), with as many" in card(1)
    )
