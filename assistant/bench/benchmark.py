"""Performance figures of this machine: indexing, ask and chat latency, memory, index size, scale.

`assistant bench` runs the sections below on a copy of the corpus in a temporary folder and
reports each figure as the median (min-max) of several runs, with the machine's cores, memory
and load (figures taken while other jobs run are noisy: the load average says so).

    index   cold index (index folder and embedding cache removed), no-op reindex, reindex after
            one changed document: wall time of `assistant index` in a child process, interpreter
            start included; peak memory of that process; size of the index version folder
    ask     warm `Assistant.ask` over the gold questions: the default (rules behind the reader's
            gate), the rules alone and the trained reader: p50/p95 of retrieval, answer, total
    chat    POST /api/chat against `assistant serve` (its default workers), 1 and 8 concurrent
            clients: p50/p95, throughput; memory of all the server's processes
    workers eval/bench/serving_workers.py: one process against two workers in the same run, 8
            clients: throughput ratio, p95/p50, memory each extra worker adds
    scaling eval/bench/indexing_scaling.py: 10 MB of prose as one file and as many files, and
            hostile text (random words, one endless line): chunk rates, seconds, peak memory
    ann     synthetic vectors (clustered, with the decaying spectrum of sentence embeddings):
            FAISS flat vs the store's approximate index, build time, memory, query latency and
            recall@10 against exact search; BM25 query latency over a synthetic Zipf corpus;
            with `store="milvus"` the Milvus store (FLAT and HNSW) at sizes up to 100k on
            Milvus Lite (all sizes on a Milvus server) next to FAISS, with the retriever's
            per-question vector work (search top 50, fetch 60 candidate vectors)
    peers   eval/bench/side_by_side.py: this assistant vs BM25 vs LlamaIndex's default pipeline

The load generators run on the same cores as the servers they measure; every section prints the
machine's load average, and the workers section the CPU other programs took meanwhile.
Latency is printed here, never asserted in tests. Nothing in this module prints: the CLI does.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SECTIONS = ("index", "ask", "chat", "workers", "scaling", "ann", "peers")

# Targets of the performance issues on a 2-core machine: upper bounds, except the chunk-rate
# ratio and WORKERS_SPEEDUP, which are lower bounds (their figures say so).
TARGETS: dict[str, float] = {
    "cold index": 3.0,
    "no-op reindex": 0.5,
    "reindex, one document changed": 2.0,
    "ask total p50": 40.0,
    "ask total p95": 80.0,
    "ask (reader) total p50": 40.0,
    "ask (reader) total p95": 80.0,
    "/api/chat p95, 8 clients": 100.0,
    "2 workers, p95/p50 at 8 clients": 2.0,
    "one file / many files, chunk rate": 0.85,
    "prose as one file, seconds per MB": 18.0,  # 10 MB in 3 minutes
    "hostile / prose, seconds per MB": 2.0,
}
# Two workers against one process of the code before workers existed (`--workers-baseline`).
WORKERS_SPEEDUP = 1.8

FALLBACK_QUESTIONS = (
    "Which partners hold a Gold label?",
    "How many members does Clúster Digital de Catalunya have?",
    "What is the capital of Peru?",
)

Log = Callable[[str], None]


# --------------------------------------------------------------------------------- records


@dataclass
class Figure:
    """One measured quantity over several runs: median, min and max, and its target if any."""

    section: str
    name: str
    unit: str
    values: list[float]
    target: float | None = None
    higher_is_better: bool = False
    note: str = ""

    @property
    def median(self) -> float:
        """The median of the runs."""
        return float(statistics.median(self.values))

    @property
    def meets(self) -> bool | None:
        """Whether the median meets the target (None without a target)."""
        if self.target is None:
            return None
        return self.median >= self.target if self.higher_is_better else self.median <= self.target

    @property
    def target_text(self) -> str:
        """The target as printed: "≤ 3 s", "≥ 0.85 x", or "" without one."""
        if self.target is None:
            return ""
        return f"{'≥' if self.higher_is_better else '≤'} {self.target:g} {self.unit}"

    def to_dict(self) -> dict[str, Any]:
        """Returns the figure for `--json`."""
        return {
            "section": self.section,
            "name": self.name,
            "unit": self.unit,
            "median": round(self.median, 4),
            "min": round(min(self.values), 4),
            "max": round(max(self.values), 4),
            "runs": len(self.values),
            "target": self.target,
            "meets": self.meets,
            "note": self.note,
        }


@dataclass
class BenchReport:
    """Everything `assistant bench` measured."""

    machine: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Returns the report for `--json`."""
        return {
            "machine": self.machine,
            "figures": [f.to_dict() for f in self.figures],
            "tables": self.tables,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 1),
        }


