"""The training command on a tiny SQuAD: it trains, checkpoints, resumes and ships a model."""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from assistant.answering.reader import CALIBRATION_FILE, MODEL_FILE, Candidate, Reader
from assistant.training import reader_trainer, squad

pytest.importorskip("torch", reason="training needs the train extra (torch)")

CONTEXT = (
    "The Hanseatic League was a commercial confederation of merchant guilds. "
    "It was founded in 1356 in Lübeck. "
    "Its members traded timber, furs and grain across the Baltic Sea."
)


def _write_squad(folder: Path) -> None:
    def article(title: str, n: int) -> dict:  # type: ignore[type-arg]
        qas = [
            {
                "id": f"{title}-1",
                "question": "When was the league founded?",
                "answers": [{"text": "1356", "answer_start": CONTEXT.find("1356")}],
            },
            {
                "id": f"{title}-2",
                "question": "What did the members trade?",
                "answers": [{"text": "timber", "answer_start": CONTEXT.find("timber")}],
            },
            {"id": f"{title}-3", "question": "Who dissolved the league?", "is_impossible": True, "answers": []},
        ]
        return {"title": f"{title}_{n}", "paragraphs": [{"context": CONTEXT, "qas": qas}]}

    for name, count in ((squad.SQUAD11, 3), (squad.SQUAD20, 3)):
        with gzip.open(folder / name, "wt", encoding="utf-8") as handle:
            json.dump({"data": [article(name[:7], n) for n in range(count)]}, handle)


def _squad_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "squad"
    folder.mkdir()
    _write_squad(folder)
    return folder


@pytest.mark.slow
def test_training_checkpoints_resumes_and_ships_a_loadable_reader(tmp_path: Path) -> None:
    data = _squad_folder(tmp_path)
    out = tmp_path / "reader"
    config = reader_trainer.TrainingConfig(
        squad11_questions=9,
        validation_articles=1,
        batch_size=4,
        checkpoint_every=1,
        validate_every=2,
        quick_validation=2,
        threads=1,
    )
    result = reader_trainer.train(data, out, config)

    log = [json.loads(line) for line in (out / reader_trainer.LOG).read_text().splitlines()]
    assert any("validation_quick" in entry for entry in log)
    assert (out / "training" / reader_trainer.CHECKPOINT).is_file()
    shipped = json.loads((out / reader_trainer.TRAINING_FILE).read_text())
    assert shipped["sha256"] == result["sha256"]
    assert set(result["validation"]) >= {"sentence_accuracy", "answerability_auc", "span_f1"}

    reader = Reader(out)  # loads without torch's help: ONNX, tokenizer, calibration
    verdicts = reader.read("When was the league founded?", [Candidate("It was founded in 1356 in Lübeck.")])
    assert 0.0 <= verdicts[0].p_answer <= 1.0
    assert json.loads((out / CALIBRATION_FILE).read_text())["model_sha256"] == result["sha256"]

    # Started again on the same folder, it resumes from the last checkpoint (the end) and only
    # ships again: the same weights, so the same model file.
    before = (out / MODEL_FILE).read_bytes()
    again = reader_trainer.train(data, out, config)
    assert again["sha256"] == result["sha256"]
    assert (out / MODEL_FILE).read_bytes() == before

    # Other settings on the same folder are refused rather than mixed into one model.
    with pytest.raises(SystemExit, match="other settings"):
        reader_trainer.train(
            data, out, reader_trainer.TrainingConfig(squad11_questions=8, validation_articles=1, batch_size=4)
        )


def test_each_stage_warms_up_and_decays_to_zero_on_its_own() -> None:
    config = reader_trainer.TrainingConfig(learning_rate=1e-4, focus_learning_rate=2e-5, warmup=0.1)
    rate = [reader_trainer.learning_rate_factor(step, 100, 50, config) for step in range(150)]
    assert rate[9] == pytest.approx(1.0) and rate[99] == pytest.approx(1 / 90)
    # The focus stage starts again from its own warm-up, to its own peak (2e-5 of 1e-4).
    assert rate[100] == pytest.approx(0.2 / 5) and max(rate[100:]) == pytest.approx(0.2)
    assert rate[149] == pytest.approx(0.2 / 45)


@pytest.mark.slow
def test_a_first_stage_checkpoint_resumes_into_the_focus_stage_as_one_run_would(tmp_path: Path) -> None:
    data = _squad_folder(tmp_path)
    first = reader_trainer.TrainingConfig(
        squad11_questions=9, validation_articles=1, batch_size=4, checkpoint_every=1, threads=1, focus_negatives=0
    )
    both = reader_trainer.TrainingConfig(**{**asdict(first), "focus_negatives": 2})
    in_one = reader_trainer.train(data, tmp_path / "one", both)
    first_only = reader_trainer.train(data, tmp_path / "two", first)
    resumed = reader_trainer.train(data, tmp_path / "two", both)
    assert resumed["sha256"] == in_one["sha256"] != first_only["sha256"]
    # A run with a focus stage keeps its first stage's end aside (one without has none): in
    # another folder it starts a focus stage without training the first stage again.
    assert not (tmp_path / "two" / "training" / reader_trainer.FIRST_STAGE).exists()
    kept = tmp_path / "one" / "training" / reader_trainer.FIRST_STAGE
    (tmp_path / "three" / "training").mkdir(parents=True)
    shutil.copyfile(kept, tmp_path / "three" / "training" / reader_trainer.CHECKPOINT)
    assert reader_trainer.train(data, tmp_path / "three", both)["sha256"] == in_one["sha256"]


@pytest.mark.slow
def test_without_native_bfloat16_it_trains_in_float32_and_records_that(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _squad_folder(tmp_path)
    monkeypatch.setattr(reader_trainer, "native_bf16", lambda torch: False)
    config = reader_trainer.TrainingConfig(squad11_questions=9, validation_articles=1, batch_size=4, threads=1)
    assert config.precision == "bf16"
    reader_trainer.train(data, tmp_path / "out", config)
    shipped = json.loads((tmp_path / "out" / reader_trainer.TRAINING_FILE).read_text())
    assert shipped["config"]["precision"] == "fp32"


def test_an_unknown_precision_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="bf16 or fp32"):
        reader_trainer.train(tmp_path, tmp_path / "out", reader_trainer.TrainingConfig(precision="fp16"))


def test_a_checkpoint_from_before_the_precision_setting_resumes_only_in_float32() -> None:
    old = {k: v for k, v in asdict(reader_trainer.TrainingConfig()).items() if k != "precision"}
    as_fp32 = asdict(reader_trainer.TrainingConfig(precision="fp32"))
    as_bf16 = asdict(reader_trainer.TrainingConfig(precision="bf16"))
    assert reader_trainer._identity(old) == reader_trainer._identity(as_fp32)
    assert reader_trainer._identity(old) != reader_trainer._identity(as_bf16)
