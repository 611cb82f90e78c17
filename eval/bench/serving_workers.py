"""`assistant serve` with one process against several worker processes, in the same run.

    python eval/bench/serving_workers.py                      # 3 runs, 1 vs 2 workers, 1 and 8 clients
    python eval/bench/serving_workers.py --runs 5 --seconds 15 --baseline f9ee643

Builds the index of the seed corpus once, then in every run starts the real server (a
subprocess, `assistant serve --workers W`) for each worker count in turn, the order reversed
every other run, warms it up and drives POST /api/chat with 1 and with 8 concurrent clients for
--seconds each. Each client is a thread with its own keep-alive HTTP connection, asking the
gold set's first-turn questions (eval/gold.jsonl) in turn. With --baseline REV the code of that
commit (`git archive`, run from a temporary folder with this virtual environment, its own
index) is measured too, as one process, and becomes the baseline of the ratios. With
--max-others C a measurement during which other programs took more than C cores is thrown away
and taken again after a pause (at most --retries times): figures of a quiet machine, from a
shared one.

The load generator runs on the same cores as the server: its own CPU time per request is
printed beside the figures, and so is the CPU that other programs took meanwhile (the machine
is shared). Per worker count: throughput, latency p50/p95 and their ratio, the server's CPU time
per request, how the requests spread over the workers (from the workers' log lines), and the
memory of every server process (RSS, and PSS, which shares the pages of common libraries out
fairly: the sum of PSS is what the server costs in all). Figures are medians over the runs;
the throughput ratio is the median of the runs' ratios against one worker. Talks only to
127.0.0.1; every loop is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from load import wait_ready  # this folder's load generator: started the same way

from assistant.bench.benchmark import free_port, memory_mb, process_tree

ROOT = Path(__file__).resolve().parents[2]
ANSWER_LINE = re.compile(r"(?:\[(\d+)\]: |: )answer route=chat ")


def gold_questions(path: Path) -> list[str]:
    """Returns the gold set's questions that start a conversation."""
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [item["question"] for item in items if not item.get("history")]