def machine_info() -> dict[str, Any]:
    """Returns the cores, memory, CPU model, load and software versions of this machine."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("faiss", "onnxruntime", "numpy"):
        with contextlib.suppress(ImportError, AttributeError):
            versions[package] = __import__(package).__version__
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "cpu": model,
        "python": platform.python_version(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        **versions,
    }


def percentile(values: Sequence[float], q: float) -> float:
    """Returns the q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --------------------------------------------------------------------- child processes


@dataclass(frozen=True)
class ChildRun:
    """A finished child process: wall time, peak resident memory and its output."""

    seconds: float
    max_rss_mb: float
    returncode: int
    output: str


def run_child(args: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> ChildRun:
    """Runs a command, measuring its wall time and its own peak memory (wait4's rusage)."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(list(args), stdout=output, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode("utf-8", "replace")
    return ChildRun(seconds, usage.ru_maxrss / 1024, process.returncode, text)


def assistant_command(*args: str) -> list[str]:
    """The `assistant` CLI run by this interpreter (the same venv, no PATH lookup)."""
    return [sys.executable, "-m", "assistant.cli", *args]


def folder_bytes(folder: Path) -> int:
    """Returns the total size of the files under a folder."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------------ chat service


def free_port() -> int:
    """Returns a loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    index_dir: Path, corpus_dir: Path, data_dir: Path, port: int, timeout_s: float = 300
) -> subprocess.Popen[bytes]:
    """Starts `assistant serve` and waits until /readyz says the index is loaded."""
    import httpx

    env = {**os.environ, "ASSISTANT_DATA_DIR": str(data_dir), "ASSISTANT_API_KEYS": ""}
    command = assistant_command(
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--index",
        str(index_dir),
        "--corpus",
        str(corpus_dir),
    )
    log = data_dir / "server.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"the server exited with code {process.returncode}: " + " | ".join(tail))
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"the server did not become ready within {timeout_s:.0f} s")


def process_tree(pid: int) -> list[int]:
    """Returns a process and all its descendants."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                queue.extend(int(p) for p in Path(f"/proc/{current}/task/{task}/children").read_text().split())
        except OSError:
            continue
    return found


def memory_mb(pid: int) -> dict[str, float]:
    """Returns a process's resident memory (RSS), its peak (HWM) and its proportional share (PSS), in MB."""
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0][2:].lower()] = int(line.split()[1]) / 1024
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["pss"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


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


def http_chat_caller(port: int) -> Callable[[str], None]:
    """Returns a function that POSTs a question to /api/chat, one HTTP client per thread."""
    import httpx

    local = threading.local()

    def call(question: str) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        response = client.post("/api/chat", json={"message": question})
        response.raise_for_status()

    return call


# ------------------------------------------------------------------------ the benchmark


@dataclass
class BenchOptions:
    """What to run and on what."""

    corpus_dir: Path
    gold: Path | None = None
    runs: int = 5
    quick: bool = False
    only: tuple[str, ...] = ()
    requests: int = 200
    ann_sizes: tuple[int, ...] = ()
    workdir: Path | None = None
    side_by_side: Path = Path("eval/bench/side_by_side.py")
    serving_workers: Path = Path("eval/bench/serving_workers.py")
    indexing_scaling: Path = Path("eval/bench/indexing_scaling.py")
    scaling_mb: float = 10.0  # size of each indexing-scaling corpus (--quick: 0.5)
    workers_baseline: str | None = None  # a commit whose single process the workers are compared with
    store: str = "faiss"  # "milvus" adds the Milvus store to the ann section
    milvus_uri: str | None = None  # a Milvus server; None: Milvus Lite in the work folder

    def wants(self, section: str) -> bool:
        """Whether a section runs."""
        return not self.only or section in self.only


def load_questions(gold: Path | None) -> list[tuple[str, list[Any]]]:
    """Returns (question, history) pairs of a gold file, or a few built-in questions."""
    from assistant.records import Turn

    if gold is None or not gold.is_file():
        return [(q, []) for q in FALLBACK_QUESTIONS]
    pairs = []
    for line in gold.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            history = [Turn(t["role"], t["content"]) for t in item.get("history", [])]
            pairs.append((item["question"], history))
    return pairs


def run_benchmark(options: BenchOptions, log: Log | None = None) -> BenchReport:
    """Runs the chosen sections and returns their figures."""
    say = log or (lambda message: None)
    started = time.perf_counter()
    report = BenchReport(machine_info())
    report.machine["runs"] = options.runs
    report.machine["quick"] = options.quick
    if options.runs < 1:
        raise ValueError(f"runs must be at least 1, not {options.runs}")
    with _workdir(options.workdir) as work:
        corpus = work / "corpus"
        shutil.copytree(options.corpus_dir, corpus)
        index_dir = work / "index"
        env = {**os.environ, "ASSISTANT_DATA_DIR": str(work / "data")}
        if options.wants("index") or any(options.wants(s) for s in ("ask", "chat")):
            _bench_index(options, report, corpus, index_dir, env, say)
        if options.wants("ask"):
            _bench_ask(options, report, corpus, index_dir, say)
        if options.wants("chat"):
            _bench_chat(options, report, corpus, index_dir, work, say)
        if options.wants("workers"):
            _bench_workers(options, report, work, say)
        if options.wants("scaling"):
            _bench_scaling(options, report, work, say)
        if options.wants("ann"):
            _bench_ann(options, report, say, work)
        if options.wants("peers"):
            _bench_peers(options, report, work, say)
    report.machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report.seconds = time.perf_counter() - started
    return report


@contextlib.contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="assistant-bench-") as folder:
        yield Path(folder)


