"""Indexing speed against file size and layout: one big file, the same text in many files, hostile text.

Builds, in a temporary folder, about `--mb` MB of Wikipedia prose (SQuAD 1.1 training articles,
all distinct, so the embedding cache cannot make it trivial): once as one file per article
("many"), once as one file holding all of them ("single"); and the same size of hostile text
("hostile": words drawn at random from the prose's vocabulary, no punctuation, one endless
line). Two more layouts run when named in `--cases`: "headings", the prose as one Markdown
file with a heading every two paragraphs, and "wrapped", the hostile words wrapped at 80 columns
(one paragraph of lower-case lines, as a PDF export gives). Each corpus is indexed by
`Assistant.index` (what `assistant index` runs) in a new child process, with a fresh index
folder and so a fresh embedding cache, and the script prints chunks/s, MB/s, seconds per stage,
the child's peak memory (wait4's ru_maxrss), and the ratios the targets are about: single/many
chunk rate, hostile/prose seconds per MB.

    .venv/bin/python eval/bench/indexing_scaling.py --mb 10 --runs 3      # the targets
    .venv/bin/python eval/bench/indexing_scaling.py --mb 2 --runs 1       # a quick run
    .venv/bin/python eval/bench/indexing_scaling.py --mb 4 --cases single,headings,wrapped
    .venv/bin/python eval/bench/indexing_scaling.py --mb 1 --cases single,hostile --profile prof/
    .venv/bin/python eval/bench/indexing_scaling.py --mb 2 --against /tmp/before   # old code too

`--against DIR` also runs every case with the `assistant` package found in DIR (e.g.
`git archive <commit> assistant | tar -x -C DIR`), interleaved with today's runs, so that
before and after are measured on the same machine load. `--profile DIR` writes a cProfile
file per case and prints the functions that took the most time.

Stages: "model" loads the embedder (outside the index run; the rate excludes it), "read" parses
files, "chunk" cuts them, "embed" computes vectors, "keyword" builds BM25 and the manifest,
"write" saves the version.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SQUAD = Path(__file__).resolve().parents[3] / "shared" / "data" / "squad" / "squad11-train.json.gz"
CASES = ("many", "single", "hostile")  # what the targets are about
EXTRA_CASES = ("headings", "wrapped")  # other layouts, with --cases
STAGES = ("model", "read", "chunk", "embed", "keyword", "write")


# ----------------------------------------------------------------------------- corpora


def squad_articles(path: Path) -> list[str]:
    """Returns each SQuAD article as text: its title, then its paragraphs between blank lines."""
    data = json.loads(gzip.decompress(path.read_bytes()))
    articles = []
    for article in data["data"]:
        title = article["title"].replace("_", " ")
        paragraphs = [p["context"].strip() for p in article["paragraphs"]]
        articles.append(title + "\n\n" + "\n\n".join(paragraphs) + "\n")
    return articles


def write_corpora(root: Path, megabytes: float, squad: Path, seed: int = 1) -> dict[str, Path]:
    """Writes the three corpora under root and returns their folders."""
    budget = int(megabytes * 1_000_000)
    articles: list[str] = []
    size = 0
    for text in squad_articles(squad):
        if size >= budget:
            break
        articles.append(text)
        size += len(text.encode("utf-8")) + 1
    if size < budget:
        raise SystemExit(f"{squad} holds only {size / 1e6:.1f} MB of prose, less than --mb {megabytes:g}")
    folders = {case: root / case for case in CASES + EXTRA_CASES}
    for folder in folders.values():
        folder.mkdir(parents=True)
    for i, text in enumerate(articles):
        (folders["many"] / f"article-{i:04d}.txt").write_text(text, encoding="utf-8")
    # The same text in one file: the articles one after another, a blank line between them.
    (folders["single"] / "all-articles.txt").write_text("\n".join(articles), encoding="utf-8")
    vocabulary = sorted({w.lower() for text in articles for w in re.findall(r"[^\W\d_]+", text)})
    rng = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(vocabulary)
        words.append(word)
        length += len(word.encode("utf-8")) + 1
    (folders["hostile"] / "endless-line.txt").write_text(" ".join(words), encoding="utf-8")
    # The same random words wrapped at 80 columns: one paragraph of lower-case lines.
    lines, line = [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > 80:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    (folders["wrapped"] / "wrapped-lines.txt").write_text("\n".join([*lines, line]), encoding="utf-8")
    # The prose as one Markdown file with a heading every two paragraphs: thousands of sections.
    parts = []
    for text in articles:
        title, *paragraphs = text.strip().split("\n\n")
        parts.append(f"# {title}\n")
        for i, paragraph in enumerate(paragraphs):
            if i % 2 == 0:
                parts.append(f"## {' '.join(paragraph.split()[:4]).rstrip('.,;:')} ({i // 2 + 1})\n")
            parts.append(paragraph + "\n")
    (folders["headings"] / "all-articles.md").write_text("\n".join(parts), encoding="utf-8")
    return folders


# -------------------------------------------------------------------------- child side


def child(corpus: Path, index: Path, profile: Path | None) -> None:
    """Indexes one corpus the way `assistant index` does and prints its stage times as JSON."""
    from assistant.config import Settings
    from assistant.pipeline import Assistant

    settings = Settings(corpus_dir=corpus, index_dir=index, data_dir=index.parent / "data")
    assistant = Assistant.from_settings(settings)
    started = time.perf_counter()
    assistant.embedder.embed(["loads the model before the clock starts"])
    model_s = time.perf_counter() - started
    marks: dict[str, list[float]] = {}

    def progress(stage: str, done: int, total: int) -> None:
        marks.setdefault(stage, []).append(time.perf_counter())

    profiler = None
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    report = assistant.index(progress=progress)
    finished = time.perf_counter()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    # progress ticks: read (per file), embed (per batch), write (0 then 1); the gaps between
    # them are chunking (read -> embed) and the keyword index and manifest (embed -> write).
    read_end, embed_start, embed_end = marks["read"][-1], marks["embed"][0], marks["embed"][-1]
    write_start = marks["write"][0]
    stages = {
        "model": model_s,
        "read": read_end - started,
        "chunk": embed_start - read_end,
        "embed": embed_end - embed_start,
        "keyword": write_start - embed_end,
        "write": finished - write_start,
    }
    out = {"chunks": report.chunks, "documents": report.documents, "seconds": finished - started, "stages": stages}
    print("RESULT " + json.dumps(out))


# ------------------------------------------------------------------------- parent side


def run_case(
    folder: Path, work: Path, code: Path | None, profile: Path | None
) -> dict[str, Any]:  # pragma: no cover - runs child processes
    """Indexes one corpus in a child process -> its figures and peak memory."""
    from assistant.bench.benchmark import run_child

    index = Path(tempfile.mkdtemp(dir=work, prefix="index-"))
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    args = [sys.executable, str(Path(__file__).resolve()), "--child", str(folder), str(index)]
    if profile is not None:
        args += ["--profile", str(profile)]
    result = run_child(args, env)
    lines = [line for line in result.output.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"indexing {folder} failed: {result.output.strip()[-800:]}")
    figures: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    figures["peak_rss_mb"] = result.max_rss_mb
    figures["mb"] = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    figures["files"] = sum(1 for _ in folder.iterdir())
    return figures


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over runs of every figure (chunk and file counts are the same in each run)."""
    rates = [r["chunks"] / r["seconds"] for r in runs]
    return {
        "runs": len(runs),
        "files": runs[0]["files"],
        "mb": runs[0]["mb"],
        "chunks": runs[0]["chunks"],
        "seconds": statistics.median(r["seconds"] for r in runs),
        "chunks_per_s": statistics.median(rates),
        "mb_per_s": statistics.median(r["mb"] / r["seconds"] for r in runs),
        "s_per_mb": statistics.median(r["seconds"] / r["mb"] for r in runs),
        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
        "stages": {s: statistics.median(r["stages"][s] for r in runs) for s in STAGES},
        # per run, in run order, for callers that report their own medians (`assistant bench`)
        "runs_seconds": [r["seconds"] for r in runs],
        "runs_chunks_per_s": rates,
        "runs_s_per_mb": [r["seconds"] / r["mb"] for r in runs],
        "runs_peak_rss_mb": [r["peak_rss_mb"] for r in runs],
    }


