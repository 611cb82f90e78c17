"""`assistant ask` with a long pasted question and with characters nobody reads, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FACT_QUESTION
from tests.service.test_long_and_odd_questions import EMPTY, LONG_QUESTION
from tests.test_cli import run


@pytest.mark.slow
def test_a_question_longer_than_the_embedders_window_is_answered(built_index: Path) -> None:
    done = run("ask", LONG_QUESTION, "--index", str(built_index), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answer"].strip()
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "question",
    # Zero-width characters; a byte that is not UTF-8 reaches sys.argv as a lone surrogate.
    ["\u200b\u200c\u200d\ufeff\u2060", "\udcff\udcfe", " \u200b\udcff "],
    ids=["zero-width", "not-utf-8", "mixed"],
)
def test_a_question_of_nothing_readable_is_the_empty_question(built_index: Path, question: str) -> None:
    done = run("ask", question, "--index", str(built_index))
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {EMPTY}"


@pytest.mark.slow
def test_a_byte_that_is_not_utf_8_is_left_out_of_the_question(built_index: Path) -> None:
    # "Bwcon" typed in a Latin-1 terminal with an accent after it: the accent is no UTF-8.
    done = run("ask", f"{FACT_QUESTION} \udce9", "--index", str(built_index), "--json")
    assert done.returncode == 0, done.stderr
    clean = run("ask", FACT_QUESTION, "--index", str(built_index), "--json")
    answered, expected = json.loads(done.stdout), json.loads(clean.stdout)
    assert (answered["answer"], answered["citations"]) == (expected["answer"], expected["citations"])