def _settings(
    corpus: Path, index_dir: Path, data_dir: Path, answerer: str = "extractive", reader_gate: bool = True
) -> Any:
    from assistant.config import Settings

    return Settings(
        corpus_dir=corpus, index_dir=index_dir, data_dir=data_dir, answerer=answerer, reader_gate=reader_gate
    )


def _bench_index(
    options: BenchOptions,
    report: BenchReport,
    corpus: Path,
    index_dir: Path,
    env: dict[str, str],
    say: Log,
) -> None:
    from assistant.store.index_store import current_version

    index = assistant_command("index", "--corpus", str(corpus), "--index", str(index_dir), "-q")
    # One untimed build first: it exports the ONNX model if this machine has none yet and
    # brings the files into the page cache, as on any machine that has run the assistant once.
    say("index: warm-up build (exports the ONNX model once per machine)")
    first = run_child(index, env)
    if first.returncode != 0:
        raise RuntimeError(f"`assistant index` failed: {first.output.strip()[-500:]}")
    report.machine["first_index_s"] = round(first.seconds, 2)
    if not options.wants("index"):
        return
    documents = sorted(p for p in corpus.rglob("*") if p.suffix in {".txt", ".md"})
    changed_doc = documents[0] if documents else None
    cold, noop, changed, rss = [], [], [], []
    for run in range(options.runs):
        say(f"index: run {run + 1}/{options.runs}")
        shutil.rmtree(index_dir, ignore_errors=True)  # the embedding cache too
        result = run_child(index, env)
        cold.append(result.seconds)
        rss.append(result.max_rss_mb)
        noop.append(run_child(index, env).seconds)
        if changed_doc is not None:
            with changed_doc.open("a", encoding="utf-8") as handle:
                handle.write(f"\n\nBenchmark edit {run}: the figures of this run were measured again.\n")
            changed.append(run_child(index, env).seconds)
    add = report.figures.append
    add(
        Figure(
            "index",
            "cold index",
            "s",
            cold,
            TARGETS["cold index"],
            note="`assistant index` in a new process, embedding cache removed",
        )
    )
    add(Figure("index", "no-op reindex", "s", noop, TARGETS["no-op reindex"]))
    if changed and changed_doc is not None:
        add(
            Figure(
                "index",
                "reindex, one document changed",
                "s",
                changed,
                TARGETS["reindex, one document changed"],
                note=f"a paragraph appended to {changed_doc.name}",
            )
        )
    add(Figure("memory", "peak memory, cold index", "MB", rss))
    folder = current_version(index_dir)
    if folder is not None:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        report.machine["corpus"] = {
            "documents": len(manifest["documents"]),
            "chunks": manifest["chunks"],
            "model": manifest["model"],
            "vector_index": manifest["vector_index"],
        }
        add(Figure("size", "index size (version folder)", "MB", [folder_bytes(folder) / 1e6]))
        cache = index_dir / "embeddings.sqlite"
        if cache.is_file():
            add(Figure("size", "embedding cache", "MB", [cache.stat().st_size / 1e6]))


def _bench_ask(options: BenchOptions, report: BenchReport, corpus: Path, index_dir: Path, say: Log) -> None:
    from assistant.pipeline import Assistant

    questions = load_questions(options.gold)
    if options.quick:
        questions = questions[:20]
    # The default (the extractive answerer behind the reader's gate), the rules alone and the
    # trained reader as the answerer, one after the other.
    setups = (("extractive", True, "ask"), ("extractive", False, "ask (rules alone)"), ("reader", True, "ask (reader)"))
    for answerer, gate, label in setups:
        assistant = Assistant(_settings(corpus, index_dir, index_dir.parent / "data", answerer, gate))
        say(f"{label}: {len(questions)} questions x {options.runs} runs, warm")
        for question, history in questions:  # warm-up: model, index files, caches
            assistant.ask(question, history)
        series: dict[str, list[float]] = {}
        for _ in range(options.runs):
            timings: dict[str, list[float]] = {"retrieval": [], "answer": [], "total": []}
            for question, history in questions:
                answer = assistant.ask(question, history)
                for key in timings:
                    timings[key].append(answer.timings_ms[key])
            for key, values in timings.items():
                for q in (50, 95):
                    series.setdefault(f"{label} {key} p{q}", []).append(percentile(values, q))
        for name, values in series.items():
            report.figures.append(Figure("ask", name, "ms", values, TARGETS.get(name)))
    report.figures.append(
        Figure(
            "memory",
            "peak memory, bench process after ask",
            "MB",
            [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024],
        )
    )