def print_table(label: str, results: dict[str, dict[str, Any]]) -> None:
    """Prints one code version's figures and the target ratios."""
    print(f"\n{label}")
    head = f"{'case':<8} {'files':>5} {'MB':>6} {'chunks':>7} {'s':>7} {'chunks/s':>8} {'MB/s':>6} {'RSS MB':>7}"
    print(head + "  " + " ".join(f"{s:>7}" for s in STAGES))
    for case, r in results.items():
        row = (
            f"{case:<8} {r['files']:>5} {r['mb']:>6.2f} {r['chunks']:>7} {r['seconds']:>7.1f} "
            f"{r['chunks_per_s']:>8.1f} {r['mb_per_s']:>6.3f} {r['peak_rss_mb']:>7.0f}"
        )
        print(row + "  " + " ".join(f"{r['stages'][s]:>7.2f}" for s in STAGES))
    if "single" in results and "many" in results:
        ratio = results["single"]["chunks_per_s"] / results["many"]["chunks_per_s"]
        print(f"single/many chunk rate: {ratio:.2f} (target >= 0.85)")
    if "headings" in results and "many" in results:
        ratio = results["headings"]["chunks_per_s"] / results["many"]["chunks_per_s"]
        print(f"headings/many chunk rate: {ratio:.2f}")
    prose = results.get("single") or results.get("many")
    for case in ("hostile", "wrapped"):
        if case in results and prose:
            ratio = results[case]["s_per_mb"] / prose["s_per_mb"]
            print(f"{case}/prose seconds per MB: {ratio:.2f} (target <= 2)")


