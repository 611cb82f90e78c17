"""Latency of POST /api/chat against the same questions answered in-process by `Assistant.ask`.

Starts `assistant serve` in a child process on a free loopback port, sends N requests from C
concurrent clients, then asks the same questions in this process with C threads, and prints
median and p95 of both and their ratio (the cost of HTTP, JSON and storing the turns).

    .venv/bin/python eval/bench/chat_latency.py [--index index] [--requests 200] [--concurrency 8]

The index is built first when it is missing. Conversations go to a temporary data folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

# The server, client and timing helpers are shared with `assistant bench`.
from assistant.bench.benchmark import (
    free_port,
    http_chat_caller,
    percentile,
    run_concurrently,
    start_server,
)
from assistant.config import Settings
from assistant.pipeline import Assistant

QUESTIONS = [
    "Which partners hold a Gold label?",
    "How many members does Clúster Digital de Catalunya have?",
    "What is Clúster Digital de Catalunya?",
    "Which partner holds a Silver label?",
    "When did Plastipolis get the Gold label?",
    "Where did the Florence industrial modernisation workshop take place?",
    "What is the capital of Peru?",
    "Who organised the Florence workshop?",
]


def load_questions(gold: Path | None) -> list[str]:
    """Returns the gold file's stand-alone questions, or the built-in list."""
    if gold is None:
        return QUESTIONS
    lines = [json.loads(line) for line in gold.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [line["question"] for line in lines if not line.get("history")]


def summary(name: str, latencies: Sequence[float], seconds: float) -> str:
    """One line of the report."""
    return (
        f"{name:<24} median {statistics.median(latencies):7.1f} ms   "
        f"p95 {percentile(latencies, 95):7.1f} ms   "
        f"mean {statistics.fmean(latencies):8.1f} ms   {len(latencies) / seconds:6.1f} req/s"
    )


def main() -> None:
    """Runs the benchmark and prints the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=None, help="index folder (default: ASSISTANT_INDEX_DIR)")
    parser.add_argument("--corpus", type=Path, default=None, help="corpus folder (default: ASSISTANT_CORPUS_DIR)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--gold", type=Path, default=None, help="take the questions from a gold file")
    args = parser.parse_args()

    overrides = {k: v for k, v in {"index_dir": args.index, "corpus_dir": args.corpus}.items() if v}
    settings = Settings(**overrides)
    assistant = Assistant(settings)
    # Incremental: a no-op when the index is up to date, a build when it is missing or stale.
    report = assistant.index()
    if report.written:
        print(f"Indexed {report.documents} documents into {settings.index_dir}.")
    questions = load_questions(args.gold)

    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        server = start_server(settings.index_dir, settings.corpus_dir, Path(data_dir), port)
        try:
            over_http = http_chat_caller(port)
            run_concurrently(over_http, questions, len(questions) * 2, args.concurrency)  # warm-up
            http, http_seconds = run_concurrently(over_http, questions, args.requests, args.concurrency)
        finally:
            server.terminate()
            server.wait(60)

    assistant.embedder.embed(["warm up"])

    def in_process(question: str) -> None:
        assistant.ask(question)

    run_concurrently(in_process, questions, len(questions) * 2, args.concurrency)  # warm-up
    local_ms, local_seconds = run_concurrently(in_process, questions, args.requests, args.concurrency)

    print(
        f"{args.requests} requests, {args.concurrency} concurrent clients, "
        f"{len(questions)} questions, {os.cpu_count()} CPUs"
    )
    print(summary("POST /api/chat", http, http_seconds))
    print(summary("Assistant.ask (in-proc)", local_ms, local_seconds))
    print(
        f"ratio HTTP / in-process: "
        f"median {statistics.median(http) / statistics.median(local_ms):.2f}x, "
        f"p95 {percentile(http, 95) / percentile(local_ms, 95):.2f}x"
    )


if __name__ == "__main__":
    main()