def _bench_chat(
    options: BenchOptions, report: BenchReport, corpus: Path, index_dir: Path, work: Path, say: Log
) -> None:
    questions = [q for q, history in load_questions(options.gold) if not history]
    requests = 40 if options.quick else options.requests
    port = free_port()
    say("chat: starting `assistant serve`")
    server = start_server(index_dir, corpus, work / "chat-data", port)
    try:
        call = http_chat_caller(port)
        run_concurrently(call, questions, len(questions), 8)  # warm-up
        for clients in (1, 8):
            p50, p95, rate = [], [], []
            for run in range(options.runs):
                say(f"chat: {clients} clients, run {run + 1}/{options.runs}")
                latencies, seconds = run_concurrently(call, questions, requests, clients)
                p50.append(percentile(latencies, 50))
                p95.append(percentile(latencies, 95))
                rate.append(len(latencies) / seconds)
            label = "1 client" if clients == 1 else f"{clients} clients"
            add = report.figures.append
            add(Figure("chat", f"/api/chat p50, {label}", "ms", p50, note=f"{requests} requests a run"))
            add(
                Figure(
                    "chat",
                    f"/api/chat p95, {label}",
                    "ms",
                    p95,
                    TARGETS.get(f"/api/chat p95, {label}"),
                )
            )
            add(Figure("chat", f"/api/chat throughput, {label}", "req/s", rate))
        processes = [memory_mb(pid) for pid in process_tree(server.pid)]
        peaks = [p["hwm"] for p in processes if "hwm" in p]
        if peaks:
            report.figures.append(
                Figure(
                    "memory",
                    "peak memory, server",
                    "MB",
                    [max(peaks)],
                    note=f"the largest of its {len(peaks)} processes (supervisor and workers)",
                )
            )
        shared = [p["pss"] for p in processes if "pss" in p]
        if shared:
            report.figures.append(
                Figure(
                    "memory",
                    "memory, server in all (PSS)",
                    "MB",
                    [sum(shared)],
                    note="proportional set size summed over its processes: shared pages counted once",
                )
            )
    finally:
        server.terminate()
        server.wait(60)


def _run_script(script: Path, args: Sequence[str], out: Path, what: str, say: Log) -> dict[str, Any] | str:
    """Runs an eval/bench script that writes `--json out` -> its JSON, or why it could not run."""
    if not script.is_file():
        return f"{script} not found (run from the repository's root)"
    say(f"{what}: {script} {' '.join(args)}")
    result = run_child([sys.executable, str(script), *args, "--json", str(out)])
    if result.returncode != 0 or not out.is_file():
        return f"{script.name} failed: {result.output.strip()[-400:]}"
    loaded: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return loaded


def _bench_workers(options: BenchOptions, report: BenchReport, work: Path, say: Log) -> None:
    runs, seconds, warmup = (1, 3, 1) if options.quick else (options.runs, 10, 3)
    args = ["--runs", str(runs), "--seconds", str(seconds), "--warmup", str(warmup), "--workers", "1,2"]
    args += ["--corpus", str(options.corpus_dir)]
    if options.gold is not None:
        args += ["--gold", str(options.gold)]
    if options.workers_baseline:
        args += ["--baseline", options.workers_baseline]
    found = _run_script(options.serving_workers, args, work / "serving_workers.json", "workers", say)
    if isinstance(found, str):
        report.skipped["workers"] = found
        return
    rows = found["rows"]
    report.tables["workers"] = [{k: v for k, v in row.items() if not k.endswith("_runs")} for row in rows]
    at8 = [row for row in rows if row["clients"] == 8]
    add = report.figures.append
    for row in at8:
        label = row["server"]
        add(
            Figure(
                "workers", f"throughput at 8 clients, {label}", "req/s", row["throughput_runs"], higher_is_better=True
            )
        )
        name = f"{label}, p95/p50 at 8 clients"
        add(Figure("workers", name, "", row["p95_over_p50_runs"], TARGETS.get(name)))
    base, two = at8[0]["server"], next((row for row in at8 if row["server"] == "2 workers"), None)
    if two is not None:
        # The 1.8x is against the single process of the code before workers existed
        # (--workers-baseline REV); against today's single process it is only reported.
        add(
            Figure(
                "workers",
                f"2 workers / {base}, throughput at 8 clients",
                "x",
                two["ratio_runs"],
                WORKERS_SPEEDUP if options.workers_baseline else None,
                higher_is_better=True,
                note="ratio within each run; the load generator shares the cores",
            )
        )
    for extra in found.get("extra_worker_pss_mb", {}).values():
        add(Figure("memory", "memory each extra worker adds (PSS)", "MB", [extra]))


