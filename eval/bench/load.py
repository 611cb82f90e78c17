"""Load test on loopback: N concurrent clients for a fixed time against the chat endpoints.

    python eval/bench/load.py --clients 8 --seconds 60
    python eval/bench/load.py --clients 32 --seconds 60 --stream --reindex-every 10
    python eval/bench/load.py --clients 8 --seconds 60 --workers 2 --reindex-every 10

Starts `assistant serve` on a free loopback port over a copy of the corpus (so that reindexing
can change it), then runs the clients, each asking the gold questions in turn, and reports
requests, failures and latency p50/p95. With --reindex-every S it appends a line to one
document and calls POST /api/admin/reindex every S seconds while the clients run: requests in
flight must finish on the old index, new ones on the new one, and none may fail; with --workers
N the reindex runs in one worker and the others swap its version in. Every loop is bounded by
--seconds and the script stops by itself; it only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from assistant.bench.benchmark import free_port  # shared with `assistant bench`

ROOT = Path(__file__).resolve().parents[2]
KEY = "load-test-key-0123456789abcdef"
ADMIN_KEY = "load-test-admin-key-0123456789"  # reindexing needs an admin key, not an API key
QUESTIONS = [
    "Which partners hold a Gold label?",
    "When was Bwcon founded?",
    "How many partners does MetaIndustry4 have?",
    "Which clusters have a Bronze label?",
    "What is the capital of Australia?",
    "Who finances Smart Industri Norra Mellansverige?",
    "How many members does Clúster Digital de Catalunya have?",
    "What are the main missions of Plastipolis?",
]


def start_server(workdir: Path, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    """Starts `assistant serve --workers N` on 127.0.0.1:port and waits until it is ready."""
    env = {
        **os.environ,
        "ASSISTANT_CORPUS_DIR": str(workdir / "corpus"),
        "ASSISTANT_INDEX_DIR": str(workdir / "index"),
        "ASSISTANT_DATA_DIR": str(workdir / "data"),
        "ASSISTANT_API_KEYS": KEY,
        "ASSISTANT_ADMIN_KEYS": ADMIN_KEY,
    }
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assistant.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    if not wait_ready(process, f"http://127.0.0.1:{port}", workdir / "server.log"):
        process.kill()
        raise SystemExit("the server did not become ready within 300 s")
    return process


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 300) -> bool:
    """Waits until the server at `url` answers /readyz with 200; False after `timeout` seconds.

    Exits (naming its log) as soon as the server process ends.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited; see {log}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return False


def one_request(client: httpx.Client, question: str, stream: bool) -> None:
    """Sends one chat request; raises if it did not succeed completely."""
    if not stream:
        response = client.post("/api/chat", json={"message": question})
        response.raise_for_status()
        if "answer" not in response.json():
            raise RuntimeError("no answer in the response")
        return
    with client.stream("POST", "/api/chat/stream", json={"message": question}) as response:
        response.raise_for_status()
        body = response.read().decode()
    if "event: done" not in body or "event: error" in body:
        raise RuntimeError("the stream did not end with done")


def run(args: argparse.Namespace) -> dict[str, object]:
    """Runs the load and returns the figures."""
    workdir = Path(tempfile.mkdtemp(prefix="assistant-load-"))
    shutil.copytree(ROOT / "corpus", workdir / "corpus")
    port = free_port()
    server = start_server(workdir, port, args.workers)
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + args.seconds
    reindexes = 0

    def client_loop(number: int) -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120) as client:
            i = number
            while time.monotonic() < stop_at:
                question = QUESTIONS[i % len(QUESTIONS)]
                i += 1
                started = time.perf_counter()
                try:
                    one_request(client, question, args.stream)
                except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                    with lock:
                        failures.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)

    def reindex_loop() -> None:
        nonlocal reindexes
        target = workdir / "corpus" / "florence-industrial-modernisation-workshop.txt"
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=300) as client:
            while time.monotonic() + args.reindex_every < stop_at:
                time.sleep(args.reindex_every)
                with target.open("a", encoding="utf-8") as handle:
                    handle.write(f"\n\nLoad test note number {reindexes}.\n")
                response = client.post("/api/admin/reindex")
                if response.status_code >= 400:
                    with lock:
                        failures.append(f"reindex: HTTP {response.status_code}")
                reindexes += 1

    try:
        threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(args.clients)]
        if args.reindex_every:
            threads.append(threading.Thread(target=reindex_loop))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.seconds + 600)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else 0.0

    result = {
        "endpoint": "/api/chat/stream" if args.stream else "/api/chat",
        "clients": args.clients,
        "workers": args.workers,
        "seconds": args.seconds,
        "requests": len(latencies) + len(failures),
        "failed": len(failures),
        "failures": failures[:10],
        "reindexes": reindexes,
        "throughput_rps": round(len(latencies) / args.seconds, 1),
        "latency_ms_p50": round(statistics.median(ordered), 1) if ordered else None,
        "latency_ms_p95": pct(0.95),
        "latency_ms_max": round(ordered[-1], 1) if ordered else None,
    }
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def main() -> None:
    """Parses options, runs the load, prints the figures (and exits 1 on any failure)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--stream", action="store_true", help="use /api/chat/stream")
    parser.add_argument("--reindex-every", type=float, default=0, help="seconds between reindexes")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.clients <= 256 or not 0 < args.seconds <= 3600:
        raise SystemExit("--clients must be 1..256 and --seconds 0..3600")
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['endpoint']}: {result['clients']} clients, {result['workers']} workers, {result['seconds']:g} s, "
            f"{result['reindexes']} reindexes: {result['requests']} requests, "
            f"{result['failed']} failed, {result['throughput_rps']} req/s, "
            f"p50 {result['latency_ms_p50']} ms, p95 {result['latency_ms_p95']} ms, "
            f"max {result['latency_ms_max']} ms"
        )
        for failure in result["failures"]:  # type: ignore[attr-defined]
            print("  failure:", failure)
    sys.exit(1 if result["failed"] else 0)


if __name__ == "__main__":
    main()
