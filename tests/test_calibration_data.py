"""The extractive answerer's fitted numbers are data beside it, tied to the model they were fitted with."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.answering.extractive import SHIPPED_CALIBRATION, SIGNALS, ExtractiveCalibration
from assistant.config import Settings
from assistant.embedding import Embedder
from assistant.errors import ConfigError
from assistant.evaluation import EvalReport, baseline_from, setup_changes
from assistant.pipeline import Assistant
from tests.conftest import CORPUS
from tests.test_cli import run

# Not a gold question: the MetaIndustry4 anniversary note says so in one sentence.
QUESTION = "How many partners does MetaIndustry4 have?"


def _copy(tmp_path: Path, **changes: object) -> Path:
    data = json.loads(SHIPPED_CALIBRATION.read_text(encoding="utf-8"))
    data.update(changes)
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_the_shipped_calibration_weighs_every_signal_and_names_its_embedding_model() -> None:
    calibration = ExtractiveCalibration.load()
    signals = set(SIGNALS)
    assert set(calibration.select) == signals
    assert set(calibration.answer) == signals | {"bias"}
    assert 0 < calibration.threshold < 1
    assert calibration.stale_for("all-MiniLM-L6-v2@onnx-int8") == ""
    stale = calibration.stale_for("multilingual-e5-small@e5-small")
    assert "multilingual-e5-small@e5-small" in stale and "eval/calibrate.py --write" in stale


BROKEN = [
    "{",
    "{}",
    '{"select": {}, "answer": {}}',
    '{"select": 1, "answer": {}, "threshold": 0}',
    # fitted for a signal this version no longer computes
    '{"select": {"headings": 0.2}, "answer": {}, "threshold": 0.3, "embedding_model": "m"}',
]


@pytest.mark.parametrize("text", BROKEN)
def test_an_unreadable_calibration_is_a_config_error_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "weights.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="weights.json"):
        ExtractiveCalibration.load(path)
    with pytest.raises(ConfigError, match="missing.json"):
        ExtractiveCalibration.load(tmp_path / "missing.json")


def test_the_answerer_runs_on_the_configured_file_and_warns_when_it_was_fitted_for_another_model(
    built_index: Path, real_embedder: Embedder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def assistant(calibration: Path | None) -> Assistant:
        settings = Settings(
            corpus_dir=CORPUS, index_dir=built_index, data_dir=tmp_path / "data", extractive_calibration=calibration
        )
        return Assistant(settings, embedder=real_embedder)

    shipped = assistant(None)
    assert not shipped.ask(QUESTION).abstained
    # The numbers come from the file: a threshold no answer reaches declines the same question.
    strict = assistant(_copy(tmp_path, threshold=0.999))
    assert strict.ask(QUESTION).abstained
    assert strict.setup()["calibration_sha256"] != shipped.setup()["calibration_sha256"]
    with caplog.at_level(logging.WARNING, logger="assistant.pipeline"):
        assistant(_copy(tmp_path, embedding_model="other-model@onnx")).ask(QUESTION)
    assert any("other-model@onnx" in r.getMessage() and "refit them" in r.getMessage() for r in caplog.records)


def test_a_baseline_made_for_another_setup_is_named_not_compared() -> None:
    made = EvalReport("gold.jsonl", 5, [], setup={"corpus_sha256": "aaa", "embedding_model": "m@onnx-int8"})
    baseline = baseline_from(made)
    same = EvalReport("gold.jsonl", 5, [], setup=dict(made.setup))
    assert setup_changes(same, baseline) == []
    other = EvalReport("gold.jsonl", 5, [], setup={"corpus_sha256": "bbb", "embedding_model": "m@onnx-int8"})
    assert setup_changes(other, baseline) == ["corpus_sha256: the baseline was made with aaa, this run has bbb"]
    assert setup_changes(other, {"summary": {}}) == []  # an old baseline records no setup


@pytest.mark.slow
def test_the_gate_refuses_a_baseline_of_another_corpus_and_eval_writes_no_report_unless_asked(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    name = "metaindustry4-third-birthday.txt"
    shutil.copy(CORPUS / name, corpus / name)
    gold = tmp_path / "gold.jsonl"
    item = {
        "id": "m1",
        "kind": "number",
        "question": QUESTION,
        "key_facts": ["61"],
        "sources": [{"doc": name, "quote": "61 partners"}],
    }
    gold.write_text(json.dumps(item) + "\n", encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    env = {"ASSISTANT_CORPUS_DIR": str(corpus), "ASSISTANT_INDEX_DIR": str(tmp_path / "index")}
    baseline = tmp_path / "baseline.json"
    report = tmp_path / "reports" / "run.json"  # a folder that does not exist yet, as in a fresh clone
    made = run("eval", "--gold", str(gold), "--save-baseline", str(baseline), "--json", str(report), env=env, cwd=work)
    assert made.returncode == 0, made.stderr
    assert list(work.iterdir()) == []  # no report, no chart: nothing but what was asked for
    assert json.loads(report.read_text())["setup"]["embedding_model"]
    assert json.loads(baseline.read_text())["setup"]["answerer"] == "extractive+reader-gate"

    assert run("eval", "--gold", str(gold), "--check", str(baseline), env=env, cwd=work).returncode == 0
    (corpus / name).write_text((CORPUS / name).read_text(encoding="utf-8") + "\nA new line.\n", encoding="utf-8")
    changed = run("eval", "--gold", str(gold), "--corpus", str(corpus), "--check", str(baseline), env=env, cwd=work)
    assert changed.returncode == 1
    assert "not comparable: corpus_sha256" in changed.stderr and "--save-baseline" in changed.stderr


def _calibrate(built_index: Path, tmp_path: Path, name: str, *extra: str, installed: Path | None = None) -> Path:
    root = Path(__file__).resolve().parents[1]
    written = tmp_path / name
    done = subprocess.run(
        [sys.executable, str(root / "eval" / "calibrate.py"), "--set", f"{root / 'eval' / 'gold.jsonl'}={built_index}"]
        + ["--write", str(written), "--threshold", "0.4", *extra],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "ASSISTANT_EXTRACTIVE_CALIBRATION": str(installed)} if installed else None,
    )
    assert done.returncode == 0, done.stderr
    assert "threshold | gold.jsonl: answered / declined" in done.stdout
    return written


@pytest.mark.slow
def test_the_rules_weights_are_refitted_on_the_rules_alone(built_index: Path, tmp_path: Path) -> None:
    # eval/calibrate.py reads the extractive answerer's signals: the reader's gate in front of it
    # by default must not stand in its way, and the file it writes loads as the shipped one does.
    written = _calibrate(built_index, tmp_path, "calibration.json")
    fitted = ExtractiveCalibration.load(written)
    assert fitted.threshold == 0.4 and set(fitted.answer) == set(ExtractiveCalibration.load().answer)
    # A fit without a signal gives it no weight.
    again = _calibrate(built_index, tmp_path, "again.json", "--without", "order")
    without_order, with_all = json.loads(again.read_text()), json.loads(written.read_text())
    assert without_order["select"]["order"] == 0.0 and without_order["answer"]["order"] == 0.0
    assert without_order["select"] != with_all["select"]
    # No sampling, and no dependence on the weights being replaced: the same data, the same fit.
    rerun = _calibrate(built_index, tmp_path, "rerun.json", installed=again)
    assert json.loads(rerun.read_text())["select"] == with_all["select"]