def _bench_scaling(options: BenchOptions, report: BenchReport, work: Path, say: Log) -> None:
    mb, runs = (0.5, 1) if options.quick else (options.scaling_mb, min(options.runs, 3))
    args = ["--mb", f"{mb:g}", "--runs", str(runs), "--cases", "many,single,hostile"]
    found = _run_script(options.indexing_scaling, args, work / "indexing_scaling.json", "scaling", say)
    if isinstance(found, str):
        report.skipped["scaling"] = found
        return
    cases = found["today"]
    report.tables["scaling"] = [
        {"case": case, **{k: v for k, v in row.items() if not k.startswith("runs_") and k != "stages"}}
        for case, row in cases.items()
    ]
    many, single, hostile = cases["many"], cases["single"], cases["hostile"]
    add = report.figures.append
    note = f"{mb:g} MB of SQuAD prose"
    add(
        Figure(
            "scaling", "chunk rate, many files", "chunks/s", many["runs_chunks_per_s"], note=note, higher_is_better=True
        )
    )
    add(
        Figure(
            "scaling", "chunk rate, one file", "chunks/s", single["runs_chunks_per_s"], note=note, higher_is_better=True
        )
    )
    ratios = [s / m for s, m in zip(single["runs_chunks_per_s"], many["runs_chunks_per_s"], strict=True)]
    name = "one file / many files, chunk rate"
    add(Figure("scaling", name, "x", ratios, TARGETS[name], higher_is_better=True, note="ratio within each run"))
    name = "prose as one file, seconds per MB"
    add(Figure("scaling", name, "s", single["runs_s_per_mb"], TARGETS[name], note=note))
    hostile_ratio = [h / s for h, s in zip(hostile["runs_s_per_mb"], single["runs_s_per_mb"], strict=True)]
    name = "hostile / prose, seconds per MB"
    add(Figure("scaling", name, "x", hostile_ratio, TARGETS[name], note="random words, one endless line"))
    add(Figure("memory", "peak memory, indexing one file", "MB", single["runs_peak_rss_mb"], note=note))


# ------------------------------------------------------------------ synthetic corpora


