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
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

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


def percentile(values: Sequence[float], q: float) -> float:
    """Returns the q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def run_concurrently(
    call: Callable[[str], None], questions: Sequence[str], requests: int, concurrency: int
) -> tuple[list[float], float]:
    """Runs `call` over the questions from several threads -> latencies (ms) and wall time (s)."""

    def timed(i: int) -> float:
        started = time.perf_counter()
        call(questions[i % len(questions)])
        return (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(timed, range(requests)))
    return latencies, time.perf_counter() - started


def free_port() -> int:
    """Returns a loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    index_dir: Path, corpus_dir: Path, data_dir: Path, port: int
) -> subprocess.Popen[bytes]:
    """Starts `assistant serve` and waits until /readyz says the index is loaded."""
    env = {**os.environ, "ASSISTANT_DATA_DIR": str(data_dir), "ASSISTANT_API_KEYS": ""}
    command = [
        sys.executable,
        "-m",
        "assistant.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--index",
        str(index_dir),
        "--corpus",
        str(corpus_dir),
    ]
    log = data_dir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise SystemExit(
                f"the server exited with code {process.returncode}:\n" + "\n".join(tail)
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise SystemExit("the server did not become ready within 300 s")


def load_questions(gold: Path | None) -> list[str]:
    """Returns the gold file's stand-alone questions, or the built-in list."""
    if gold is None:
        return QUESTIONS
    lines = [
        json.loads(line) for line in gold.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
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
    parser.add_argument(
        "--index", type=Path, default=None, help="index folder (default: ASSISTANT_INDEX_DIR)"
    )
    parser.add_argument(
        "--corpus", type=Path, default=None, help="corpus folder (default: ASSISTANT_CORPUS_DIR)"
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--gold", type=Path, default=None, help="take the questions from a gold file"
    )
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
            local = threading.local()

            def over_http(question: str) -> None:
                client = getattr(local, "client", None)
                if client is None:
                    client = local.client = httpx.Client(
                        base_url=f"http://127.0.0.1:{port}", timeout=120
                    )
                response = client.post("/api/chat", json={"message": question})
                response.raise_for_status()

            run_concurrently(over_http, questions, len(questions) * 2, args.concurrency)  # warm-up
            http, http_seconds = run_concurrently(
                over_http, questions, args.requests, args.concurrency
            )
        finally:
            server.terminate()
            server.wait(60)

    assistant.embedder.embed(["warm up"])

    def in_process(question: str) -> None:
        assistant.ask(question)

    run_concurrently(in_process, questions, len(questions) * 2, args.concurrency)  # warm-up
    local_ms, local_seconds = run_concurrently(
        in_process, questions, args.requests, args.concurrency
    )

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
