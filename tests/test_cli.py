"""The `assistant` command run as a user runs it: a separate process, real model, real index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
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
    done = run("ask", "Which partners hold a Gold label?", "--index", str(built_index))
    assert done.returncode == 0, done.stderr
    assert "Plastipolis [1]" in done.stdout
    assert "Sources" in done.stdout
    assert "[2] 4 Motors for the European Industry 4.0 › A.3.3.3.1. microTEC Südwest" in done.stdout
    assert "Loading" not in done.stderr  # no model-loading noise


@pytest.mark.slow
def test_ask_json_has_the_documented_shape(built_index: Path) -> None:
    done = run("ask", "When was Bwcon founded?", "--index", str(built_index), "--json", "--k", "3")
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