class SyntheticSpace:
    """A reproducible space of synthetic sentence-embedding-like unit vectors.

    Real sentence embeddings are far from uniform on the sphere: they share a common direction,
    their variance decays along principal axes (a power law), and they gather in topics. The
    vectors here copy those three traits, so that an approximate index meets the difficulty it
    would meet on real vectors (uniform random vectors are much harder, and unrealistic).
    """

    def __init__(self, dim: int = 384, topics: int = 2048, decay: float = 0.8, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.dim = dim
        basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        self.basis = basis.astype(np.float32)
        self.scale = ((np.arange(1, dim + 1) ** -decay) ** 0.5).astype(np.float32)
        self.mean = (self.basis[:, 0] * 0.9 * float(np.linalg.norm(self.scale))).astype(np.float32)
        self.topics = self._draw(rng, topics, 1.0)

    def _draw(self, rng: np.random.Generator, n: int, spread: float) -> np.ndarray:
        z = rng.standard_normal((n, self.dim), dtype=np.float32) * (self.scale * spread)
        return np.asarray(z @ self.basis.T, dtype=np.float32)

    def sample(self, n: int, seed: int, spread: float = 0.7, batch: int = 100_000) -> np.ndarray:
        """Returns n unit vectors (float32): topic centre + noise + the common direction."""
        rng = np.random.default_rng(seed)
        out = np.empty((n, self.dim), dtype=np.float32)
        for start in range(0, n, batch):
            size = min(batch, n - start)
            topic = rng.integers(0, len(self.topics), size)
            block = self.topics[topic] + self._draw(rng, size, spread) + self.mean
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            out[start : start + size] = block
        return out


def synthetic_vocabulary(size: int = 50_000, seed: int = 11) -> list[str]:
    """Returns distinct pronounceable pseudo-words, already in the keyword index's stemmed form."""
    from assistant.text import analyze

    rng = np.random.default_rng(seed)
    onsets = list("bdfgklmnprstvz") + ["br", "st", "tr", "kl", "gr", "pl", "sk"]
    vowels = list("aeiou") + ["ai", "ou"]
    codas = ["k", "t", "n", "r", "m", "d", "x", "lk", "nd", "rt"]
    words: dict[str, None] = {}
    while len(words) < size:
        syllables = int(rng.integers(1, 4))
        word = (
            "".join(
                onsets[int(rng.integers(len(onsets)))] + vowels[int(rng.integers(len(vowels)))]
                for _ in range(syllables)
            )
            + codas[int(rng.integers(len(codas)))]
        )
        terms = analyze(word)
        if len(terms) == 1 and terms[0] == word:
            words[word] = None
    return list(words)


def zipf_documents(
    n: int, vocabulary: Sequence[str], words: int = 100, exponent: float = 1.07, seed: int = 13
) -> Iterator[list[str]]:
    """Yields n word lists whose word frequencies follow Zipf's law over the vocabulary."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, len(vocabulary) + 1, dtype=np.float64)
    p = ranks**-exponent
    cumulative = np.cumsum(p / p.sum())
    table = np.asarray(vocabulary, dtype=object)
    for start in range(0, n, 10_000):
        size = min(10_000, n - start)
        ids = np.searchsorted(cumulative, rng.random((size, words)))
        ids = np.minimum(ids, len(vocabulary) - 1)
        for row in ids:
            yield list(table[row])


# Milvus Lite is an embedded engine for tests and small installs: past this size its builds take
# minutes and tell nothing about a Milvus server.
MILVUS_LITE_MAX = 100_000


def _bench_ann(options: BenchOptions, report: BenchReport, say: Log, work: Path) -> None:
    sizes = options.ann_sizes or ((20_000,) if options.quick else (100_000, 1_000_000))
    queries = 200 if options.quick else 1000
    rows = report.tables.setdefault("ann", [])
    for n in sizes:
        for row in measure_ann(n, queries=queries, runs=options.runs, log=say):
            rows.append(row)
        rows.append(measure_keyword(min(n, 1_000_000), queries=queries // 5, runs=options.runs, log=say))
    if options.store != "milvus":
        return
    from assistant.store import milvus as milvus_store

    uri = options.milvus_uri or str(work / "milvus.db")
    lite = milvus_store.is_lite(uri)
    table = report.tables.setdefault("milvus", [])
    for n in sizes:
        if lite and n > MILVUS_LITE_MAX:
            report.skipped[f"milvus at {n:,}"] = (
                f"Milvus Lite stops at {MILVUS_LITE_MAX:,} here; set ASSISTANT_MILVUS_URI to a server"
            )
            continue
        table += measure_store_retrieval(n, uri=uri, queries=min(queries, 200), log=say)


def timed_searches(
    index: Any, probe: np.ndarray, k: int, fetch: int = 0, size: int = 0
) -> tuple[list[float], np.ndarray]:
    """Times one search per probe (ms) and returns the ids found; with `fetch`, each timing
    includes the retriever's candidate-vector fetch."""
    rng = np.random.default_rng(3)
    latencies, results = [], []
    for q in probe:
        started = time.perf_counter()
        _, rows = index.search(q[None, :], k)
        if fetch:  # the retriever's second call: the vectors of its candidate rows
            extra = rng.integers(0, size, fetch)
            candidates = np.unique(np.concatenate([rows[0][rows[0] >= 0], extra]))
            index.vectors(candidates[:fetch])
        latencies.append((time.perf_counter() - started) * 1000)
        results.append(rows[0][:k])
    return latencies, np.asarray(results)


def measure_store_retrieval(
    n: int,
    *,
    uri: str,
    queries: int = 200,
    k: int = 10,
    dim: int = 384,
    log: Log | None = None,
) -> list[dict[str, Any]]:
    """FAISS (flat, HNSW) and the Milvus store (FLAT, HNSW) on the same n synthetic vectors.

    Each row: build time (Milvus: collection created, inserted, flushed, indexed and loaded),
    one-query latency for the top 10, the retriever's per-question vector work (top 50 and the
    vectors of 60 candidates) and recall@10 against exact search. One build per engine.
    """
    from assistant.store import milvus as milvus_store
    from assistant.store.index_store import FaissIndex

    say = log or (lambda message: None)
    space = SyntheticSpace(dim)
    vectors = space.sample(n, seed=1)
    probe = space.sample(queries, seed=2)
    fetch_probe = probe[: max(20, queries // 4)]
    truth = np.empty(0)  # exact neighbours, from the FAISS flat index built first
    engine = "milvus-lite" if milvus_store.is_lite(uri) else uri
    rows = []

    def row(what: str, build_s: float, index: Any, params: str) -> dict[str, Any]:
        index.search(probe[:1], k)  # the first query pays for connections and lazy loading
        say(f"milvus: {len(probe)} single queries on {what}")
        latencies, found = timed_searches(index, probe, k)
        retrieval, _ = timed_searches(index, fetch_probe, 50, fetch=60, size=n)
        return {
            "what": what,
            "n": n,
            "build_s": round(build_s, 2),
            "query_ms_p50": round(percentile(latencies, 50), 3),
            "query_ms_p95": round(percentile(latencies, 95), 3),
            "retrieval_ms_p50": round(percentile(retrieval, 50), 3),
            "retrieval_ms_p95": round(percentile(retrieval, 95), 3),
            "recall_at_10": round(recall_at(found, truth, k), 4),
            "params": params,
        }

    for kind in ("flat", "hnsw"):
        say(f"milvus: building FAISS {kind} over {n:,} vectors for comparison")
        started = time.perf_counter()
        faiss_index = FaissIndex.build(vectors, approximate_threshold=n if kind == "flat" else 0)
        if kind == "flat":
            truth = faiss_index.search(probe, k)[1]
        rows.append(row(f"FAISS {kind}", time.perf_counter() - started, faiss_index, ""))
        del faiss_index
    for kind in ("FLAT", "HNSW"):
        config = milvus_store.MilvusConfig(uri=uri, collection="bench", index=kind)
        name = f"bench_{kind.lower()}_{n}"
        say(f"milvus: building {kind} over {n:,} vectors on {engine}")
        started = time.perf_counter()
        built = milvus_store.build_collection(config, uri, name, vectors)
        build_s = time.perf_counter() - started
        try:
            index = milvus_store.MilvusIndex.open(config, uri, name, built, n, dim)
            build = milvus_store.HNSW_BUILD
            params = (
                f"M={build['M']}, efConstruction={build['efConstruction']}, ef={milvus_store.HNSW_EF}"
                if kind == "HNSW"
                else ""
            )
            rows.append(row(f"Milvus {kind} ({engine})", build_s, index, params))
        finally:
            milvus_store.connect(uri).drop_collection(name)
    return rows


def measure_ann(
    n: int,
    *,
    queries: int = 1000,
    runs: int = 5,
    k: int = 10,
    dim: int = 384,
    log: Log | None = None,
    space: SyntheticSpace | None = None,
    ef_sweep: Sequence[int] = (),
) -> list[dict[str, Any]]:
    """Measures exact vs the store's approximate FAISS index on n synthetic vectors.

    `ef_sweep` adds one row per efSearch value for the same HNSW graph (one run each).
    """
    import faiss

    from assistant.store.index_store import FaissIndex

    say = log or (lambda message: None)
    space = space or SyntheticSpace(dim)
    say(f"ann: generating {n:,} synthetic vectors")
    vectors = space.sample(n, seed=1)
    probe = space.sample(queries, seed=2)
    rows = []
    truth: np.ndarray | None = None
    for kind in ("flat", "hnsw"):
        builds = runs if n <= 20_000 else 1
        build_s = []
        rss_before = _rss_mb()
        index: FaissIndex | None = None
        for _ in range(builds):
            say(f"ann: building {kind} over {n:,} vectors")
            index = None
            started = time.perf_counter()
            index = FaissIndex.build(vectors, approximate_threshold=n if kind == "flat" else 0)
            build_s.append(time.perf_counter() - started)
        assert index is not None
        added_mb = _rss_mb() - rss_before
        with tempfile.TemporaryDirectory() as folder:
            index.save(Path(folder) / "index.faiss")
            file_mb = (Path(folder) / "index.faiss").stat().st_size / 1e6
        if truth is None:  # exact neighbours, in one batched search
            truth = index.search(probe, k)[1]
        # Exact search over a million vectors takes a while a query: fewer timed queries there
        # (its recall is 1 by definition).
        timed = probe if kind != "flat" or n < 500_000 else probe[:100]
        say(f"ann: {len(timed)} single queries x {runs} runs on {kind}")
        p50, p95 = [], []
        found = None
        for _ in range(runs):
            latencies, found = timed_searches(index, timed, k)
            p50.append(percentile(latencies, 50))
            p95.append(percentile(latencies, 95))
        recall = recall_at(found, truth[: len(timed)], k)
        params = ""
        if kind == "hnsw":
            h = index.index.hnsw
            params = f"M={h.nb_neighbors(1)}, efConstruction={h.efConstruction}, efSearch={h.efSearch}"
        row = {
            "what": f"vectors, {kind}",
            "n": n,
            "build_s": round(statistics.median(build_s), 2),
            "builds": builds,
            "memory_mb": round(max(added_mb, 0.0), 1),
            "file_mb": round(file_mb, 1),
            "query_ms_p50": round(statistics.median(p50), 3),
            "query_ms_p95": round(statistics.median(p95), 3),
            "query_ms_p50_range": [round(min(p50), 3), round(max(p50), 3)],
            "recall_at_10": round(recall, 4),
            "params": params,
            "threads": faiss.omp_get_max_threads(),
        }
        rows.append(row)
        if kind == "hnsw":
            default_ef = index.index.hnsw.efSearch
            for ef in ef_sweep:
                index.index.hnsw.efSearch = ef
                latencies, results = timed_searches(index, probe, k)
                ef_recall = recall_at(results, truth, k)
                say(f"ann: efSearch={ef}: recall {ef_recall:.4f}")
                rows.append(
                    row
                    | {
                        "what": "vectors, hnsw (efSearch sweep)",
                        "runs": 1,
                        "query_ms_p50": round(percentile(latencies, 50), 3),
                        "query_ms_p95": round(percentile(latencies, 95), 3),
                        "query_ms_p50_range": None,
                        "recall_at_10": round(ef_recall, 4),
                        "params": params.replace(f"efSearch={default_ef}", f"efSearch={ef}"),
                    }
                )
            index.index.hnsw.efSearch = default_ef
        del index
    return rows


def recall_at(found: Any, truth: Any, k: int) -> float:
    """Mean share of each query's true k nearest neighbours among the k found."""
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth, strict=True)]))


