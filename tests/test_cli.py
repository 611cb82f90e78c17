"""The `assistant` command run as a user runs it: a separate process, real model, real index."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import CORPUS, FACT_QUESTION, LIST_QUESTION


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # As a user's shell would have it: no folder settings unless the test gives them.
    inherited = {k: v for k, v in os.environ.items() if k not in {"ASSISTANT_INDEX_DIR", "ASSISTANT_CORPUS_DIR"}}
    full_env = {**inherited, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_ask_prints_the_answer_and_numbered_sources(built_index: Path) -> None:
    done = run("ask", LIST_QUESTION, "--index", str(built_index))
    assert done.returncode == 0, done.stderr
    answer, _, sources = done.stdout.partition("Sources")
    assert sources, done.stdout
    # Each item carries a marker, and that number lists the item's own section, under the
    # document's title: "[n] 4 Motors for the European Industry 4.0 › A.3.3.1.1. Plastipolis".
    for name, section in (
        ("Plastipolis", "A.3.3.1.1. Plastipolis"),
        ("microTEC Südwest", "A.3.3.3.1. microTEC Südwest"),
        ("Pool-Net", "A.3.3.7.1. Poolnet"),
    ):
        marker = re.search(rf"{re.escape(name)} \[(\d+)\]", answer)
        assert marker, done.stdout
        assert f"[{marker[1]}] 4 Motors for the European Industry 4.0 › {section}" in sources, done.stdout
    assert "Loading" not in done.stderr  # no model-loading noise


@pytest.mark.slow
def test_ask_json_has_the_documented_shape(built_index: Path) -> None:
    done = run("ask", FACT_QUESTION, "--index", str(built_index), "--json", "--k", "3")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) == {"answer", "abstained", "citations", "hits", "timings_ms"}
    assert set(data["timings_ms"]) == {"retrieval", "answer", "total"}
    assert len(data["hits"]) == 3
    citation = data["citations"][0]
    assert set(citation) == {"n", "doc", "title", "section", "start", "end", "quote"}
    text = (CORPUS / citation["doc"]).read_text(encoding="utf-8")
    assert text[citation["start"] : citation["end"]] == citation["quote"]


def test_empty_question_is_a_one_line_error(built_index: Path) -> None:
    done = run("ask", "  ", "--index", str(built_index))
    assert done.returncode == 1
    assert done.stderr.strip() == "error: the question is empty: ask something about the documents"
    assert "Traceback" not in done.stderr


def test_missing_index_says_what_to_run(tmp_path: Path) -> None:
    done = run("ask", "Anything?", "--index", str(tmp_path / "none"))
    assert done.returncode == 1
    assert "run `assistant index` first" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_empty_corpus_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    done = run("index", "--corpus", str(tmp_path / "corpus"), "--index", str(tmp_path / "index"))
    assert done.returncode == 1
    assert "no documents in" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_index_reports_skipped_files_and_settings_come_from_the_environment(tmp_path: Path) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "policy.md").write_text(
        "# Travel policy\n\nTrains are preferred for trips under 600 km.\n", encoding="utf-8"
    )
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    env = {"ASSISTANT_CORPUS_DIR": str(corpus), "ASSISTANT_INDEX_DIR": str(tmp_path / "idx")}
    done = run("index", env=env)
    assert done.returncode == 0, done.stderr
    assert "Indexed 1 documents" in done.stdout
    assert "skipped broken.pdf:" in done.stderr
    again = run("index", env=env)
    assert "Index is up to date" in again.stdout
    asked = run("ask", "Which trips should go by train?", "--json", env=env)
    assert json.loads(asked.stdout)["citations"][0]["doc"] == "policy.md"


@pytest.mark.slow
def test_eval_on_a_fresh_clone_indexes_the_configured_corpus_first(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    name = "metaindustry4-third-birthday.txt"
    (corpus / name).write_bytes((CORPUS / name).read_bytes())
    gold = tmp_path / "gold.jsonl"
    item = {
        "id": "m1",
        "kind": "number",
        "question": "How many partners does MetaIndustry4 have?",
        "key_facts": ["61"],
        "sources": [{"doc": name, "quote": "61 partners"}],
    }
    gold.write_text(json.dumps(item) + "\n", encoding="utf-8")
    env = {"ASSISTANT_CORPUS_DIR": str(corpus), "ASSISTANT_INDEX_DIR": str(tmp_path / "index")}
    args = ("eval", "--gold", str(gold), "--json", str(tmp_path / "out.json"), "--report", str(tmp_path / "r.md"))
    done = run(*args, env=env)
    assert done.returncode == 0, done.stderr
    assert "No index in" in done.stderr and "Indexed 1 documents" in done.stdout
    assert json.loads((tmp_path / "out.json").read_text())["summary"]["hit_at_k"] == 1.0
    # An index named explicitly is never built behind the user's back.
    missing = run(*args, "--index", str(tmp_path / "elsewhere"), env=env)
    assert missing.returncode == 1 and "run `assistant index` first" in missing.stderr


@pytest.mark.parametrize(
    ("command", "flags"),
    [("index", ["--rebuild", "--quiet", "--ray"]), ("ask", ["--json"]), ("bench", ["--quick", "--json", "--markdown"])],
)
def test_flags_read_as_flags_in_help(command: str, flags: list[str]) -> None:
    done = run(command, "--help", env={"COLUMNS": "150"})
    assert done.returncode == 0, done.stderr
    for flag in flags:
        (line,) = [line for line in done.stdout.splitlines() if line.lstrip("│ ").startswith(f"{flag} ")]
        assert "<bool>" not in line, line  # as if it wanted a value: `--json <bool>`


def test_ask_outside_the_project_folder_says_where_it_looked(tmp_path: Path) -> None:
    done = run("ask", "Anything?", cwd=tmp_path)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert f"no index in {tmp_path / 'index'}:" in line
    assert "run `assistant index` first" in line and "ASSISTANT_INDEX_DIR" in line and "--index" in line


def test_index_without_a_corpus_folder_creates_nothing(tmp_path: Path) -> None:
    done = run("index", cwd=tmp_path)  # the defaults: ./corpus, ./index
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert f"the corpus folder {tmp_path / 'corpus'} does not exist" in line
    assert "ASSISTANT_CORPUS_DIR" in line and "--corpus" in line
    assert list(tmp_path.iterdir()) == []
    named = run("index", "--corpus", str(tmp_path / "docs"), "--index", str(tmp_path / "idx"))
    assert named.returncode == 1 and str(tmp_path / "docs") in named.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_index_prints_progress_lines_when_not_on_a_terminal(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("metaindustry4-third-birthday.txt", "florence-industrial-modernisation-workshop.txt"):
        shutil.copy(CORPUS / name, corpus / name)
    env = {"ASSISTANT_CORPUS_DIR": str(corpus), "ASSISTANT_INDEX_DIR": str(tmp_path / "index")}
    done = run("index", env={**env, "ASSISTANT_PROGRESS": ""})  # stderr is a pipe here
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("Reading documents: 0/2 (0%), ")
    assert any(line.startswith("Reading documents: 2/2 (100%), ") for line in lines)
    chunks = json.loads((tmp_path / "index" / "current" / "manifest.json").read_text())["chunks"]
    assert any(line.startswith(f"Embedding chunks: {chunks}/{chunks} (100%), ") for line in lines)
    assert any(line.startswith("Writing the index, ") for line in lines)
    assert all(line.endswith(" s") for line in lines), lines
    quiet = run("index", "--quiet", "--rebuild", env=env)
    assert quiet.returncode == 0 and quiet.stderr.startswith("Full rebuild")


def test_progress_lines_come_at_each_tenth_or_after_a_quiet_while() -> None:
    from assistant.cli import ProgressLines

    now = [0.0]
    buffer = io.StringIO()
    lines = ProgressLines(Console(file=buffer, width=200), every_s=15.0, clock=lambda: now[0])
    for done in range(0, 1001, 10):  # 101 steps in 10 s: one line per tenth
        now[0] = done / 100
        lines("embed", done, 1000)
    lines("embed", 1000, 1000)  # a repeated last step prints nothing
    printed = buffer.getvalue().splitlines()
    assert printed[0] == "Embedding chunks: 0/1,000 (0%), 0 s"
    assert printed[-1] == "Embedding chunks: 1,000/1,000 (100%), 10 s"
    assert [line.split(" (")[1].split(")")[0] for line in printed] == [f"{p}%" for p in range(0, 101, 10)]
    buffer.truncate(0)
    buffer.seek(0)
    # A slow stage (one big file): a line every 15 s even within one tenth.
    for step in range(0, 5):
        now[0] = 100 + 5 * step
        lines("read", step, 1000)
    assert buffer.getvalue().splitlines() == [
        "Reading documents: 0/1,000 (0%), 100 s",
        "Reading documents: 3/1,000 (0%), 115 s",
    ]


def test_train_reader_refuses_an_unknown_precision_before_any_work() -> None:
    done = run("train-reader", "--precision", "fp16")
    assert done.returncode == 2
    message = " ".join(done.stderr.replace("│", " ").split())
    assert "Invalid value for '--precision'" in message and "'fp16' is not one of 'bf16', 'fp32'" in message
