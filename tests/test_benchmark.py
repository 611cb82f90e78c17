"""`assistant bench`: every section runs and prints (figures are printed, never asserted)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.bench.benchmark import (
    BenchReport,
    Figure,
    SyntheticSpace,
    markdown_report,
    measure_ann,
    measure_keyword,
    percentile,
    zipf_documents,
)
from tests.conftest import ROOT


def test_figure_summarises_runs_against_its_target() -> None:
    figure = Figure("index", "cold index", "s", [3.0, 9.0, 4.0], target=8.0)
    assert figure.median == 4.0
    assert figure.meets is True
    assert Figure("x", "recall", "", [0.9], target=0.95, higher_is_better=True).meets is False
    assert Figure("x", "size", "MB", [1.0]).meets is None
    data = figure.to_dict()
    assert (data["min"], data["max"], data["runs"]) == (3.0, 9.0, 3)


def test_percentile_interpolates() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 95) == 5


def test_synthetic_vectors_are_unit_reproducible_and_clustered() -> None:
    space = SyntheticSpace(dim=64, topics=16)
    a = space.sample(500, seed=1)
    assert a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, SyntheticSpace(dim=64, topics=16).sample(500, seed=1))
    # Like sentence embeddings: far from uniform (a shared direction), so mean cosine > 0.
    assert float((a @ a.T).mean()) > 0.2


def test_zipf_documents_have_a_long_tail() -> None:
    vocabulary = [f"w{i}" for i in range(1000)]
    counts: dict[str, int] = {}
    for words in zipf_documents(200, vocabulary, words=50):
        for w in words:
            counts[w] = counts.get(w, 0) + 1
    ranked = sorted(counts.values(), reverse=True)
    assert ranked[0] > 20 * ranked[len(ranked) // 2]


def test_ann_measurement_reports_recall_against_exact_search() -> None:
    rows = measure_ann(3000, queries=40, runs=1, dim=64, space=SyntheticSpace(dim=64, topics=64))
    flat, hnsw = rows
    assert flat["recall_at_10"] == 1.0  # the exact index is its own ground truth
    assert 0.5 < hnsw["recall_at_10"] <= 1.0
    assert "efSearch" in hnsw["params"]


@pytest.mark.slow
def test_keyword_measurement_runs() -> None:
    row = measure_keyword(300, queries=10, runs=1, words=30)
    assert row["n"] == 300 and row["vocabulary"] > 1000


def test_markdown_report_lists_every_figure() -> None:
    report = BenchReport(
        {
            "cores": 2,
            "memory_gib": 24,
            "cpu": "x",
            "python": "3.11",
            "load_average_start": [0.1],
            "load_average_end": [0.2],
        },
        [Figure("ask", "ask total p50", "ms", [30.0, 35.0], target=40.0)],
        {"ann": [{"what": "vectors, hnsw", "n": 10, "recall_at_10": 0.99}]},
        {"peers": "--quick"},
    )
    text = "\n".join(markdown_report(report))
    assert "ask total p50" in text and "✓" in text and "vectors, hnsw" in text and "--quick" in text


@pytest.mark.slow
def test_quick_bench_runs_every_section(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    # Two small documents keep the smoke run short; the figures are not checked.
    for name in (
        "florence-industrial-modernisation-workshop.txt",
        "metaindustry4-third-birthday.txt",
    ):
        shutil.copy(ROOT / "corpus" / name, corpus / name)
    # The product's default embedding backend, whatever the test session set.
    env = {k: v for k, v in os.environ.items() if k != "ASSISTANT_EMBEDDING_BACKEND"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant.cli",
            "bench",
            "--quick",
            "--runs",
            "1",
            "--corpus",
            str(corpus),
            "--json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    names = {f["name"] for f in report["figures"]}
    for expected in (
        "cold index",
        "no-op reindex",
        "reindex, one document changed",
        "ask total p50",
        "ask retrieval p95",
        "ask answer p95",
        "/api/chat p95, 1 client",
        "/api/chat p95, 8 clients",
        "peak memory, cold index",
        "peak memory, server",
        "index size (version folder)",
    ):
        assert expected in names
    assert {r["what"] for r in report["tables"]["ann"]} >= {"vectors, flat", "vectors, hnsw"}
    assert report["skipped"]["peers"] == "--quick"
    assert report["machine"]["cores"] >= 1 and report["machine"]["memory_gib"] > 0