def measure_keyword(
    n: int, *, queries: int = 200, runs: int = 5, words: int = 100, log: Log | None = None
) -> dict[str, Any]:
    """Measures the project's BM25 index (phrases included) on n synthetic Zipf chunks."""
    from assistant.retrieval.fusion import top as _top
    from assistant.store.keyword import KeywordIndex, with_phrases

    say = log or (lambda message: None)
    vocabulary = synthetic_vocabulary()
    say(f"keyword: indexing {n:,} synthetic chunks of {words} words")
    rss_before = _rss_mb()
    started = time.perf_counter()
    keyword = KeywordIndex.build(with_phrases(doc) for doc in zipf_documents(n, vocabulary, words))
    build_s = time.perf_counter() - started
    added_mb = _rss_mb() - rss_before
    rng = np.random.default_rng(5)
    # Questions of 3-6 words: mostly mid-frequency words, sometimes a frequent one.
    texts = [
        " ".join(vocabulary[int(i)] for i in rng.integers(20, 5_000, int(rng.integers(3, 7)))) for _ in range(queries)
    ]
    keyword.query(texts[0])  # builds the sorted vocabulary used to widen queries, once
    p50, p95 = [], []
    for _ in range(runs):
        latencies = []
        for text in texts:
            started = time.perf_counter()
            _top(keyword.scores(keyword.query(text, 0.5)), 50)
            latencies.append((time.perf_counter() - started) * 1000)
        p50.append(percentile(latencies, 50))
        p95.append(percentile(latencies, 95))
    return {
        "what": "keyword (BM25 + phrases)",
        "n": n,
        "build_s": round(build_s, 2),
        "builds": 1,
        "memory_mb": round(max(added_mb, 0.0), 1),
        "vocabulary": len(keyword.vocabulary),
        "query_ms_p50": round(statistics.median(p50), 3),
        "query_ms_p95": round(statistics.median(p95), 3),
        "query_ms_p50_range": [round(min(p50), 3), round(max(p50), 3)],
        "recall_at_10": None,
        "params": f"{words} words a chunk, Zipf vocabulary of {len(vocabulary):,}",
    }