def print_profile(path: Path, top: int = 25) -> None:
    """Prints the functions with the most time of their own, then the most cumulative time."""
    import pstats

    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main() -> None:  # pragma: no cover - the command line
    """Writes the corpora, indexes each in child processes, prints medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0, help="size of each corpus in MB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES + EXTRA_CASES)}"
    )
    parser.add_argument("--squad", type=Path, default=SQUAD, help="squad11-train.json.gz")
    parser.add_argument("--against", type=Path, default=None, help="a folder holding another `assistant`")
    parser.add_argument("--profile", type=Path, default=None, help="folder for cProfile files (one run)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", nargs=2, type=Path, metavar=("CORPUS", "INDEX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.profile)
        return
    cases = [c for c in args.cases.split(",") if c]
    if not args.squad.is_file():
        raise SystemExit(f"{args.squad} not found: the prose comes from SQuAD 1.1 training articles; pass --squad FILE")
    versions: dict[str, Path | None] = {"today": None}
    if args.against is not None:
        versions = {"against": args.against.resolve(), "today": None}
    load = os.getloadavg()
    print(f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (a shared machine)")
    with tempfile.TemporaryDirectory(prefix="indexing-scaling-") as tmp:
        work = Path(tmp)
        folders = write_corpora(work / "corpora", args.mb, args.squad)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {v: {c: [] for c in cases} for v in versions}
        for run in range(1 if args.profile else args.runs):
            for case in cases:
                for version, code in versions.items():  # interleaved: both see the same load
                    profile = None
                    if args.profile is not None:
                        args.profile.mkdir(parents=True, exist_ok=True)
                        profile = args.profile / f"{version}-{case}.prof"
                    print(f"run {run + 1}: {case} ({version})", file=sys.stderr, flush=True)
                    runs[version][case].append(run_case(folders[case], work, code, profile))
                    r = runs[version][case][-1]
                    print(
                        f"  {r['chunks']} chunks in {r['seconds']:.1f} s, "
                        f"{r['chunks'] / r['seconds']:.1f} chunks/s, peak {r['peak_rss_mb']:.0f} MB",
                        file=sys.stderr,
                        flush=True,
                    )
    results = {v: {c: median_of(rs) for c, rs in by_case.items()} for v, by_case in runs.items()}
    for version in versions:
        label = "today's code" if version == "today" else f"code in {args.against}"
        print_table(
            f"{label}: medians over {args.runs if not args.profile else 1} runs, {args.mb:g} MB", results[version]
        )
    if "against" in results:
        print("\ntoday / against, chunks per second:")
        for case in cases:
            ratio = results["today"][case]["chunks_per_s"] / results["against"][case]["chunks_per_s"]
            print(f"  {case:<8} {ratio:.2f}x")
    if args.profile is not None:
        for path in sorted(args.profile.glob("*.prof")):
            print(f"\n==== {path.name}")
            print_profile(path)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