def server_env(data_dir: Path, code: Path | None = None) -> dict[str, str]:
    """The server's environment: this one without settings that would change what is measured
    (with `code`, that folder's package comes first on the path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_") and k != "OMP_NUM_THREADS"}
    env["ASSISTANT_DATA_DIR"] = str(data_dir)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    return env


def cpu_seconds(pids: list[int]) -> float:
    """Returns the user + system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """Returns the CPU time all programs on the machine have used so far (from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def role(pid: int, server_pid: int, workers: int) -> str:
    """Names a server process: the server itself, the supervisor, a worker or a helper."""
    if pid == server_pid:
        return "server" if workers == 1 else "supervisor"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    return "resource tracker" if "resource_tracker" in command else "worker"


@dataclass
class Server:
    """A running `assistant serve` subprocess."""

    process: subprocess.Popen[bytes]
    port: int
    workers: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def answers_by_worker(self, since: int) -> dict[str, int]:
        """Counts the answers each worker logged after byte `since` of the log."""
        with self.log.open("rb") as handle:
            handle.seek(since)
            text = handle.read().decode(errors="replace")
        counts: dict[str, int] = {}
        for pid in ANSWER_LINE.findall(text):
            counts[pid] = counts.get(pid, 0) + 1
        return counts

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@dataclass(frozen=True)
class Setup:
    """What to serve: a worker count, and the code (None: this checkout) with its own index."""

    label: str
    workers: int
    code: Path | None = None
    index_dir: Path = Path()


def start_server(work: Path, setup: Setup, corpus_dir: Path, name: str) -> Server:
    """Starts `assistant serve` as `setup` says and waits until it answers /readyz."""
    port = free_port()
    data_dir = work / f"data-{name}"
    data_dir.mkdir(parents=True, exist_ok=True)
    log = work / f"server-{name}.log"
    command = [sys.executable, "-m", "assistant.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--index", str(setup.index_dir), "--corpus", str(corpus_dir)]
    if setup.code is None:
        command += ["--workers", str(setup.workers)]
    env = server_env(data_dir, setup.code)
    cwd = setup.code or ROOT
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    server = Server(process, port, setup.workers, log)
    if wait_ready(process, server.url, log):
        return server
    server.stop()
    raise SystemExit(f"the server did not become ready within 300 s; see {log}")


@dataclass
class Measurement:
    """One load level against one server: what the clients saw and what it cost."""

    workers: int
    clients: int
    label: str = ""
    requests: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    server_cpu_s: float = 0.0
    generator_cpu_s: float = 0.0
    others_cpu_s: float = 0.0  # CPU that neither the server nor this script used meanwhile
    by_worker: dict[str, int] = field(default_factory=dict)
    load_average: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


def drive(server: Server, questions: list[str], clients: int, seconds: float) -> Measurement:
    """Runs `clients` threads asking questions for `seconds`; returns what they saw and cost."""
    result = Measurement(server.workers, clients)
    lock = threading.Lock()
    log_start = server.log.stat().st_size
    pids = server.pids()
    server_cpu, busy, own_cpu = cpu_seconds(pids), machine_busy_seconds(), time.process_time()
    started = time.perf_counter()
    stop_at = time.monotonic() + seconds

    def client(number: int) -> None:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            i = number * 7  # the clients start at different questions
            while time.monotonic() < stop_at:
                question = questions[i % len(questions)]
                i += 1
                begun = time.perf_counter()
                try:
                    response = http.post("/api/chat", json={"message": question})
                    response.raise_for_status()
                    ok = "answer" in response.json()
                except (httpx.HTTPError, ValueError):
                    ok = False
                with lock:
                    if ok:
                        result.latencies_ms.append((time.perf_counter() - begun) * 1000)
                    else:
                        result.failed += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 300)
    result.seconds = time.perf_counter() - started
    result.requests = len(result.latencies_ms) + result.failed
    result.server_cpu_s = cpu_seconds(pids) - server_cpu
    result.generator_cpu_s = time.process_time() - own_cpu
    result.others_cpu_s = max(0.0, machine_busy_seconds() - busy - result.server_cpu_s - result.generator_cpu_s)
    result.load_average = os.getloadavg()[0]
    time.sleep(0.3)  # the last answers' log lines
    result.by_worker = server.answers_by_worker(log_start)
    return result


def build_index(work: Path, corpus: Path, name: str, code: Path | None = None) -> Path:
    """Indexes the corpus with the code given (None: this checkout); returns the index folder."""
    index = work / f"index-{name}"
    command = [sys.executable, "-m", "assistant.cli", "index", "--corpus", str(corpus), "--index", str(index)]
    env = server_env(work / f"data-index-{name}", code)
    subprocess.run(command, env=env, check=True, capture_output=True, cwd=code or ROOT)
    return index


def checkout(work: Path, revision: str) -> Path:
    """Extracts the tree of a commit into a folder (no change to the repository); returns it."""
    folder = work / f"code-{revision}"
    folder.mkdir()
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    """Parses options, runs the comparison, prints the table (and writes --json)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15, help="per load level and server")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of 8 clients before measuring")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare; the first is the baseline")
    parser.add_argument("--baseline", help="also measure this commit's code, as one process, as the baseline")
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--gold", type=Path, default=ROOT / "eval" / "gold.jsonl")
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus", help="the documents the server answers from")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--max-others", type=float, help="retake a measurement when others took more cores")
    parser.add_argument("--retries", type=int, default=30, help="retakes per measurement (--max-others)")
    parser.add_argument("--pause", type=float, default=20, help="seconds to wait before a retake")
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]
    client_counts = [int(c) for c in args.clients.split(",")]
    if not 1 <= args.runs <= 20 or not 1 <= args.seconds <= 600 or not all(1 <= c <= 64 for c in client_counts):
        raise SystemExit("--runs must be 1..20, --seconds 1..600 and --clients 1..64 each")
    questions = gold_questions(args.gold)
    work = Path(tempfile.mkdtemp(prefix="assistant-serving-workers-"))
    print(f"cores {os.cpu_count()}, load average at start {os.getloadavg()[0]:.2f}; work folder {work}", flush=True)
    measurements: list[Measurement] = []
    memory: dict[str, list[list[dict[str, Any]]]] = {}
    try:
        corpus = work / "corpus"
        shutil.copytree(args.corpus, corpus)
        index = build_index(work, corpus, "this")
        setups = [Setup(f"{w} worker{'s' if w > 1 else ''}", w, None, index) for w in worker_counts]
        if args.baseline:
            code = checkout(work, args.baseline)
            setups.insert(0, Setup(f"{args.baseline}, 1 process", 1, code, build_index(work, corpus, "base", code)))
        for run in range(args.runs):
            for setup in setups if run % 2 == 0 else setups[::-1]:
                server = start_server(work, setup, corpus, f"{run}-{setups.index(setup)}")
                try:
                    drive(server, questions, 8, args.warmup)
                    for clients in client_counts:
                        m = drive(server, questions, clients, args.seconds)
                        for _ in range(args.retries if args.max_others is not None else 0):
                            if m.others_cpu_s / m.seconds <= args.max_others:
                                break
                            print(f"  others took {m.others_cpu_s / m.seconds:.2f} cores: again", flush=True)
                            time.sleep(args.pause)
                            m = drive(server, questions, clients, args.seconds)
                        m.label = setup.label
                        measurements.append(m)
                        print(
                            f"run {run + 1}/{args.runs}, {setup.label}, {clients} client(s): "
                            f"{m.throughput:.1f} req/s, p50 {m.percentile(50):.1f} ms, p95 {m.percentile(95):.1f} ms, "
                            f"{m.failed} failed, by worker {sorted(m.by_worker.values(), reverse=True)}, "
                            f"others' CPU {m.others_cpu_s / m.seconds:.2f} cores, load {m.load_average:.2f}",
                            flush=True,
                        )
                    memory.setdefault(setup.label, []).append(
                        [
                            {"pid": pid, "role": role(pid, server.process.pid, setup.workers), **memory_mb(pid)}
                            for pid in server.pids()
                        ]
                    )
                finally:
                    server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(measurements, memory, setups, client_counts, args)