def _rss_mb() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# ------------------------------------------------------------------------------- peers


def _bench_peers(options: BenchOptions, report: BenchReport, work: Path, say: Log) -> None:
    if options.quick:
        report.skipped["peers"] = "--quick"
        return
    script = options.side_by_side
    if not script.is_file():
        report.skipped["peers"] = f"{script} not found (run from the repository's root)"
        return
    try:
        import bm25s  # noqa: F401
        import llama_index.core  # noqa: F401
    except ImportError:
        report.skipped["peers"] = "peers not installed: pip install -r eval/bench/requirements-peers.txt"
        return
    gold = options.gold or Path("eval/gold.jsonl")
    out = work / "side_by_side.json"
    say(f"peers: {script} on {gold}")
    result = run_child(
        [
            sys.executable,
            str(script),
            "--gold",
            str(gold),
            "--corpus",
            str(options.corpus_dir),
            "--json",
            str(out),
            "--runs",
            str(min(options.runs, 3)),
        ],
    )
    if result.returncode != 0 or not out.is_file():
        report.skipped["peers"] = f"side_by_side.py failed: {result.output.strip()[-300:]}"
        return
    report.tables["peers"] = json.loads(out.read_text(encoding="utf-8"))["rows"]


# ------------------------------------------------------------------------------ output


def table_cell(value: Any) -> str:
    """Formats one value of a table row: floats to three significant digits, None as nothing."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def markdown_report(report: BenchReport) -> list[str]:
    """Returns the report as Markdown lines (the README's Performance section pastes them)."""
    m = report.machine
    lines = [
        f"Machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu']}, Python {m['python']}; "
        f"load average {m['load_average_start'][0]} at start, "
        f"{m.get('load_average_end', ['?'])[0]} at end.",
    ]
    if "corpus" in m:
        c = m["corpus"]
        lines.append(
            f"Corpus: {c['documents']} documents, {c['chunks']} chunks; model {c['model']}; {c['vector_index']} index."
        )
    lines += ["", "| figure | median | min–max | runs | target |", "|---|---:|---:|---:|---|"]
    for f in report.figures:
        target = f.target_text
        if f.meets is not None:
            target += " ✓" if f.meets else " ✗"
        lines.append(
            f"| {f.name} | {f.median:.3g} {f.unit} | {min(f.values):.3g}–{max(f.values):.3g} "
            f"| {len(f.values)} | {target} |"
        )
    for name, rows in report.tables.items():
        if not rows:
            continue
        keys = [k for k in rows[0] if k not in {"note", "threads", "query_ms_p50_range"}]
        lines += ["", f"{name}:", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(table_cell(r.get(k)) for k in keys) + " |" for r in rows]
    for section, reason in report.skipped.items():
        lines.append(f"\nSkipped {section}: {reason}")
    return lines