def report(
    measurements: list[Measurement],
    memory: dict[str, list[list[dict[str, Any]]]],
    setups: list[Setup],
    client_counts: list[int],
    args: argparse.Namespace,
) -> None:
    """Prints the medians, the ratios against the first setup, and the memory."""
    base = setups[0].label
    print()
    print(
        f"POST /api/chat, medians of {args.runs} runs of {args.seconds:g} s; the load generator runs on the "
        "same cores; others' cores: CPU that other programs took meanwhile"
    )
    header = (
        f"{'server':>24} {'clients':>7} {'req/s':>7} {'x base':>7} {'p50 ms':>7} {'p95 ms':>7} {'p95/p50':>7} "
        f"{'server ms/req':>13} {'generator ms/req':>16} {'others cores':>12} {'failed':>6}"
    )
    print(header)
    rows = []
    for setup in setups:
        for clients in client_counts:
            ms = [m for m in measurements if m.label == setup.label and m.clients == clients]
            baseline = [m for m in measurements if m.label == base and m.clients == clients]
            ratios = [m.throughput / b.throughput for m, b in zip(ms, baseline, strict=True) if b.throughput]
            row = {
                "server": setup.label,
                "workers": setup.workers,
                "clients": clients,
                "throughput_rps": median([m.throughput for m in ms]),
                "throughput_ratio": median(ratios),
                "p50_ms": median([m.percentile(50) for m in ms]),
                "p95_ms": median([m.percentile(95) for m in ms]),
                "p95_over_p50": median([m.percentile(95) / m.percentile(50) for m in ms]),
                "server_cpu_ms_per_request": median([1000 * m.server_cpu_s / max(1, m.requests) for m in ms]),
                "generator_cpu_ms_per_request": median([1000 * m.generator_cpu_s / max(1, m.requests) for m in ms]),
                "others_cores": median([m.others_cpu_s / m.seconds for m in ms]),
                "failed": sum(m.failed for m in ms),
                # per run, in run order, for callers that report their own medians (`assistant bench`)
                "throughput_runs": [m.throughput for m in ms],
                "ratio_runs": ratios,
                "p95_over_p50_runs": [m.percentile(95) / m.percentile(50) for m in ms],
            }
            rows.append(row)
            print(
                f"{setup.label:>24} {clients:>7} {row['throughput_rps']:>7.1f} {row['throughput_ratio']:>7.2f} "
                f"{row['p50_ms']:>7.1f} {row['p95_ms']:>7.1f} {row['p95_over_p50']:>7.2f} "
                f"{row['server_cpu_ms_per_request']:>13.1f} {row['generator_cpu_ms_per_request']:>16.1f} "
                f"{row['others_cores']:>12.2f} {row['failed']:>6}"
            )
    print()
    print("memory after the 8-client load, MB (medians over runs): RSS / PSS")
    totals = {}
    for setup in setups:
        snapshots = memory.get(setup.label, [])
        per_role: dict[str, list[tuple[float, float]]] = {}
        for snapshot in snapshots:
            for p in snapshot:
                per_role.setdefault(p["role"], []).append((p.get("rss", 0.0), p.get("pss", 0.0)))
        totals[setup.label] = median([sum(p.get("pss", 0.0) for p in snapshot) for snapshot in snapshots])
        parts = ", ".join(
            f"{name} x{len(values) // max(1, len(snapshots))} "
            f"{median([r for r, _ in values]):.0f} / {median([s for _, s in values]):.0f}"
            for name, values in sorted(per_role.items())
        )
        print(f"  {setup.label}: {parts}; PSS in all {totals[setup.label]:.0f}")
    ours = [s for s in setups if s.code is None]
    extra_mb: dict[str, float] = {}
    for setup in ours[1:]:
        if setup.workers > ours[0].workers:
            extra = (totals[setup.label] - totals[ours[0].label]) / (setup.workers - ours[0].workers)
            extra_mb[setup.label] = extra
            print(f"  each worker beyond {ours[0].workers} adds {extra:.0f} MB (PSS in all, supervisor included)")
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "memory": memory,
                    "pss_total_mb": totals,
                    "extra_worker_pss_mb": extra_mb,
                    "runs": [m.__dict__ | {"throughput_rps": m.throughput} for m in measurements],
                },
                indent=2,
            ),
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
